import { afterEach, describe, expect, it } from '@jest/globals';
import { closeAll, lines, startRegistry, trellis } from './helpers.js';

afterEach(closeAll);

describe('trellis kv', () => {
  it('puts, gets and deletes a key, and a prefix with --recurse', async () => {
    const { url } = await startRegistry();
    const env = { CONSUL_HTTP_ADDR: url };
    expect(await trellis(['kv', 'put', 'app/banner', 'hello world'], { env })).toEqual({
      code: 0,
      stdout: 'wrote app/banner (11 bytes)\n',
      stderr: '',
    });
    // Without a value, the value is standard input, kept as it is.
    expect((await trellis(['kv', 'put', 'app/motd'], { env, stdin: 'line 1\nline 2\n' })).code).toBe(0);

    expect((await trellis(['kv', 'get', 'app/banner'], { env })).stdout).toBe('hello world\n');
    expect((await trellis(['kv', 'get', 'app/motd'], { env })).stdout).toBe('line 1\nline 2\n');
    expect((await trellis(['kv', 'get', 'app/', '--recurse'], { env })).stdout).toBe(
      'app/banner:hello world\napp/motd:line 1\nline 2\n',
    );
    const json = JSON.parse((await trellis(['kv', 'get', 'app/banner', '--json'], { env })).stdout);
    expect(json).toMatchObject({ key: 'app/banner', value: 'hello world', modifyIndex: expect.any(Number) });

    expect(await trellis(['kv', 'delete', 'app/banner'], { env })).toMatchObject({
      code: 0,
      stdout: 'deleted app/banner\n',
    });
    const gone = await trellis(['kv', 'get', 'app/banner'], { env });
    expect(gone.code).toBe(1);
    expect(lines(gone.stderr)).toEqual([
      expect.stringMatching(new RegExp(`^trellis: no key "app/banner" in the KV at ${url}`)),
    ]);

    expect((await trellis(['kv', 'delete', 'app/', '--recurse'], { env })).code).toBe(0);
    expect((await trellis(['kv', 'get', 'app/', '--recurse'], { env })).code).toBe(1);
  });

  it('writes with --cas only while the key is at that index, else exit 1', async () => {
    const { url } = await startRegistry();
    const env = { CONSUL_HTTP_ADDR: url };
    expect((await trellis(['kv', 'put', 'lock', 'a', '--cas', '0'], { env })).code).toBe(0);
    const again = await trellis(['kv', 'put', 'lock', 'b', '--cas', '0'], { env });
    expect(again.code).toBe(1);
    expect(lines(again.stderr)).toEqual([expect.stringMatching(/^trellis: "lock" was not written: its modify index/)]);
    expect((await trellis(['kv', 'get', 'lock'], { env })).stdout).toBe('a\n');
  });

  it('refuses a key starting with "/" with exit code 2', async () => {
    const { url } = await startRegistry();
    const result = await trellis(['kv', 'get', '/x', '--registry', url]);
    expect(result.code).toBe(2);
    expect(lines(result.stderr)).toEqual([expect.stringMatching(/^trellis: key: must not start with "\/"/)]);
  });
});

describe('trellis config', () => {
  it('shows the layers, the profile winning over the service, the service over application', async () => {
    const { url } = await startRegistry();
    const env = { CONSUL_HTTP_ADDR: url };
    expect(await trellis(['config', 'set', 'application', 'pageSize', '10'], { env })).toMatchObject({
      code: 0,
      stdout: 'set config/application/pageSize = 10\n',
    });
    await trellis(['config', 'set', 'forum', 'pageSize', '20'], { env });
    await trellis(['config', 'set', 'forum', 'pageSize', '50', '--profile', 'dev'], { env });
    await trellis(['config', 'set', 'forum', 'mail.from', 'forum@example.org'], { env });
    await trellis(['config', 'set', 'users', 'pageSize', '99'], { env });

    // The KV layout is Spring Cloud Consul's: a nested property is a path.
    expect((await trellis(['kv', 'get', 'config/forum/mail/from'], { env })).stdout).toBe('forum@example.org\n');

    const dev = await trellis(['config', 'get', 'forum', '--profile', 'dev'], { env });
    expect(dev.code).toBe(0);
    expect(lines(dev.stdout)).toEqual([
      expect.stringMatching(/^KEY +VALUE +FROM +OVERRIDES$/),
      expect.stringMatching(/^mail\.from +forum@example\.org +config\/forum\/ +-$/),
      expect.stringMatching(
        /^pageSize +50 +config\/forum,dev\/ +config\/application\/pageSize=10 config\/forum\/pageSize=20$/,
      ),
    ]);

    const plain = JSON.parse((await trellis(['config', 'get', 'forum', 'pageSize', '--json'], { env })).stdout);
    expect(plain.properties).toEqual([
      {
        key: 'pageSize',
        value: 20,
        raw: '20',
        from: 'config/forum/',
        overrides: [{ layer: 'config/application/', value: '10' }],
      },
    ]);

    const missing = await trellis(['config', 'get', 'forum', 'colour'], { env });
    expect(missing.code).toBe(1);
    expect(lines(missing.stderr)).toEqual([expect.stringMatching(/^trellis: no layer holds "colour" for forum/)]);
  });

  it('refuses a service or profile with "/" or "," with exit code 2, writing nothing', async () => {
    const { url } = await startRegistry();
    const env = { CONSUL_HTTP_ADDR: url };
    const bad = await trellis(['config', 'set', 'forum', 'pageSize', '5', '--profile', 'a,b'], { env });
    expect(bad.code).toBe(2);
    expect(lines(bad.stderr)).toEqual(['trellis: --profile "a,b" must be a name without "/" or ","']);
    expect((await trellis(['kv', 'get', 'config/', '--recurse'], { env })).code).toBe(1);
  });
});

describe('ACL tokens', () => {
  it('are sent from --token or CONSUL_HTTP_TOKEN; without one, a refusal is exit 1 saying to give one', async () => {
    const { url } = await startRegistry({ acl: { enabled: true, initialManagementToken: 'root-secret' } });
    const denied = await trellis(['kv', 'put', 'a', '1', '--registry', url]);
    expect(denied.code).toBe(1);
    expect(lines(denied.stderr)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^trellis: the registry at ${url} refused kv put \\(HTTP 403\\).*; give an ACL token allowed to do it with --token`,
        ),
      ),
    ]);

    expect((await trellis(['kv', 'put', 'a', '1', '--registry', url, '--token', 'root-secret'])).code).toBe(0);
    const fromEnv = await trellis(['kv', 'get', 'a'], {
      env: { CONSUL_HTTP_ADDR: url, CONSUL_HTTP_TOKEN: 'root-secret' },
    });
    expect(fromEnv).toEqual({ code: 0, stdout: '1\n', stderr: '' });
  });
});
