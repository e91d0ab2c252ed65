import { ConfigError, type Call, type ServiceInstance } from '@trellis/core';
import { hash32 } from './hash.js';
import { keyFunction, type HashKey, type KeyFunction } from './hash-keys.js';
import { Strategy } from './strategy.js';

export interface ConsistentHashOptions {
  /** What a call is hashed by; default `'path'`, its path without the query. */
  readonly key?: HashKey;
  /**
   * Bounded loads: no instance takes more than `loadFactor` times the mean number of calls in
   * flight (rounded up), the excess going to the next instance on the ring. Default 1.25 (the
   * paper's and HAProxy's); `Infinity` turns the bound off.
   */
  readonly loadFactor?: number;
  /** Points per instance on the ring; more spreads keys more evenly. Default 160 (ketama's). */
  readonly replicas?: number;
}

/** Hash points of a set of instances, by id: shared by every list with those ids. */
interface Ring {
  /** Sorted hash points. */
  readonly points: Uint32Array;
  /** For each point, the index of its member in id order. */
  readonly owners: Uint32Array;
}

/** A ring with one list's instances in id order, the objects that list holds. */
interface ListRing {
  readonly ring: Ring;
  readonly members: readonly ServiceInstance[];
}

// A few rings are kept by their ids, so that a refreshed list with the same instances reuses
// its ring; lists themselves map to their ring weakly, so that routing rules alternating
// between subsets do not sort a list on every call.
const maxRings = 8;

/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam; used by Vimeo and
 * HAProxy): calls with the same key go to the same instance, so its caches stay warm; adding
 * or removing one instance of n moves only about 1/n of the keys. When an instance already has
 * `loadFactor` times its share of the calls in flight, the call goes on to the next instance
 * on the ring, so a hot key cannot overload one instance.
 *
 * Calls without a key are spread in turn. Needs feedback for the bound: add the load
 * balancer's `feedback` filter. O(log(n × replicas)) per pick.
 *
 * @throws ConfigError (field "loadFactor", "replicas" or "key") for a load factor below 1, a
 *   replica count that is not a positive integer, or a key of none of {@link HashKey}'s forms.
 * @example
 * const strategy = new ConsistentHash({ key: { header: 'x-user-id' } });
 */
export class ConsistentHash extends Strategy {
  readonly name = 'consistent-hash';
  readonly #key: KeyFunction;
  readonly #loadFactor: number;
  readonly #replicas: number;
  readonly #rings = new Map<string, Ring>();
  readonly #byList = new WeakMap<readonly ServiceInstance[], ListRing>();
  /** Calls in flight by instance id; an entry goes when its count returns to 0. */
  readonly #inFlight = new Map<string, number>();
  #total = 0;
  #lastList: readonly ServiceInstance[] | undefined;
  #lastRing: ListRing | undefined;
  #turn = 0;

  constructor(options: ConsistentHashOptions = {}) {
    super();
    const loadFactor = options.loadFactor ?? 1.25;
    const replicas = options.replicas ?? 160;
    if (!(loadFactor >= 1)) throw new ConfigError('loadFactor', `must be a number >= 1, got ${loadFactor}`);
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 10_000) {
      throw new ConfigError('replicas', `must be an integer from 1 to 10000, got ${replicas}`);
    }
    this.#key = keyFunction(options.key ?? 'path');
    this.#loadFactor = loadFactor;
    this.#replicas = replicas;
  }

  override get usesFeedback(): boolean {
    return true;
  }

  select(instances: readonly ServiceInstance[], call: Call): ServiceInstance | undefined {
    const n = instances.length;
    if (n < 2) return instances[0];
    const { ring, members } = this.#ringFor(instances);
    const key = this.#key(call);
    if (key === undefined) {
      this.#turn = this.#turn < n - 1 ? this.#turn + 1 : 0;
      return members[this.#turn];
    }
    const { points, owners } = ring;
    let at = firstAtOrAfter(points, hash32(key));
    const capacity = Math.ceil((this.#loadFactor * (this.#total + 1)) / n);
    // Some member is under capacity (their loads sum to less than n × capacity), so the walk
    // ends within one turn of the ring.
    for (let step = 0; step < points.length; step++) {
      const member = members[owners[at] as number] as ServiceInstance;
      if ((this.#inFlight.get(member.id) ?? 0) + 1 <= capacity) return member;
      at = at + 1 < points.length ? at + 1 : 0;
    }
    return members[owners[at] as number];
  }

  override attemptStarted(instance: ServiceInstance): void {
    this.#inFlight.set(instance.id, (this.#inFlight.get(instance.id) ?? 0) + 1);
    this.#total++;
  }

  override attemptEnded(instance: ServiceInstance, _durationMs: number, _failed: boolean): void {
    const count = this.#inFlight.get(instance.id);
    if (count === undefined) return;
    if (count <= 1) this.#inFlight.delete(instance.id);
    else this.#inFlight.set(instance.id, count - 1);
    this.#total--;
  }

  /** Calls in flight to `instance` through this strategy. */
  outstanding(instance: ServiceInstance): number {
    return this.#inFlight.get(instance.id) ?? 0;
  }

  /** The instance the ring owns `key` with no load bound: for tests and for explaining a pick. */
  owner(instances: readonly ServiceInstance[], key: string): ServiceInstance | undefined {
    if (instances.length < 2) return instances[0];
    const { ring, members } = this.#ringFor(instances);
    return members[ring.owners[firstAtOrAfter(ring.points, hash32(key))] as number];
  }

  #ringFor(instances: readonly ServiceInstance[]): ListRing {
    if (instances === this.#lastList && this.#lastRing !== undefined) return this.#lastRing;
    let listRing = this.#byList.get(instances);
    if (listRing === undefined) {
      const members = [...instances].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      const signature = members.map((m) => m.id).join('\n');
      let ring = this.#rings.get(signature);
      if (ring === undefined) {
        ring = buildRing(members, this.#replicas);
        if (this.#rings.size >= maxRings) this.#rings.delete(this.#rings.keys().next().value as string);
      } else {
        this.#rings.delete(signature); // re-inserted below: the map's order is least recently used first
      }
      this.#rings.set(signature, ring);
      listRing = { ring, members };
      this.#byList.set(instances, listRing);
    }
    this.#lastList = instances;
    this.#lastRing = listRing;
    return listRing;
  }
}

function buildRing(members: readonly ServiceInstance[], replicas: number): Ring {
  // Pack (point, member) in one double, point high, so one native sort orders both.
  const packed = new Float64Array(members.length * replicas);
  let k = 0;
  for (let m = 0; m < members.length; m++) {
    const id = (members[m] as ServiceInstance).id;
    for (let r = 0; r < replicas; r++) packed[k++] = hash32(`${id}#${r}`) * 2 ** 20 + m;
  }
  packed.sort();
  const points = new Uint32Array(packed.length);
  const owners = new Uint32Array(packed.length);
  for (let i = 0; i < packed.length; i++) {
    const value = packed[i] as number;
    const point = Math.floor(value / 2 ** 20);
    points[i] = point;
    owners[i] = value - point * 2 ** 20;
  }
  return { points, owners };
}

/** Index of the first point >= hash, wrapping to 0 past the last. */
function firstAtOrAfter(points: Uint32Array, hash: number): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((points[mid] as number) < hash) lo = mid + 1;
    else hi = mid;
  }
  return lo === points.length ? 0 : lo;
}
