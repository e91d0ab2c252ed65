import { ConfigError } from '@trellis/core';
import { parseRules } from '@trellis/config';

function refusal(input: unknown): { field: string; problem: string } {
  try {
    parseRules(input);
  } catch (error) {
    if (error instanceof ConfigError) return { field: error.field, problem: error.problem };
    throw error;
  }
  throw new Error('parseRules accepted it');
}

describe('parseRules, the schema of a rules document', () => {
  it('accepts every section, from an object or JSON text', () => {
    const rules = {
      client: {
        routing: {
          default: {
            split: [
              { subset: { version: '1.0.0' }, weight: 90 },
              { subset: { version: '1.1.0' }, weight: 10 },
            ],
          },
        },
        retry: { maxAttempts: 2 },
        attemptTimeoutMs: 2_000,
      },
      limits: {
        rate: { ratePerSecond: 100, burst: 20 },
        concurrency: { maxConcurrent: 8, maxQueue: 16, queueTimeoutMs: 200 },
      },
      gateway: { routes: [{ match: { pathPrefix: '/' }, service: 'web' }] },
    };
    expect(parseRules(rules)).toEqual(rules);
    expect(parseRules(JSON.stringify(rules))).toEqual(rules);
    expect(parseRules({})).toEqual({});
  });

  it('names an unknown field by its dotted path, in every section', () => {
    expect(refusal({ clinet: {} })).toEqual({ field: 'clinet', problem: 'unknown key' });
    expect(refusal({ client: { retyr: {} } })).toEqual({ field: 'client.retyr', problem: 'unknown key' });
    expect(refusal({ limits: { rate: { ratePerSecond: 1, burts: 2 } } })).toEqual({
      field: 'limits.rate.burts',
      problem: 'unknown key',
    });
    expect(refusal({ gateway: { routes: [], extra: 1 } })).toEqual({ field: 'gateway.extra', problem: 'unknown key' });
  });

  it('names a value out of range by its path, with what is allowed', () => {
    expect(refusal({ client: { routing: { default: { split: [{ subset: {}, weight: -1 }] } } } }).field).toBe(
      'client.routing.default.split[0].weight',
    );
    expect(refusal({ client: { retry: { maxAttempts: 0 } } }).field).toBe('client.retry.maxAttempts');
    expect(refusal({ limits: { rate: { ratePerSecond: 0 } } })).toEqual({
      field: 'limits.rate.ratePerSecond',
      problem: 'must be above 0',
    });
    expect(refusal({ limits: { concurrency: { maxConcurrent: 1.5 } } })).toEqual({
      field: 'limits.concurrency.maxConcurrent',
      problem: 'must be a whole number',
    });
    expect(refusal({ gateway: { routes: ['x'] } }).field).toBe('gateway.routes[0]');
  });

  it('refuses what is not a document', () => {
    expect(refusal('{nope')).toMatchObject({ field: 'rules', problem: expect.stringMatching(/^not valid JSON/) });
    expect(refusal([])).toMatchObject({ field: 'rules' });
    expect(refusal(null)).toMatchObject({ field: 'rules' });
  });
});
