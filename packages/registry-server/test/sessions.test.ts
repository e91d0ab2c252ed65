import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '@trellis/core';
import { closeAll, get, put, startServer, type Running } from './helpers.js';

/** A session as Consul's JSON has it. */
interface SessionJson {
  ID: string;
  Name: string;
  Node: string;
  LockDelay: number;
  Behavior: string;
  TTL: string;
  NodeChecks: string[] | null;
  ServiceChecks: { ID: string; Namespace: string }[] | null;
  Checks?: string[];
  CreateIndex: number;
  ModifyIndex: number;
}

/** What the official client answers for a key read. */
interface ClientEntry {
  Key: string;
  Value: string | null;
  Session?: string;
  LockIndex: number;
  ModifyIndex: number;
}

describe('sessions and locks', () => {
  let clock: ManualClock;
  let running: Running;

  beforeEach(async () => {
    clock = new ManualClock();
    running = await startServer(clock);
  });
  afterEach(closeAll);

  async function create(body: Record<string, unknown> = {}): Promise<string> {
    const { ID } = await running.consul.session.create(body);
    return ID;
  }

  async function createRaw(body: string): Promise<string> {
    const reply = await put(`${running.url}/v1/session/create`, body);
    expect(reply.status).toBe(200);
    return (JSON.parse(reply.text) as { ID: string }).ID;
  }

  // The official client answers the server's `false` as undefined.
  async function acquire(key: string, session: string, value = session): Promise<boolean> {
    return (await running.consul.kv.set({ key, value, acquire: session })) === true;
  }

  async function release(key: string, session: string, value = ''): Promise<boolean> {
    return (await running.consul.kv.set({ key, value, release: session })) === true;
  }

  async function entry(key: string): Promise<ClientEntry | undefined> {
    return (await running.consul.kv.get({ key })) as ClientEntry | undefined;
  }

  it('creates a session with Consul defaults and answers it in Consul JSON', async () => {
    const id = await create({ name: 'web-lock' });
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const info = (await running.consul.session.info(id)) as SessionJson;
    expect(info).toEqual({
      ID: id,
      Name: 'web-lock',
      Node: 'trellis',
      LockDelay: 15e9,
      Behavior: 'release',
      TTL: '',
      NodeChecks: ['serfHealth'],
      ServiceChecks: null,
      CreateIndex: info.CreateIndex,
      ModifyIndex: info.CreateIndex,
    });
    expect(Object.keys(info)).toEqual([
      'ID',
      'Name',
      'Node',
      'LockDelay',
      'Behavior',
      'TTL',
      'NodeChecks',
      'ServiceChecks',
      'CreateIndex',
      'ModifyIndex',
    ]);
    expect((await running.consul.session.list()) as SessionJson[]).toEqual([info]);
    expect((await running.consul.session.node('trellis')) as SessionJson[]).toEqual([info]);
    expect(await running.consul.session.node('other')).toEqual([]);
  });

  it('gives a lock to one session at a time, and back after a release', async () => {
    const first = await create();
    const second = await create();
    expect(await acquire('service/web/leader', first)).toBe(true);
    expect(await entry('service/web/leader')).toMatchObject({ Session: first, LockIndex: 1, Value: first });
    expect(await acquire('service/web/leader', second)).toBe(false);
    // The holder may write again while it holds the lock.
    expect(await acquire('service/web/leader', first, 'again')).toBe(true);
    expect(await entry('service/web/leader')).toMatchObject({ Session: first, LockIndex: 1, Value: 'again' });
    // Another session cannot release it; its holder can.
    expect(await release('service/web/leader', second)).toBe(false);
    expect(await release('service/web/leader', first)).toBe(true);
    const released = await entry('service/web/leader');
    expect(released?.Session).toBeUndefined();
    // An explicit release sets no lock delay: the other session takes it at once.
    expect(await acquire('service/web/leader', second)).toBe(true);
    expect(await entry('service/web/leader')).toMatchObject({ Session: second, LockIndex: 2 });
  });

  it('releases the locks of a destroyed session, and keeps them from others for its lock delay', async () => {
    const holder = await create({ lockdelay: '10s' });
    const waiting = await create();
    expect(await acquire('jobs/lock', holder)).toBe(true);
    const before = await entry('jobs/lock');
    await running.consul.session.destroy(holder);
    expect(await running.consul.session.info(holder)).toBeUndefined();
    const after = await entry('jobs/lock');
    expect(after?.Session).toBeUndefined();
    expect(after?.Value).toBe(holder);
    expect(after?.ModifyIndex).toBeGreaterThan(before?.ModifyIndex ?? 0);
    // Within the 10 s lock delay the lock is refused, then granted.
    clock.advance(9_999);
    expect(await acquire('jobs/lock', waiting)).toBe(false);
    clock.advance(1);
    expect(await acquire('jobs/lock', waiting)).toBe(true);
  });

  it('applies the default lock delay of 15 s, and none with LockDelay 0', async () => {
    const first = await create();
    const second = await create();
    // The official client leaves out a LockDelay of 0 (falsy); "0s" is sent.
    const third = await create({ lockdelay: '0s' });
    expect(await acquire('a', first)).toBe(true);
    expect(await acquire('b', third)).toBe(true);
    await running.consul.session.destroy(first);
    await running.consul.session.destroy(third);
    expect(await acquire('b', second)).toBe(true);
    clock.advance(14_999);
    expect(await acquire('a', second)).toBe(false);
    clock.advance(1);
    expect(await acquire('a', second)).toBe(true);
  });

  it('deletes the keys of a session with behavior delete when it ends', async () => {
    const id = await create({ behavior: 'delete' });
    expect(await acquire('service/web/leader', id)).toBe(true);
    await running.consul.kv.set('service/web/other', 'stays');
    await running.consul.session.destroy(id);
    expect(await entry('service/web/leader')).toBeUndefined();
    expect(await entry('service/web/other')).toMatchObject({ Value: 'stays' });
  });

  it('wakes a blocking reader of a locked key when the session holding it is destroyed', async () => {
    const id = await create();
    expect(await acquire('leader', id)).toBe(true);
    const index = Number((await get(`${running.url}/v1/kv/leader`)).headers.get('x-consul-index'));
    const held = get(`${running.url}/v1/kv/leader?index=${index}&wait=5m`);
    await waitForHeld(running, 1);
    await running.consul.session.destroy(id);
    const woken = await held;
    expect(Number(woken.headers.get('x-consul-index'))).toBeGreaterThan(index);
    expect((JSON.parse(woken.text) as { Session?: string }[])[0]?.Session).toBeUndefined();
  });

  it('expires a TTL session after twice its TTL without renewal, as Consul does, releasing its locks', async () => {
    const id = await create({ ttl: '10s', lockdelay: '0s' });
    expect(await acquire('leader', id)).toBe(true);
    // Renewals keep it: each restarts the 2 x TTL.
    for (let i = 0; i < 3; i++) {
      clock.advance(19_000);
      const renewed = (await running.consul.session.renew(id)) as SessionJson[];
      expect(renewed).toMatchObject([{ ID: id, TTL: '10s' }]);
    }
    clock.advance(19_999);
    expect(await entry('leader')).toMatchObject({ Session: id });
    clock.advance(1);
    expect(await running.consul.session.info(id)).toBeUndefined();
    expect((await entry('leader'))?.Session).toBeUndefined();
    const renew = await put(`${running.url}/v1/session/renew/${id}`);
    expect([renew.status, renew.text]).toEqual([404, `Session id '${id}' not found`]);
  });

  it('ends a session when a check it is tied to goes critical', async () => {
    await running.consul.agent.service.register({ name: 'web', check: { ttl: '10s' } as never });
    await running.consul.agent.check.pass('service:web');
    const id = await create({ checks: ['serfHealth', 'service:web'], lockdelay: '0s' });
    expect(await running.consul.session.info(id)).toMatchObject({
      NodeChecks: ['serfHealth'],
      Checks: ['serfHealth', 'service:web'],
    });
    // NodeChecks and ServiceChecks (Consul 1.7+) are not sent by the official client; by hand.
    const other = await createRaw('{"NodeChecks":[],"ServiceChecks":[{"ID":"service:web"}]}');
    expect(await running.consul.session.info(other)).toMatchObject({
      NodeChecks: [],
      ServiceChecks: [{ ID: 'service:web', Namespace: '' }],
    });
    expect(await acquire('web/leader', id)).toBe(true);
    // Held while the check passes; gone the moment its TTL runs out.
    clock.advance(9_999);
    expect(await entry('web/leader')).toMatchObject({ Session: id });
    clock.advance(1);
    expect(await running.consul.session.info(id)).toBeUndefined();
    expect(await running.consul.session.info(other)).toBeUndefined();
    expect((await entry('web/leader'))?.Session).toBeUndefined();
    // A check that is critical, or missing, cannot be tied to a new session.
    const critical = await put(`${running.url}/v1/session/create`, '{"Checks":["service:web"]}');
    expect([critical.status, critical.text]).toEqual([400, "Check 'service:web' is in critical state"]);
    const missing = await put(`${running.url}/v1/session/create`, '{"NodeChecks":["nope"]}');
    expect([missing.status, missing.text]).toEqual([400, "Missing check 'nope' registration"]);
  });

  it('ends a session tied to a service check when the service is deregistered', async () => {
    await running.consul.agent.service.register({ name: 'web', check: { ttl: '10s', status: 'passing' } as never });
    const id = await createRaw('{"ServiceChecks":[{"ID":"service:web"}]}');
    await running.consul.agent.service.deregister('web');
    expect(await running.consul.session.info(id)).toBeUndefined();
  });

  it('holds sessions of another node of the catalog, tied to its checks, ended with it', async () => {
    const registerDb = async (status: string): Promise<void> => {
      const body = {
        Node: 'db-node',
        Address: '10.1.0.5',
        Service: { ID: 'db-1', Service: 'db', Port: 5432 },
        Checks: [{ CheckID: 'db-health', Name: 'db', ServiceID: 'db-1', Status: status }],
      };
      expect((await put(`${running.url}/v1/catalog/register`, JSON.stringify(body))).status).toBe(200);
    };
    await registerDb('passing');
    // Another node has no serfHealth unless registered with one: tie it to none, or to its checks.
    const missing = await put(`${running.url}/v1/session/create`, '{"Node":"db-node"}');
    expect([missing.status, missing.text]).toEqual([400, "Missing check 'serfHealth' registration"]);
    const tied = await createRaw('{"Node":"db-node","NodeChecks":["db-health"]}');
    const untied = await createRaw('{"Node":"db-node","Checks":[]}');
    expect(((await running.consul.session.node('db-node')) as SessionJson[]).map((s) => s.ID).sort()).toEqual(
      [tied, untied].sort(),
    );
    await registerDb('critical');
    expect(await running.consul.session.info(tied)).toBeUndefined();
    expect(await running.consul.session.info(untied)).toMatchObject({ Node: 'db-node' });
    const gone = await put(`${running.url}/v1/catalog/deregister`, '{"Node":"db-node"}');
    expect(gone.status).toBe(200);
    expect(await running.consul.session.info(untied)).toBeUndefined();
  });

  it('elects one leader as `consul lock` does, and hands over when the leader stops renewing', async () => {
    // `consul lock` marks its key with these flags (api.LockFlagValue), which need all 64 bits.
    // The client's types say number; a string goes into ?flags= as it is, exactly.
    const lockFlags = '3304740253564472344' as unknown as number;
    const candidate = async (name: string): Promise<{ id: string; won: boolean }> => {
      const id = await create({ name: `lock ${name}`, ttl: '15s', lockdelay: '1s' });
      const won =
        (await running.consul.kv.set({ key: 'service/web/lock/.lock', value: name, acquire: id, flags: lockFlags })) ===
        true;
      return { id, won };
    };
    const a = await candidate('a');
    const b = await candidate('b');
    expect([a.won, b.won]).toEqual([true, false]);
    const lock = (await running.consul.kv.get('service/web/lock/.lock')) as ClientEntry & { Flags: number };
    expect(lock).toMatchObject({ Value: 'a', Session: a.id, LockIndex: 1 });
    // The Go client compares the flags exactly; the raw JSON carries all 64 bits.
    const raw = await get(`${running.url}/v1/kv/service/web/lock/.lock`);
    expect(raw.text).toContain(`"Flags":${lockFlags}`);
    // b waits on the key with a blocking query, as the Go client's Lock does, and keeps renewing.
    const index = Number(raw.headers.get('x-consul-index'));
    const watch = get(`${running.url}/v1/kv/service/web/lock/.lock?index=${index}`);
    await waitForHeld(running, 1);
    clock.advance(29_000);
    await running.consul.session.renew(b.id);
    clock.advance(1_000); // a stopped renewing 30 s ago: its session expires, releasing the lock
    const seen = JSON.parse((await watch).text) as { Session?: string }[];
    expect(seen[0]?.Session).toBeUndefined();
    // Within a's lock delay b is refused; after it, b leads.
    const retry = async (): Promise<boolean> =>
      (await running.consul.kv.set({ key: 'service/web/lock/.lock', value: 'b', acquire: b.id, flags: lockFlags })) ===
      true;
    expect(await retry()).toBe(false);
    clock.advance(1_000);
    expect(await retry()).toBe(true);
    expect(await running.consul.kv.get('service/web/lock/.lock')).toMatchObject({
      Value: 'b',
      Session: b.id,
      LockIndex: 2,
    });
  });

  it('refuses what Consul refuses, with its texts', async () => {
    const cases: [body: string, status: number, text: string][] = [
      ['{"TTL":"5s"}', 400, "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"],
      ['{"TTL":"25h"}', 400, "Invalid Session TTL '90000000000000', must be between [10s=24h0m0s]"],
      ['{"TTL":"soon"}', 400, 'Session TTL \'soon\' invalid: invalid duration "soon"'],
      ['{"Behavior":"keep"}', 400, "Invalid Behavior setting 'keep'"],
      ['{"Node":"elsewhere"}', 400, 'Missing node registration'],
      ['{"Node":""}', 400, 'Must provide Node'],
      ['{"Name":5}', 400, 'Request decode failed: Name: Invalid input: expected string, received number'],
      ['[1]', 400, 'Request decode failed: body: Invalid input: expected object, received array'],
      ['{', 400, expect.stringContaining('Request decode failed: ') as unknown as string],
    ];
    for (const [body, status, text] of cases) {
      const reply = await put(`${running.url}/v1/session/create`, body);
      expect([body, reply.status, reply.text]).toEqual([body, status, text]);
    }
    expect(await running.consul.session.list()).toEqual([]);
    // Without a TTL the session does not expire; "0s" is no TTL.
    const id = await create({ ttl: '0s' });
    clock.advance(48 * 3600_000);
    expect(await running.consul.session.info(id)).toMatchObject({ ID: id, TTL: '0s' });
  });

  it('answers session reads as blocking queries on the sessions index', async () => {
    const first = await create();
    const list = await get(`${running.url}/v1/session/list`);
    const index = Number(list.headers.get('x-consul-index'));
    expect(index).toBeGreaterThan(1);
    const heldList = get(`${running.url}/v1/session/list?index=${index}`);
    const heldInfo = get(`${running.url}/v1/session/info/${first}?index=${index}`);
    const heldNode = get(`${running.url}/v1/session/node/trellis?index=${index}`);
    await waitForHeld(running, 3);
    const second = await create();
    const woken = await heldList;
    expect(Number(woken.headers.get('x-consul-index'))).toBeGreaterThan(index);
    expect((JSON.parse(woken.text) as SessionJson[]).map((s) => s.ID).sort()).toEqual([first, second].sort());
    expect((JSON.parse((await heldNode).text) as SessionJson[]).length).toBe(2);
    // The info read of the first session is not woken by another's creation, only by its own end.
    expect(running.server.heldQueries).toBe(1);
    await running.consul.session.destroy(first);
    expect(JSON.parse((await heldInfo).text)).toEqual([]);
  });

  it('caps the sessions of a node, answering 429', async () => {
    const small = await startServer(clock, { maxSessionsPerNode: 2 });
    await small.consul.session.create();
    const last = await small.consul.session.create();
    const refused = await put(`${small.url}/v1/session/create`);
    expect(refused.status).toBe(429);
    expect(refused.text).toContain('Too many sessions: node "trellis" holds 2');
    await small.consul.session.destroy(last.ID);
    expect(await small.consul.session.create()).toMatchObject({ ID: expect.any(String) as unknown });
  });
});

async function waitForHeld(running: Running, count: number): Promise<void> {
  // A blocking query is held once the server registered it; poll the server's own count.
  for (let i = 0; i < 10_000 && running.server.heldQueries < count; i++) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  expect(running.server.heldQueries).toBe(count);
}
