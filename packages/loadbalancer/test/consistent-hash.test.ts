import { ConfigError, type ServiceInstance } from '@trellis/core';
import { ConsistentHash } from '@trellis/loadbalancer';
import { keyFunction } from '../src/hash-keys.js';
import { call, instance, seeded } from './fixtures.js';

const byUser = (user: string) => call({ headers: { 'x-user-id': user } });
const users = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);
const fleet = (n: number): ServiceInstance[] => Array.from({ length: n }, (_, i) => instance(`users-${i}`));

function owners(strategy: ConsistentHash, list: readonly ServiceInstance[]): Map<string, string> {
  return new Map(users.map((u) => [u, strategy.select(list, byUser(u))?.id ?? 'none']));
}

describe('ConsistentHash', () => {
  it('sends every call with one key to one instance', () => {
    const ch = new ConsistentHash({ key: { header: 'x-user-id' } });
    const list = fleet(5);
    const first = ch.select(list, byUser('ada'));
    for (let i = 0; i < 20; i++) expect(ch.select(list, byUser('ada'))).toBe(first);
    // The ring is built on ids, not on the order discovery lists them in.
    expect(ch.select([...list].reverse(), byUser('ada'))?.id).toBe(first?.id);
  });

  it('spreads 10 000 keys over 10 instances, each within 30% of an equal share', () => {
    const ch = new ConsistentHash({ key: { header: 'x-user-id' } });
    const counts = new Map<string, number>();
    for (const id of owners(ch, fleet(10)).values()) counts.set(id, (counts.get(id) ?? 0) + 1);
    expect(counts.size).toBe(10);
    for (const count of counts.values()) expect(Math.abs(count - 1_000)).toBeLessThan(300);
  });

  it.each([5, 10, 20])('moves at most 1/N of the keys, all to the newcomer, when one instance joins N = %i', (n) => {
    const ch = new ConsistentHash({ key: { header: 'x-user-id' } });
    const before = owners(ch, fleet(n));
    const after = owners(ch, fleet(n + 1));
    let moved = 0;
    const elsewhere: string[] = [];
    for (const [user, owner] of before) {
      if (after.get(user) === owner) continue;
      moved++;
      if (after.get(user) !== `users-${n}`) elsewhere.push(user);
    }
    expect(elsewhere).toEqual([]);
    // The expected share is 1/(N+1); 1/N leaves room for the ring's unevenness.
    expect(moved / users.length).toBeLessThanOrEqual(1 / n);
    expect(moved / users.length).toBeGreaterThan(0.5 / (n + 1));
  });

  it('moves only the keys of an instance that leaves', () => {
    const ch = new ConsistentHash({ key: { header: 'x-user-id' } });
    const list = fleet(8);
    const before = owners(ch, list);
    const after = owners(
      ch,
      list.filter((i) => i.id !== 'users-3'),
    );
    const moved = [...before].filter(([user, owner]) => owner !== 'users-3' && after.get(user) !== owner);
    expect(moved).toEqual([]);
  });

  it('never lets an instance go above its bounded load, even when one key is hot', () => {
    const ch = new ConsistentHash({ key: { header: 'x-user-id' }, loadFactor: 1.25 });
    const list = fleet(4);
    const random = seeded(12);
    let total = 0;
    let spilled = 0;
    let worstExcess = -Infinity;
    const hotOwner = ch.owner(list, 'hot')?.id;
    for (let i = 0; i < 2_000; i++) {
      // 80% of calls carry the same key.
      const user = random() < 0.8 ? 'hot' : `user-${Math.floor(random() * 1_000)}`;
      const chosen = ch.select(list, byUser(user));
      if (chosen === undefined) throw new Error('no pick');
      if (user === 'hot' && chosen.id !== hotOwner) spilled++;
      ch.attemptStarted(chosen);
      total++;
      const bound = Math.ceil((1.25 * total) / list.length);
      for (const member of list) worstExcess = Math.max(worstExcess, ch.outstanding(member) - bound);
      // Some calls end, in arrival order of a random instance's, to keep the load moving.
      if (random() < 0.3) {
        const done = list[Math.floor(random() * list.length)] as ServiceInstance;
        if (ch.outstanding(done) > 0) {
          ch.attemptEnded(done, 1, false);
          total--;
        }
      }
    }
    expect(worstExcess).toBeLessThanOrEqual(0);
    expect(spilled).toBeGreaterThan(0);
  });

  it('keeps a key on its owner while the owner is under its bound', () => {
    const ch = new ConsistentHash({ key: { header: 'x-user-id' } });
    const list = fleet(4);
    const owner = ch.owner(list, 'ada');
    expect(ch.select(list, byUser('ada'))).toBe(owner);
    ch.attemptStarted(owner!); // 1 in flight: capacity ceil(1.25 × 2 / 4) = 1 is now full
    expect(ch.select(list, byUser('ada'))).not.toBe(owner);
    ch.attemptEnded(owner!, 1, false);
    expect(ch.select(list, byUser('ada'))).toBe(owner);
  });

  it('spreads calls that carry no key in turn', () => {
    const ch = new ConsistentHash({ key: { header: 'x-session' } });
    const list = fleet(3);
    const ids = Array.from({ length: 6 }, () => ch.select(list, call())?.id);
    expect(new Set(ids).size).toBe(3);
  });

  it('picks nothing from an empty list and the only one from a list of one', () => {
    const ch = new ConsistentHash();
    expect(ch.select([], call())).toBeUndefined();
    expect(ch.select([instance('solo')], call())?.id).toBe('solo');
  });

  it('refuses a load factor below 1 or a bad replica count, naming the field', () => {
    expect(() => new ConsistentHash({ loadFactor: 0.9 })).toThrow('invalid configuration "loadFactor"');
    expect(() => new ConsistentHash({ replicas: 0 })).toThrow(ConfigError);
    expect(() => new ConsistentHash({ replicas: 1.5 })).toThrow('invalid configuration "replicas"');
  });
});

describe('hash keys', () => {
  it('takes a header whatever the case of its name', () => {
    expect(keyFunction({ header: 'X-Tenant' })(call({ headers: { 'x-tenant': 'acme' } }))).toBe('acme');
    expect(keyFunction({ header: 'x-tenant' })(call({ headers: { 'X-Tenant': 'acme' } }))).toBe('acme');
    expect(keyFunction({ header: 'x-tenant' })(call())).toBeUndefined();
    expect(keyFunction({ header: 'x-user-id' })(byUser('ada'))).toBe('ada');
  });

  it('takes the path, a path segment or a query parameter', () => {
    const c = call({ path: '/users/42/posts?shard=7&x=1' });
    expect(keyFunction('path')(c)).toBe('/users/42/posts');
    expect(keyFunction({ pathSegment: 0 })(c)).toBe('users');
    expect(keyFunction({ pathSegment: 1 })(c)).toBe('42');
    expect(keyFunction({ pathSegment: 5 })(c)).toBeUndefined();
    expect(keyFunction({ query: 'shard' })(c)).toBe('7');
    expect(keyFunction({ query: 'missing' })(c)).toBeUndefined();
    expect(keyFunction({ query: 'shard' })(call({ path: '/users' }))).toBeUndefined();
  });

  it('refuses a key of none of its forms, naming the field', () => {
    expect(() => new ConsistentHash({ key: { header: '' } })).toThrow('invalid configuration "key.header"');
    expect(() => new ConsistentHash({ key: { pathSegment: -1 } })).toThrow('invalid configuration "key.pathSegment"');
    expect(() => new ConsistentHash({ key: { heder: 'x' } as never })).toThrow('invalid configuration "key"');
    expect(() => new ConsistentHash({ key: 'user' as never })).toThrow(ConfigError);
  });

  it('hashes by path by default: one resource, one instance', () => {
    const ch = new ConsistentHash();
    const list = fleet(6);
    const a = ch.select(list, call({ path: '/users/1?fields=name' }));
    expect(ch.select(list, call({ path: '/users/1' }))).toBe(a);
  });
});
