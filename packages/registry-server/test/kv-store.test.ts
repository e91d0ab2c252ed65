import { describe, expect, it } from '@jest/globals';
import { ClosedError } from '@trellis/core';
import { KvRequestError, KvStore, kvMaxValueSize, type KvChange } from '../src/kv/kv-store.js';

function watched(kv: KvStore): KvChange[] {
  const changes: KvChange[] = [];
  kv.onChange((change) => changes.push(change));
  return changes;
}

describe('KvStore', () => {
  it('starts at index 1 and gives each change the next index', () => {
    const kv = new KvStore();
    expect(kv.index).toBe(1);
    expect(kv.keyIndex('missing')).toBe(1);
    expect(kv.prefixIndex('a/')).toBe(1);
    const changes = watched(kv);
    expect(kv.set('a', 'one')).toBe(true);
    expect(kv.set('b', 'two')).toBe(true);
    expect(kv.delete('a')).toBe(true);
    expect(changes).toEqual([
      { keys: ['a'], index: 2 },
      { keys: ['b'], index: 3 },
      { keys: ['a'], index: 4 },
    ]);
    expect(kv.index).toBe(4);
  });

  it('keeps CreateIndex across updates and moves ModifyIndex', () => {
    const kv = new KvStore();
    kv.set('k', 'v1', { flags: 7 });
    kv.set('other', 'x');
    kv.set('k', 'v2');
    expect(kv.get('k')).toEqual({
      key: 'k',
      value: Buffer.from('v2'),
      flags: 0, // a set without flags stores 0, as Consul does
      createIndex: 2,
      modifyIndex: 4,
      lockIndex: 0,
    });
  });

  it('treats a set of the same value and flags as no change, as Consul does', () => {
    const kv = new KvStore();
    kv.set('k', 'v', { flags: 3 });
    const changes = watched(kv);
    expect(kv.set('k', Buffer.from('v'), { flags: 3 })).toBe(true);
    expect(changes).toEqual([]);
    expect([kv.index, kv.get('k')?.modifyIndex]).toEqual([2, 2]);
    // Other flags alone are a change.
    expect(kv.set('k', 'v', { flags: 4 })).toBe(true);
    expect(changes).toEqual([{ keys: ['k'], index: 3 }]);
  });

  it('stores a copy of the bytes it is given', () => {
    const kv = new KvStore();
    const bytes = new Uint8Array([0, 1, 255]);
    kv.set('bin', bytes);
    bytes[0] = 9;
    expect([...(kv.get('bin')?.value ?? [])]).toEqual([0, 1, 255]);
  });

  it('lists a prefix in UTF-8 byte order, as Consul does', () => {
    const kv = new KvStore();
    // U+FF5E sorts before U+1F600 in UTF-8 (and code points), after it in UTF-16 units.
    for (const key of ['p/😀', 'p/～', 'p/b', 'p/a', 'q/a', 'p']) kv.set(key, key);
    expect(kv.list('p/').map((e) => e.key)).toEqual(['p/a', 'p/b', 'p/～', 'p/😀']);
    expect(kv.list('').map((e) => e.key)).toEqual(['p', 'p/a', 'p/b', 'p/～', 'p/😀', 'q/a']);
    expect(kv.list('r/')).toEqual([]);
  });

  it('lists keys up to the first separator after the prefix, once each', () => {
    const kv = new KvStore();
    for (const key of ['a/b', 'a/c/d', 'a/c/e', 'a/f/', 'a/g/h/i', 'ab', 'z']) kv.set(key, '');
    expect(kv.keys('a/', '/')).toEqual(['a/b', 'a/c/', 'a/f/', 'a/g/']);
    expect(kv.keys('', '/')).toEqual(['a/', 'ab', 'z']);
    expect(kv.keys('a')).toEqual(['a/b', 'a/c/d', 'a/c/e', 'a/f/', 'a/g/h/i', 'ab']);
    expect(kv.keys('a/c', '/')).toEqual(['a/c/']);
    expect(kv.keys('a/', '/h/')).toEqual(['a/b', 'a/c/d', 'a/c/e', 'a/f/', 'a/g/h/']);
  });

  describe('check-and-set', () => {
    it('with cas 0 creates a key only when it is absent', () => {
      const kv = new KvStore();
      expect(kv.set('k', 'first', { cas: 0 })).toBe(true);
      expect(kv.set('k', 'second', { cas: 0 })).toBe(false);
      expect(kv.get('k')?.value.toString()).toBe('first');
    });

    it('with cas N writes only while the ModifyIndex is N, so it succeeds once', () => {
      const kv = new KvStore();
      kv.set('k', 'v1');
      const seen = kv.get('k')?.modifyIndex ?? 0;
      expect(kv.set('k', 'v2', { cas: seen })).toBe(true);
      expect(kv.set('k', 'v3', { cas: seen })).toBe(false);
      expect(kv.set('absent', 'v', { cas: seen })).toBe(false);
      expect(kv.get('k')?.value.toString()).toBe('v2');
      expect(kv.get('absent')).toBeUndefined();
    });

    it('deletes only at the given ModifyIndex, and answers true for an absent key as Consul does', () => {
      const kv = new KvStore();
      kv.set('k', 'v');
      const seen = kv.get('k')?.modifyIndex ?? 0;
      expect(kv.delete('k', { cas: seen + 1 })).toBe(false);
      expect(kv.get('k')).toBeDefined();
      expect(kv.delete('k', { cas: seen })).toBe(true);
      expect(kv.get('k')).toBeUndefined();
      const index = kv.index;
      expect(kv.delete('k', { cas: seen })).toBe(true);
      expect(kv.index).toBe(index);
    });
  });

  it('deletes a prefix in one change, and nothing for a prefix with nothing under it', () => {
    const kv = new KvStore();
    for (const key of ['a/1', 'a/2', 'ab', 'b']) kv.set(key, 'x');
    const changes = watched(kv);
    expect(kv.delete('a/', { recurse: true })).toBe(true);
    expect(kv.list('').map((e) => e.key)).toEqual(['ab', 'b']);
    expect(kv.delete('nothing/', { recurse: true })).toBe(true);
    expect(kv.delete('missing')).toBe(true);
    expect(changes).toEqual([{ keys: ['a/1', 'a/2'], index: 6 }]);
    expect(kv.delete('', { recurse: true })).toBe(true);
    expect(kv.list('')).toEqual([]);
  });

  it('never lets the index of a prefix go back when a key under it is deleted', () => {
    const kv = new KvStore();
    kv.set('p/a', '1');
    kv.set('p/b', '2');
    kv.set('q', '3');
    expect(kv.prefixIndex('p/')).toBe(3);
    kv.delete('p/b');
    expect(kv.prefixIndex('p/')).toBe(5);
    kv.delete('p/a');
    expect(kv.prefixIndex('p/')).toBe(6);
    kv.set('r', '4');
    // Nothing under p/ changed: its index stays, while the store's moved on.
    expect([kv.prefixIndex('p/'), kv.index]).toEqual([6, 7]);
    expect(kv.prefixIndex('')).toBe(7);
    expect(kv.prefixIndex('never/')).toBe(7);
    expect(kv.keyIndex('q')).toBe(4);
    expect(kv.keyIndex('p/a')).toBe(7);
  });

  describe('refuses what it cannot store, changing nothing', () => {
    const kv = new KvStore();
    kv.set('k', 'v');
    const cases: [what: string, act: () => unknown, field: string, status: number][] = [
      ['an empty key', () => kv.set('', 'v'), 'key', 400],
      ['negative flags', () => kv.set('k', 'w', { flags: -1 }), 'flags', 400],
      ['fractional flags', () => kv.set('k', 'w', { flags: 1.5 }), 'flags', 400],
      ['flags past 2^53-1', () => kv.set('k', 'w', { flags: 2 ** 53 }), 'flags', 400],
      ['a NaN cas', () => kv.set('k', 'w', { cas: Number.NaN }), 'cas', 400],
      ['a value over the limit', () => kv.set('k', Buffer.alloc(kvMaxValueSize + 1)), 'value', 413],
      ['a delete of the empty key', () => kv.delete(''), 'key', 400],
      ['a delete with recurse and cas', () => kv.delete('k', { recurse: true, cas: 2 }), 'recurse', 400],
      ['a delete with a negative cas', () => kv.delete('k', { cas: -2 }), 'cas', 400],
    ];
    it.each(cases)('%s', (_what, act, field, status) => {
      let thrown: unknown;
      try {
        act();
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(KvRequestError);
      expect(thrown).toMatchObject({ field, statusCode: status });
      expect([kv.index, kv.get('k')?.value.toString()]).toEqual([2, 'v']);
    });
  });

  it('accepts a value of exactly the limit, with a smaller limit when configured', () => {
    expect(new KvStore().set('k', Buffer.alloc(kvMaxValueSize))).toBe(true);
    const small = new KvStore({ maxValueSize: 4 });
    expect(small.set('k', 'four')).toBe(true);
    expect(() => small.set('k', 'five!')).toThrow('Request body(5 bytes) too large, max size: 4 bytes.');
  });

  it('refuses writes once closed, and stops telling listeners', () => {
    const kv = new KvStore();
    const changes = watched(kv);
    kv.close();
    expect(() => kv.set('k', 'v')).toThrow(ClosedError);
    expect(() => kv.delete('k')).toThrow(ClosedError);
    expect(changes).toEqual([]);
  });
});
