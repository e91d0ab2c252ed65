import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ManualClock } from '@trellis/core';
import { closeAll, get, put, startServer, type Running } from './helpers.js';

/** A KV result of a transaction, in Consul's JSON. */
interface KvResult {
  KV: {
    LockIndex: number;
    Key: string;
    Flags: number;
    Value: string | null;
    Session?: string;
    CreateIndex: number;
    ModifyIndex: number;
  };
}

interface TxnAnswer {
  Results: KvResult[] | null;
  Errors: { OpIndex: number; What: string }[] | null;
}

/** An operation as the official client passes it through: Consul's API JSON. */
interface Op {
  KV: { Verb: string; Key?: string; Value?: string | null; Flags?: number; Index?: number; Session?: string };
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');

describe('transactions (PUT /v1/txn)', () => {
  let clock: ManualClock;
  let running: Running;

  beforeEach(async () => {
    clock = new ManualClock();
    running = await startServer(clock);
  });
  afterEach(closeAll);

  // The official client's call; it throws for a 409 with the answer on `response`. Its types
  // (consul 2.0.1) describe neither Consul's op shape ({"KV": {...}}) nor the one-argument call
  // its code takes (create(ops)), which is what runs here.
  async function txn(ops: Op[]): Promise<{ status: number; body: TxnAnswer }> {
    const transaction = running.consul.transaction as unknown as { create(ops: Op[]): Promise<TxnAnswer> };
    try {
      return { status: 200, body: await transaction.create(ops) };
    } catch (error) {
      const response = (error as { response?: { statusCode: number; body: TxnAnswer } }).response;
      if (response === undefined) throw error;
      return { status: response.statusCode, body: response.body };
    }
  }

  async function value(key: string): Promise<string | undefined> {
    const entry = (await running.consul.kv.get(key)) as { Value: string } | undefined;
    return entry?.Value;
  }

  async function kvIndex(): Promise<number> {
    return Number((await get(`${running.url}/v1/kv/?keys`)).headers.get('x-consul-index'));
  }

  it('applies writes at one index and answers their entries without values, reads with them', async () => {
    await running.consul.kv.set('config/old', 'gone soon');
    const { status, body } = await txn([
      { KV: { Verb: 'set', Key: 'config/a', Value: b64('one'), Flags: 3 } },
      { KV: { Verb: 'set', Key: 'config/b', Value: b64('two') } },
      { KV: { Verb: 'delete', Key: 'config/old' } },
      { KV: { Verb: 'get', Key: 'config/a' } },
      { KV: { Verb: 'get-tree', Key: 'config/' } },
    ]);
    expect(status).toBe(200);
    expect(body.Errors).toBeNull();
    const index = body.Results?.[0]?.KV.ModifyIndex ?? 0;
    expect(body.Results).toEqual([
      { KV: { LockIndex: 0, Key: 'config/a', Flags: 3, Value: null, CreateIndex: index, ModifyIndex: index } },
      { KV: { LockIndex: 0, Key: 'config/b', Flags: 0, Value: null, CreateIndex: index, ModifyIndex: index } },
      { KV: { LockIndex: 0, Key: 'config/a', Flags: 3, Value: b64('one'), CreateIndex: index, ModifyIndex: index } },
      { KV: { LockIndex: 0, Key: 'config/a', Flags: 3, Value: b64('one'), CreateIndex: index, ModifyIndex: index } },
      { KV: { LockIndex: 0, Key: 'config/b', Flags: 0, Value: b64('two'), CreateIndex: index, ModifyIndex: index } },
    ]);
    expect(await kvIndex()).toBe(index);
    expect([await value('config/a'), await value('config/b'), await value('config/old')]).toEqual([
      'one',
      'two',
      undefined,
    ]);
  });

  it('changes nothing when one operation fails, and names it in Errors with a 409', async () => {
    await running.consul.kv.set('config/b', 'kept');
    const stale = ((await running.consul.kv.get('config/b')) as { ModifyIndex: number }).ModifyIndex - 1;
    const before = await kvIndex();
    const { status, body } = await txn([
      { KV: { Verb: 'set', Key: 'config/a', Value: b64('new') } },
      { KV: { Verb: 'cas', Key: 'config/b', Value: b64('lost'), Index: stale } },
      { KV: { Verb: 'delete-tree', Key: 'config/' } },
      { KV: { Verb: 'check-not-exists', Key: 'config/b' } },
    ]);
    expect(status).toBe(409);
    expect(body).toEqual({
      Results: null,
      Errors: [{ OpIndex: 1, What: 'failed to set key "config/b", index is stale' }],
    });
    expect([await value('config/a'), await value('config/b'), await kvIndex()]).toEqual([undefined, 'kept', before]);
  });

  it('runs every verb with Consul semantics', async () => {
    const { ID: session } = await running.consul.session.create({ lockdelay: '0s' });
    const first = await txn([
      { KV: { Verb: 'check-not-exists', Key: 'svc/leader' } },
      { KV: { Verb: 'lock', Key: 'svc/leader', Value: b64('me'), Session: session } },
      { KV: { Verb: 'check-session', Key: 'svc/leader', Session: session } },
      { KV: { Verb: 'set', Key: 'svc/conf', Value: b64('v1') } },
      { KV: { Verb: 'cas', Key: 'svc/new', Value: b64('x'), Index: 0 } },
    ]);
    expect(first.status).toBe(200);
    const leader = first.body.Results?.[1]?.KV;
    expect(leader).toMatchObject({ Key: 'svc/leader', Session: session, LockIndex: 1, Value: null });
    const conf = first.body.Results?.[3]?.KV.ModifyIndex ?? 0;
    const second = await txn([
      { KV: { Verb: 'check-index', Key: 'svc/conf', Index: conf } },
      { KV: { Verb: 'delete-cas', Key: 'svc/conf', Index: conf } },
      { KV: { Verb: 'unlock', Key: 'svc/leader', Value: b64('free'), Session: session } },
      { KV: { Verb: 'delete-tree', Key: 'svc/n' } },
    ]);
    expect(second.status).toBe(200);
    expect(second.body.Results?.map((r) => r.KV.Key)).toEqual(['svc/conf', 'svc/leader']);
    expect(second.body.Results?.[1]?.KV.Session).toBeUndefined();
    expect([await value('svc/conf'), await value('svc/leader'), await value('svc/new')]).toEqual([
      undefined,
      'free',
      undefined,
    ]);
    // What Consul checks before running (a key, the ACLs, lock delays) is reported alone.
    const unchecked = await txn([
      { KV: { Verb: 'check-index', Key: 'svc/leader', Index: 1 } },
      { KV: { Verb: 'set', Key: '' } },
    ]);
    expect([unchecked.status, unchecked.body.Errors]).toEqual([409, [{ OpIndex: 1, What: 'Must provide key' }]]);
    // Then every operation runs, and each failure is reported with Consul's text.
    const leaderIndex = ((await running.consul.kv.get('svc/leader')) as { ModifyIndex: number }).ModifyIndex;
    const rest = await txn([
      { KV: { Verb: 'check-index', Key: 'svc/leader', Index: 1 } },
      { KV: { Verb: 'check-session', Key: 'svc/leader', Session: session } },
      { KV: { Verb: 'check-not-exists', Key: 'svc/leader' } },
      { KV: { Verb: 'get', Key: 'svc/none' } },
      { KV: { Verb: 'unlock', Key: 'svc/leader', Session: session } },
      { KV: { Verb: 'lock', Key: 'svc/x', Session: 'no-such-session' } },
      { KV: { Verb: 'delete-cas', Key: 'svc/leader', Index: 1 } },
      { KV: { Verb: 'rename', Key: 'svc/leader' } },
    ]);
    expect(rest.body.Errors).toEqual([
      {
        OpIndex: 0,
        What: `failed index check for key "svc/leader", current modify index ${leaderIndex} != 1`,
      },
      { OpIndex: 1, What: `failed session check for key "svc/leader", current session "" != "${session}"` },
      { OpIndex: 2, What: 'key "svc/leader" exists' },
      { OpIndex: 3, What: 'key "svc/none" doesn\'t exist' },
      {
        OpIndex: 4,
        What: 'failed to unlock key "svc/leader", lock isn\'t held, or is held by another session',
      },
      { OpIndex: 5, What: 'invalid session "no-such-session"' },
      { OpIndex: 6, What: 'failed to delete key "svc/leader", index is stale' },
      { OpIndex: 7, What: 'unknown KV verb "rename"' },
    ]);
    expect(await value('svc/leader')).toBe('free');
  });

  it('refuses a lock held by another session, or within a lock delay', async () => {
    const { ID: a } = await running.consul.session.create({ lockdelay: '5s' });
    const { ID: b } = await running.consul.session.create();
    expect((await txn([{ KV: { Verb: 'lock', Key: 'l', Session: a } }])).status).toBe(200);
    expect((await txn([{ KV: { Verb: 'lock', Key: 'l', Session: b } }])).body.Errors).toEqual([
      { OpIndex: 0, What: 'failed to lock key "l", lock is already held' },
    ]);
    await running.consul.session.destroy(a);
    expect((await txn([{ KV: { Verb: 'lock', Key: 'l', Session: b } }])).body.Errors).toEqual([
      { OpIndex: 0, What: 'failed to lock key "l" due to lock delay' },
    ]);
    clock.advance(5_000);
    expect((await txn([{ KV: { Verb: 'lock', Key: 'l', Session: b } }])).body.Results?.[0]?.KV).toMatchObject({
      Session: b,
      LockIndex: 2,
    });
  });

  it('wakes a blocking reader once, with every key of the transaction', async () => {
    await running.consul.kv.set('rules/a', '0');
    const index = Number((await get(`${running.url}/v1/kv/rules/?recurse`)).headers.get('x-consul-index'));
    const held = get(`${running.url}/v1/kv/rules/?recurse&index=${index}&wait=5m`);
    for (let i = 0; i < 10_000 && running.server.heldQueries < 1; i++) await new Promise((r) => setImmediate(r));
    expect(running.server.heldQueries).toBe(1);
    const { body } = await txn([
      { KV: { Verb: 'set', Key: 'rules/a', Value: b64('1') } },
      { KV: { Verb: 'set', Key: 'rules/b', Value: b64('1') } },
      { KV: { Verb: 'set', Key: 'rules/c', Value: b64('1') } },
    ]);
    const woken = await held;
    const entries = JSON.parse(woken.text) as { Key: string; Value: string; ModifyIndex: number }[];
    // One wake-up, after the whole transaction: never a state with some of its keys only.
    expect(entries.map((e) => [e.Key, Buffer.from(e.Value, 'base64').toString()])).toEqual([
      ['rules/a', '1'],
      ['rules/b', '1'],
      ['rules/c', '1'],
    ]);
    expect(Number(woken.headers.get('x-consul-index'))).toBe(body.Results?.[0]?.KV.ModifyIndex);
  });

  it('takes 64 operations at most, answering 413 beyond, as Consul', async () => {
    const ops = (n: number): Op[] =>
      Array.from({ length: n }, (_, i) => ({ KV: { Verb: 'set', Key: `bulk/${i}`, Value: b64(String(i)) } }));
    expect((await txn(ops(64))).status).toBe(200);
    const reply = await put(`${running.url}/v1/txn`, JSON.stringify(ops(65)));
    expect([reply.status, reply.text]).toEqual([413, 'Transaction contains too many operations (65 > 64)']);
    const big = await put(
      `${running.url}/v1/txn`,
      JSON.stringify([{ KV: { Verb: 'set', Key: 'big', Value: Buffer.alloc(512 * 1024 + 1).toString('base64') } }]),
    );
    expect([big.status, big.text]).toEqual([413, 'Request body too large, max size: 524288 bytes']);
  });

  it('refuses a body it cannot read with 400 naming the place', async () => {
    const cases: [body: string, text: string][] = [
      ['{"KV":{}}', 'Failed to parse body: the body must be a JSON array of operations'],
      [
        '[{"KV":{"Verb":"set","Key":"k","Value":"not base64!"}}]',
        'Failed to parse body: [0].KV.Value: must be base64 (standard, padded)',
      ],
      [
        '[{"KV":{"Verb":"set","Key":"k","Flags":-1}}]',
        'Failed to parse body: [0].KV.Flags: Too small: expected number to be >=0',
      ],
      [
        '[{"KV":{"Verb":"get","Key":"k"}},{"Node":{"Verb":"get","Node":{"Node":"n"}}}]',
        'Failed to parse body: [1]: only KV operations are supported by this server (no Node, Service, Check or Session)',
      ],
    ];
    for (const [body, text] of cases) {
      const reply = await put(`${running.url}/v1/txn`, body);
      expect([body, reply.status, reply.text]).toEqual([body, 400, text]);
    }
    expect((await get(`${running.url}/v1/txn`)).status).toBe(405);
  });

  it('accepts Consul field names in any case, as Go decodes them', async () => {
    const reply = await put(`${running.url}/v1/txn`, '[{"kv":{"verb":"set","key":"lower","value":"dg=="}}]');
    expect(reply.status).toBe(200);
    expect(await value('lower')).toBe('v');
  });
});
