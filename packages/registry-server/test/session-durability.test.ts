import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import Consul from 'consul';
import { ManualClock } from '@trellis/core';
import { RegistryServer } from '@trellis/registry-server';
import { get } from './helpers.js';

const dirs: string[] = [];
const servers: RegistryServer[] = [];

async function start(
  dataDir: string,
  clock: ManualClock,
): Promise<{ server: RegistryServer; url: string; consul: Consul }> {
  const server = new RegistryServer({ logLevel: 'silent', nodeName: 'trellis', clock, dataDir });
  servers.push(server);
  const { url, port } = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, url, consul: new Consul({ host: '127.0.0.1', port }) };
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('sessions across a restart', () => {
  it('keeps sessions and their locks, restarting each TTL on load as Consul does on a new leader', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-sessions-'));
    dirs.push(dir);
    const first = await start(dir, new ManualClock());
    const { ID: kept } = await first.consul.session.create({ name: 'leader', ttl: '10s', lockdelay: '0s' });
    const { ID: gone } = await first.consul.session.create();
    // The client's types say number; a string goes into ?flags= as it is, exactly.
    const flags = '3304740253564472344' as unknown as number;
    expect(await first.consul.kv.set({ key: 'lock/.lock', value: 'a', acquire: kept, flags })).toBe(true);
    expect(await first.consul.kv.set({ key: 'other', value: 'b', acquire: gone })).toBe(true);
    await first.consul.session.destroy(gone);
    const before = await get(`${first.url}/v1/session/info/${kept}`);
    const index = Number(before.headers.get('x-consul-index'));
    await first.server.close();

    const clock = new ManualClock();
    const second = await start(dir, clock);
    const after = await get(`${second.url}/v1/session/info/${kept}`);
    expect(after.text).toBe(before.text);
    expect(Number(after.headers.get('x-consul-index'))).toBe(index);
    expect(await second.consul.session.info(gone)).toBeUndefined();
    const lock = await get(`${second.url}/v1/kv/lock/.lock`);
    expect(JSON.parse(lock.text)).toMatchObject([{ Session: kept, LockIndex: 1 }]);
    expect(lock.text).toContain(`"Flags":${flags}`);
    expect(((await second.consul.kv.get('other')) as { Session?: string }).Session).toBeUndefined();
    // A full 2 x TTL from the restart, then expiry, releasing the lock.
    clock.advance(19_999);
    expect(await second.consul.session.info(kept)).toMatchObject({ ID: kept });
    clock.advance(1);
    expect(await second.consul.session.info(kept)).toBeUndefined();
    expect(((await second.consul.kv.get('lock/.lock')) as { Session?: string }).Session).toBeUndefined();
    // The session index never goes back across restarts.
    const list = await get(`${second.url}/v1/session/list`);
    expect(Number(list.headers.get('x-consul-index'))).toBeGreaterThan(index);
  });
});
