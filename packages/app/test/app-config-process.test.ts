import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RegistryServer } from '@trellis/registry-server';

// A service's main module (fixtures/config-service.js, built package) run as a process, the way
// a deployment starts it: what an operator sees of a bad setting is stderr and the exit code.
const service = fileURLToPath(new URL('./fixtures/config-service.js', import.meta.url));

interface Run {
  readonly code: number | null;
  readonly stderr: string[];
  readonly stdout: string[];
}

// The runner's own settings must not leak into the service: only what each test gives applies.
function environment(env: Record<string, string>): NodeJS.ProcessEnv {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(TRELLIS_|PORT$|HOST$|OTEL_)/.test(name)),
  );
  return { ...base, ...env };
}

/** Runs the service until it exits (killed after 15 s, which fails the test), or until `until` matches a line of stdout. */
function run(options: {
  env?: Record<string, string>;
  cwd: string;
  until?: RegExp;
}): Promise<Run & { stop?: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [service], { cwd: options.cwd, env: environment(options.env ?? {}) });
  const stdout: string[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stderr }).on('line', (line) => stderr.push(line));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const guard = setTimeout(() => child.kill('SIGKILL'), 15_000);
  void exited.then(() => clearTimeout(guard));
  return new Promise((resolve) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      stdout.push(line);
      if (options.until?.test(line)) {
        resolve({
          code: null,
          stdout,
          stderr,
          stop: async () => {
            child.kill('SIGTERM');
            return exited;
          },
        });
      }
    });
    // Lines of stderr are all read before the exit is reported: the streams close first.
    void exited.then(async (code) => {
      await new Promise((done) => (child.stderr.readableEnded ? done(undefined) : child.stderr.once('end', done)));
      resolve({ code, stdout, stderr });
    });
  });
}

const stackLine = /^\s+at /;

describe('a service process and its settings', () => {
  let cwd: string;
  let held: Server | undefined;
  let registry: RegistryServer | undefined;
  beforeEach(() => {
    cwd = mkdtempSync(path.join(tmpdir(), 'trellis-service-'));
  });
  afterEach(async () => {
    rmSync(cwd, { recursive: true, force: true });
    await new Promise((resolve) => (held === undefined ? resolve(undefined) : held.close(resolve)));
    held = undefined;
    await registry?.close();
    registry = undefined;
  });

  it('prints one line naming TRELLIS_REGISTRY_URL, no stack, and exits with 2', async () => {
    const { code, stderr } = await run({ cwd, env: { TRELLIS_REGISTRY_URL: 'localhost:8500' } });
    expect(stderr).toEqual([
      'users: invalid configuration: TRELLIS_REGISTRY_URL must be an http:// or https:// URL with a host (e.g. http://127.0.0.1:8500) or etcd://host:port[,host:port...], got "localhost:8500"',
    ]);
    expect(stderr.filter((line) => stackLine.test(line))).toEqual([]);
    expect(code).toBe(2);
  });

  it('prints one line naming the config file and the unknown key, and exits with 2', async () => {
    writeFileSync(path.join(cwd, 'trellis.config.json'), '{\n  "port": 0,\n  "clinet": { "strategy": "random" }\n}\n');
    const { code, stderr } = await run({ cwd });
    expect(stderr).toHaveLength(1);
    expect(stderr[0]).toMatch(
      /^users: invalid configuration: trellis\.config\.json: clinet is not a known key; the keys are host, port, /,
    );
    expect(code).toBe(2);
  });

  it('prints one line naming the port when it is in use, and exits with 1', async () => {
    held = createServer();
    await new Promise<void>((resolve) => held?.listen(0, '127.0.0.1', resolve));
    const { port } = held.address() as AddressInfo;
    const { code, stderr } = await run({
      cwd,
      env: { PORT: String(port), TRELLIS_REGISTRY_URL: 'http://127.0.0.1:1' },
    });
    expect(stderr).toEqual([`users: port ${port} is in use on 127.0.0.1 (set PORT or the port setting)`]);
    expect(code).toBe(1);
  });

  it('starts with the settings of its config file and environment when they are good', async () => {
    registry = new RegistryServer({ logLevel: 'silent' });
    const { url } = await registry.listen({ port: 0, host: '127.0.0.1' });
    writeFileSync(path.join(cwd, 'trellis.config.yaml'), 'instanceId: users-from-file\nzone: a\n');
    const started = await run({ cwd, env: { TRELLIS_REGISTRY_URL: url, TRELLIS_ZONE: 'b' }, until: /listening on/ });
    try {
      expect(started.stdout).toEqual([
        expect.stringMatching(/^users listening on http:\/\/127\.0\.0\.1:\d+ as users-from-file$/),
      ]);
      const health = (await (await fetch(`${url}/v1/health/service/users`)).json()) as Array<{
        Service: { ID: string; Meta: Record<string, string> };
      }>;
      expect(health.map((entry) => [entry.Service.ID, entry.Service.Meta['zone']])).toEqual([['users-from-file', 'b']]);
    } finally {
      expect(await started.stop?.()).toBe(0);
    }
    expect(started.stderr).toEqual([]);
  });
});
