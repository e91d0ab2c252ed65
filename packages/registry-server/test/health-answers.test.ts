import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { closeAll, put, startServer, type Running } from './helpers.js';

/** A GET whose raw bytes and headers are kept as the server sent them (fetch would decompress). */
function rawGet(
  url: string,
  headers: Record<string, string>,
): Promise<{ headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
      })
      .on('error', reject);
  });
}

describe('health/service answers', () => {
  let running: Running;

  beforeEach(async () => {
    running = await startServer();
    for (let i = 0; i < 20; i++) {
      await put(
        `${running.url}/v1/agent/service/register`,
        JSON.stringify({ Name: 'users', ID: `users-${i}`, Port: 4000 + i }),
      );
    }
  });
  afterEach(closeAll);

  it('are gzipped for clients that accept it, with the same content', async () => {
    const url = `${running.url}/v1/health/service/users`;
    const plain = await rawGet(url, {});
    const zipped = await rawGet(url, { 'accept-encoding': 'gzip, deflate' });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(zipped.headers['content-encoding']).toBe('gzip');
    expect(zipped.headers['vary']).toBe('Accept-Encoding');
    expect(zipped.headers['x-consul-index']).toBe(plain.headers['x-consul-index']);
    expect(zipped.body.length).toBeLessThan(plain.body.length / 4);
    expect(JSON.parse(gunzipSync(zipped.body).toString())).toEqual(JSON.parse(plain.body.toString()));
  });

  it('follow every change, however often the same read is asked', async () => {
    const url = `${running.url}/v1/health/service/users?passing`;
    const count = async (): Promise<number> =>
      (JSON.parse((await rawGet(url, {})).body.toString()) as unknown[]).length;
    // A service with no checks counts as passing.
    expect(await count()).toBe(20);
    const check = JSON.stringify({
      CheckID: 'users-3-ttl',
      Name: 'ttl',
      ServiceID: 'users-3',
      TTL: '1m',
      Status: 'passing',
    });
    expect((await put(`${running.url}/v1/agent/check/register`, check)).status).toBe(200);
    expect(await count()).toBe(20);
    await put(`${running.url}/v1/agent/check/fail/users-3-ttl`);
    expect(await count()).toBe(19);
    await put(`${running.url}/v1/agent/check/pass/users-3-ttl`);
    expect(await count()).toBe(20);
  });
});
