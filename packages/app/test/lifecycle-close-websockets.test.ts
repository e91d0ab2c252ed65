import { once } from 'node:events';
import { request } from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';
import { MemoryRegistry } from '@trellis/registry';
import { TrellisApp } from '@trellis/app';

// An upgraded connection belongs to whoever took the upgrade: shutdown lets its owner close it
// (a close frame from a preClose hook), and cuts it only at the shutdown timeout.
describe('closing a TrellisApp that serves WebSockets', () => {
  let registry: MemoryRegistry;
  const apps: TrellisApp[] = [];

  beforeEach(() => {
    registry = new MemoryRegistry();
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
    await registry.close();
  });

  /** An app taking upgrades with `ws`; `closeInPreClose` closes its sockets with 1001 in Fastify's preClose. */
  async function start(closeInPreClose: boolean): Promise<{ app: TrellisApp; client: WebSocket }> {
    const app = new TrellisApp({ service: 'echo', registry, logLevel: 'silent', drainMs: 0, shutdownTimeoutMs: 300 });
    apps.push(app);
    const wss = new WebSocketServer({ noServer: true });
    app.http.server.on('upgrade', (request, socket, head) => {
      wss.handleUpgrade(request, socket, head, (ws) => ws.send('hello'));
    });
    if (closeInPreClose) {
      app.http.addHook('preClose', (done) => {
        for (const ws of wss.clients) ws.close(1001, 'going away');
        done();
      });
    }
    const { url } = await app.start();
    const client = new WebSocket(url.replace('http', 'ws'));
    await once(client, 'message');
    return { app, client };
  }

  it("leaves an upgraded connection to its owner's close frame instead of ending it as idle", async () => {
    const { app, client } = await start(true);
    const closed = once(client, 'close');
    await app.close();
    const [code, reason] = await closed;
    expect([code, String(reason)]).toEqual([1001, 'going away']);
  });

  it('cuts an upgraded connection that its owner leaves open, at the shutdown timeout', async () => {
    const { app, client } = await start(false);
    const closed = once(client, 'close');
    const began = performance.now();
    await app.close();
    const [code] = await closed;
    expect(code).toBe(1006);
    // Not ended with the idle connections when the server stopped listening: kept until the cut.
    expect(performance.now() - began).toBeGreaterThanOrEqual(290);
  });

  it('serves an Upgrade request as a plain one when nothing takes upgrades', async () => {
    const app = new TrellisApp({ service: 'plain', registry, logLevel: 'silent', drainMs: 0 });
    apps.push(app);
    app.http.get('/', async () => ({ plain: true }));
    const { url } = await app.start();
    // Node hands an Upgrade request to 'upgrade' listeners when there is one: the app adds none of its own.
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request(url, { headers: { connection: 'upgrade', upgrade: 'websocket' } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('upgrade', () => resolve(101));
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(200);
    expect(app.http.server.listenerCount('upgrade')).toBe(0);
  });
});
