import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from '@jest/globals';
import { closeAll, get, health, startServer } from './helpers.js';

afterEach(closeAll);

async function send(
  url: string,
  body: Uint8Array | string,
  encoding: string,
): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: 'PUT', body, headers: { 'content-encoding': encoding } });
  return { status: res.status, text: await res.text() };
}

describe('request bodies labelled Content-Encoding', () => {
  it('answer 400 naming the header when the body labelled gzip is not gzip, and register nothing', async () => {
    const { url } = await startServer();
    const reply = await send(`${url}/v1/agent/service/register`, '{"Name": "users", "Port": 80}', 'gzip');
    expect(reply.status).toBe(400);
    expect(reply.text).toMatch(/Content-Encoding is gzip but the body is not/);
    expect((await health(url, 'users')).entries).toEqual([]);
  });

  it('answer 400 for a KV value labelled gzip that is not, storing nothing', async () => {
    const { url } = await startServer();
    const reply = await send(`${url}/v1/kv/config/port`, 'plain text', 'gzip');
    expect(reply.status).toBe(400);
    expect((await get(`${url}/v1/kv/config/port`)).status).toBe(404);
  });

  it('are decompressed when they are gzip, on JSON routes and KV alike', async () => {
    const { url } = await startServer();
    const registered = await send(
      `${url}/v1/agent/service/register`,
      gzipSync('{"Name": "users", "ID": "users-1", "Port": 80}'),
      'gzip',
    );
    expect(registered.status).toBe(200);
    expect((await health(url, 'users')).entries.map((e) => e.Service.ID)).toEqual(['users-1']);
    expect((await send(`${url}/v1/kv/config/port`, gzipSync('8080'), 'gzip')).text).toBe('true');
    expect((await get(`${url}/v1/kv/config/port?raw`)).text).toBe('8080');
  });

  it('count the decompressed bytes against the body limit, so a small gzip bomb is refused', async () => {
    const { url } = await startServer();
    const bomb = gzipSync(Buffer.alloc(2 * 1024 * 1024, 'a'));
    expect(bomb.length).toBeLessThan(512 * 1024);
    const reply = await send(`${url}/v1/kv/big`, bomb, 'gzip');
    expect(reply.status).toBe(413);
    expect((await get(`${url}/v1/kv/big`)).status).toBe(404);
  });

  it('answer 415 for an encoding the server does not decode', async () => {
    const { url } = await startServer();
    const reply = await send(`${url}/v1/kv/config/port`, '8080', 'br');
    expect(reply.status).toBe(415);
    expect(reply.text).toMatch(/Content-Encoding "br"/);
  });
});
