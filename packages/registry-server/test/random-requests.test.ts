import fc from 'fast-check';
import { closeAll, get, startServer, type Running } from './helpers.js';

// Property: whatever a client sends, the server answers below 500, and an answer of 4xx leaves
// the state exactly as it was. Requests are random, or valid ones with one part mutated.
describe('random and mutated requests', () => {
  let running: Running;

  beforeAll(async () => {
    running = await startServer();
    const seed = [
      {
        Name: 'users',
        ID: 'users-1',
        Port: 4001,
        Tags: ['http'],
        Meta: { version: '1' },
        Check: { TTL: '10m', Status: 'passing' },
      },
      { Name: 'users', ID: 'users-2', Port: 4002, Check: { TTL: '10m' } },
      { Name: 'mail', ID: 'mail-1', Port: 5001, Checks: [{ TTL: '10m', Status: 'warning' }, { TTL: '5m' }] },
    ];
    for (const body of seed) await send('PUT', '/v1/agent/service/register', JSON.stringify(body));
    await send('PUT', '/v1/kv/config/forum/page-size', '20');
    await send('PUT', '/v1/kv/config/users/flags?flags=7', 'on');
  });
  afterAll(closeAll);

  async function send(method: string, path: string, body?: string): Promise<number> {
    const response = await fetch(`${running.url}${path}`, {
      method,
      ...(body === undefined || method === 'GET' ? {} : { body }),
      signal: AbortSignal.timeout(5_000),
    });
    await response.arrayBuffer();
    return response.status;
  }

  /** Everything a client can read of the state, indexes included. */
  async function snapshot(): Promise<string> {
    const reads = [
      '/v1/catalog/services',
      '/v1/health/service/users',
      '/v1/health/service/mail',
      '/v1/agent/services',
      '/v1/agent/checks',
      '/v1/kv/?recurse',
    ];
    const parts = await Promise.all(
      reads.map(async (path) => {
        const reply = await get(`${running.url}${path}`);
        return `${path} ${reply.status} ${reply.headers.get('x-consul-index')} ${reply.text}`;
      }),
    );
    return parts.join('\n');
  }

  const segment = fc.oneof(
    fc.constantFrom('users', 'users-1', 'mail-1', 'service:users-1', 'service:mail-1:1', 'config', 'nope', ''),
    fc.string({ maxLength: 12 }).map(encodeURIComponent),
  );
  const path = fc.oneof(
    fc.constant('/v1/agent/service/register'),
    fc
      .tuple(
        fc.constantFrom(
          '/v1/agent/service/deregister/',
          '/v1/agent/check/pass/',
          '/v1/agent/check/warn/',
          '/v1/agent/check/fail/',
          '/v1/agent/check/update/',
          '/v1/agent/check/deregister/',
          '/v1/agent/check/register',
          '/v1/health/service/',
          '/v1/health/checks/',
          '/v1/health/state/',
          '/v1/catalog/service/',
          '/v1/catalog/services',
          '/v1/kv/',
          '/v1/kv/config/',
          '/v1/agent/self',
          '/v1/status/leader',
          '/v1/',
          '/ui/',
          '/',
        ),
        segment,
      )
      .map(([a, b]) => a + b),
  );
  const queryParam = fc.oneof(
    fc.constantFrom(
      'passing',
      'recurse',
      'keys',
      'raw',
      'separator=/',
      'cas=0',
      'cas=abc',
      'cas=-1',
      'flags=99',
      'flags=x',
      'note=hi',
      'tag=http',
      'replace-existing-checks',
      'passing=maybe',
      'index=abc',
      'index=-5',
      'wait=soon',
      'index=0',
      'index=999999',
    ),
    fc
      .tuple(
        fc.constantFrom('index', 'wait', 'cas', 'flags', 'note', 'tag', 'node-meta', 'separator', 'token'),
        fc.string({ maxLength: 8 }),
      )
      .map(([k, v]) => `${k}=${encodeURIComponent(v)}`),
  );
  // A short wait goes first (the first value of a parameter counts), so that a random index the
  // server has not reached yet holds the read for milliseconds, not minutes.
  const query = fc.array(queryParam, { maxLength: 3 }).map((params) => `?${['wait=10ms', ...params].join('&')}`);

  const validRegistration = {
    Name: 'users',
    ID: 'users-3',
    Port: 4003,
    Tags: ['a'],
    Meta: { k: 'v' },
    Check: { TTL: '30s', DeregisterCriticalServiceAfter: '1m', Status: 'passing' },
  };
  // A valid body with one field set to something random, removed, or its key's case changed.
  const mutatedRegistration = fc
    .tuple(
      fc.constantFrom(
        'Name',
        'ID',
        'Port',
        'Tags',
        'Meta',
        'Check',
        'Check.TTL',
        'Check.Status',
        'Check.DeregisterCriticalServiceAfter',
        'Weights',
        'Address',
      ),
      fc.oneof(fc.constant(undefined), fc.jsonValue()),
    )
    .map(([field, value]) => {
      const body = structuredClone(validRegistration) as Record<string, unknown>;
      const [outer, inner] = field.split('.') as [string, string | undefined];
      const target = inner === undefined ? body : (body[outer] as Record<string, unknown>);
      const key = inner ?? outer;
      if (value === undefined) delete target[key];
      else target[key] = value;
      return JSON.stringify(body);
    });
  const body = fc.oneof(
    fc.constant(undefined),
    mutatedRegistration,
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.string({ maxLength: 40 }),
    fc.constantFrom(
      '{',
      '{"Name":',
      'null',
      '[]',
      '{"Name":"x","Port":"80"}',
      '{"Status":"sideways"}',
      '{"Name":"x","Check":{"TTL":"soon"}}',
    ),
  );
  const request = fc.record({ method: fc.constantFrom('GET', 'PUT', 'DELETE', 'POST'), path, query, body });

  it('never answers 5xx, and changes nothing when it answers 4xx', async () => {
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const before = await snapshot();
        const status = await send(r.method, r.path + r.query, r.body);
        expect(status).toBeLessThan(500);
        if (status >= 400) expect(await snapshot()).toBe(before);
      }),
      { numRuns: 400 },
    );
  }, 120_000);
});
