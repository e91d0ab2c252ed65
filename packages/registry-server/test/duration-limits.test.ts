import { afterEach, describe, expect, it } from '@jest/globals';
import { closeAll, get, put, startServer } from './helpers.js';

afterEach(closeAll);

describe('durations given as numbers of nanoseconds', () => {
  it("are refused past Go's longest duration with 400 naming the field, as Consul cannot decode them", async () => {
    const { url } = await startServer();
    for (const [body, field] of [
      [{ Name: 'web', Check: { TTL: 1e30 } }, 'Check.TTL'],
      [{ Name: 'web', Check: { HTTP: 'http://127.0.0.1:1/', Interval: 1e30 } }, 'Check.Interval'],
      [{ Name: 'web', Check: { HTTP: 'http://127.0.0.1:1/', Interval: '10s', Timeout: 2 ** 63 } }, 'Check.Timeout'],
      [
        { Name: 'web', Check: { TTL: '10s', DeregisterCriticalServiceAfter: 1e30 } },
        'Check.DeregisterCriticalServiceAfter',
      ],
    ] as const) {
      const reply = await put(`${url}/v1/agent/service/register`, JSON.stringify(body));
      expect([field, reply.status, reply.text]).toEqual([
        field,
        400,
        `Request decode failed: ${field} must be at most 2^63-1 nanoseconds, Go's longest duration (about 292 years)`,
      ]);
    }
    const check = await put(`${url}/v1/agent/check/register`, JSON.stringify({ Name: 'disk', TTL: 1e30 }));
    expect([check.status, check.text]).toEqual([
      400,
      "Request decode failed: TTL must be at most 2^63-1 nanoseconds, Go's longest duration (about 292 years)",
    ]);
    expect(JSON.parse((await get(`${url}/v1/agent/checks`)).text)).toEqual({});
  });

  it('are taken up to it, and read back as Go durations', async () => {
    const { url } = await startServer();
    // 1 h in nanoseconds, as Go's client encodes a time.Duration.
    expect(
      (await put(`${url}/v1/agent/service/register`, JSON.stringify({ Name: 'web', Check: { TTL: 3.6e12 } }))).status,
    ).toBe(200);
    const checks = JSON.parse((await get(`${url}/v1/agent/checks`)).text) as Record<
      string,
      { Definition: { TTL: string } }
    >;
    expect(checks['service:web']?.Definition.TTL).toBe('1h0m0s');
  });
});
