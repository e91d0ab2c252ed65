import type { TrellisStatus } from '@trellis/app';
import { startSystem, type RunningSystem } from '../src/system.js';

// The whole slice as separate processes: the registry server, two users instances and the forum.
// The forum is told only the registry's address; it finds users by name.
describe('forum calling users across processes', () => {
  let system: RunningSystem;
  const logs: string[] = [];

  beforeAll(async () => {
    system = await startSystem({
      services: ['forum'],
      mailInstances: 1,
      drainMs: 300,
      output: (line) => logs.push(line),
    });
  }, 30_000);
  afterAll(async () => {
    await system?.stop();
  });

  async function authorServedBy(): Promise<{ status: number; servedBy: string | undefined }> {
    const response = await fetch(`${system.forum!.url}/threads/1`);
    const body = (await response.json()) as { authorServedBy?: string };
    return { status: response.status, servedBy: body.authorServedBy };
  }

  const idOf = (url: string): string => `users-127.0.0.1-${new URL(url).port}`;

  it('spreads the forum’s calls to users evenly over both instances', async () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 10; i++) {
      const { status, servedBy } = await authorServedBy();
      expect(status).toBe(200);
      counts.set(servedBy ?? 'none', (counts.get(servedBy ?? 'none') ?? 0) + 1);
    }
    const [first, second] = system.users;
    expect(Object.fromEntries(counts)).toEqual({ [idOf(first!.url)]: 5, [idOf(second!.url)]: 5 });
  });

  it("shows on the forum's /trellis both users instances as the registry server and the forum see them", async () => {
    const response = await fetch(`${system.forum!.url}/trellis`);
    expect(response.status).toBe(200);
    const status = (await response.json()) as TrellisStatus;
    expect(status).toMatchObject({ service: 'forum', state: 'running', registration: { state: 'running' } });
    const users = status.clients.find((c) => c.service === 'users');
    expect(users).toMatchObject({ service: 'users', strategy: 'round-robin', discovery: { registryReachable: true } });
    expect(users?.instances.map((i) => [i.id, i.health, i.breaker?.state, i.recent?.attempts])).toEqual(
      system.users
        .map((u) => [idOf(u.url), 'passing', 'closed', 5])
        .sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1)),
    );
  });

  it('keeps every call succeeding while one users instance stops gracefully, then uses the other', async () => {
    const [leaving, staying] = system.users;
    const statuses: number[] = [];
    let stopped = false;
    let sentDuringShutdown = 0;
    // Calls run back to back during the whole shutdown, and 20 more after it.
    const caller = (async () => {
      for (let after = 0, i = 0; i < 2_000 && after < 20; i++) {
        if (stopped) after++;
        else sentDuringShutdown++;
        statuses.push((await authorServedBy()).status);
      }
    })();
    const exitCode = await leaving!.stop('SIGTERM');
    stopped = true;
    await caller;

    expect(exitCode).toBe(0);
    // The calls did overlap the shutdown (how many depends on the machine's speed, not on Trellis).
    expect(sentDuringShutdown).toBeGreaterThan(2);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    for (let i = 0; i < 6; i++) expect(await authorServedBy()).toEqual({ status: 200, servedBy: idOf(staying!.url) });
  });

  it('answers 503 with a code naming the problem once no users instance is left', async () => {
    const [, staying] = system.users;
    expect(await staying!.stop('SIGTERM')).toBe(0);
    const response = await fetch(`${system.forum!.url}/threads/1`);
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ error: 'NO_INSTANCES', service: 'users' });
    expect(logs.filter((line) => /"level":(50|60)/.test(line))).toEqual([]);
  });
});
