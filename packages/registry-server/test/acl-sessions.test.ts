import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { RegistryServer } from '@trellis/registry-server';
import type { RawReply } from './helpers.js';

const root = 'root-secret';

/** A raw request with `token` in X-Consul-Token. */
async function call(method: string, url: string, token: string | undefined, body?: unknown): Promise<RawReply> {
  const res = await fetch(url, {
    method,
    headers: token === undefined ? {} : { 'X-Consul-Token': token },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');

describe('ACLs on sessions and transactions', () => {
  let server: RegistryServer;
  let url: string;

  beforeEach(async () => {
    server = new RegistryServer({
      logLevel: 'silent',
      nodeName: 'trellis',
      acl: { enabled: true, initialManagementToken: root },
    });
    ({ url } = await server.listen({ port: 0, host: '127.0.0.1' }));
  });
  afterEach(() => server.close());

  async function tokenWith(name: string, rules: string): Promise<{ secret: string; accessor: string }> {
    const policy = JSON.parse((await call('PUT', `${url}/v1/acl/policy`, root, { Name: name, Rules: rules })).text) as {
      ID: string;
    };
    const token = JSON.parse(
      (await call('PUT', `${url}/v1/acl/token`, root, { Description: name, Policies: [{ ID: policy.ID }] })).text,
    ) as { SecretID: string; AccessorID: string };
    return { secret: token.SecretID, accessor: token.AccessorID };
  }

  it('needs session:write on the node to create, renew and destroy; session:read to see one', async () => {
    const writer = await tokenWith('writer', 'session "trellis" { policy = "write" }');
    const reader = await tokenWith('reader', 'session_prefix "" { policy = "read" }');
    const none = await tokenWith('none', 'key "x" { policy = "read" }');
    const refused = await call('PUT', `${url}/v1/session/create`, none.secret, {});
    expect(refused.status).toBe(403);
    expect(refused.text).toBe(
      `Permission denied: token with AccessorID '${none.accessor}' lacks permission 'session:write' on session "trellis"`,
    );
    expect((await call('PUT', `${url}/v1/session/create`, reader.secret, {})).status).toBe(403);
    const created = await call('PUT', `${url}/v1/session/create`, writer.secret, { Name: 'ok' });
    expect(created.status).toBe(200);
    const { ID: id } = JSON.parse(created.text) as { ID: string };
    expect((await call('PUT', `${url}/v1/session/renew/${id}`, reader.secret)).status).toBe(403);
    expect((await call('PUT', `${url}/v1/session/renew/${id}`, writer.secret)).status).toBe(200);
    // Reads are filtered by session:read on the session's node.
    for (const path of ['list', `info/${id}`, 'node/trellis']) {
      expect(JSON.parse((await call('GET', `${url}/v1/session/${path}`, reader.secret)).text)).toHaveLength(1);
      expect(JSON.parse((await call('GET', `${url}/v1/session/${path}`, none.secret)).text)).toEqual([]);
    }
    expect((await call('PUT', `${url}/v1/session/destroy/${id}`, reader.secret)).status).toBe(403);
    expect((await call('PUT', `${url}/v1/session/destroy/${id}`, writer.secret)).text).toBe('true');
    expect(JSON.parse((await call('GET', `${url}/v1/session/list`, root)).text)).toEqual([]);
  });

  it('needs key:write to acquire a lock', async () => {
    const { secret } = await tokenWith(
      'locker',
      'session "trellis" { policy = "write" }\nkey_prefix "locks/" { policy = "write" }\nkey "other" { policy = "read" }',
    );
    const { ID: id } = JSON.parse((await call('PUT', `${url}/v1/session/create`, secret, {})).text) as { ID: string };
    expect((await call('PUT', `${url}/v1/kv/locks/a?acquire=${id}`, secret, 'me')).text).toBe('true');
    expect((await call('PUT', `${url}/v1/kv/other?acquire=${id}`, secret, 'me')).status).toBe(403);
  });

  it('checks each operation of a transaction with its key right, failing the whole on a refusal', async () => {
    const { secret, accessor } = await tokenWith(
      'app',
      'key_prefix "app/" { policy = "write" }\nkey_prefix "shared/" { policy = "read" }',
    );
    await call('PUT', `${url}/v1/kv/shared/x`, root, 's');
    await call('PUT', `${url}/v1/kv/secret/y`, root, 'hidden');
    const refused = await call('PUT', `${url}/v1/txn`, secret, [
      { KV: { Verb: 'set', Key: 'app/a', Value: b64('1') } },
      { KV: { Verb: 'set', Key: 'shared/x', Value: b64('2') } },
      { KV: { Verb: 'check-index', Key: 'secret/y', Index: 1 } },
      { KV: { Verb: 'delete-tree', Key: 'app' } },
    ]);
    expect(refused.status).toBe(409);
    const denied = (need: string, key: string): string =>
      `Permission denied: token with AccessorID '${accessor}' lacks permission 'key:${need}' on key "${key}"`;
    expect(JSON.parse(refused.text)).toEqual({
      Results: null,
      Errors: [
        { OpIndex: 1, What: denied('write', 'shared/x') },
        { OpIndex: 2, What: denied('read', 'secret/y') },
        { OpIndex: 3, What: denied('write', 'app') },
      ],
    });
    expect((await call('GET', `${url}/v1/kv/app/a`, root)).status).toBe(404);
    // Reads pass, and answer only what the token may read.
    const read = await call('PUT', `${url}/v1/txn`, secret, [
      { KV: { Verb: 'set', Key: 'app/a', Value: b64('1') } },
      // secret/y is under the prefix too, and not readable by the token.
      { KV: { Verb: 'get-tree', Key: 's' } },
    ]);
    expect(read.status).toBe(200);
    const keys = (JSON.parse(read.text) as { Results: { KV: { Key: string } }[] }).Results.map((r) => r.KV.Key);
    expect(keys).toEqual(['app/a', 'shared/x']);
  });
});
