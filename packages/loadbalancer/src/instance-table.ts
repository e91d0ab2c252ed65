import type { ServiceInstance } from '@trellis/core';

/** What every per-instance state carries so that the table can forget instances that left. */
export interface InstanceState {
  /** Requests sent and not yet ended; a state with some in flight is never forgotten. */
  outstanding: number;
  /** Sweep generation in which the state was last used. */
  seen: number;
}

// Instances come and go (deploys, autoscaling); state of those gone must not pile up. Every
// this many lookups, states unused since the previous sweep and with nothing in flight go.
const sweepEvery = 4096;

interface ListStates<S> {
  readonly generation: number;
  readonly states: readonly S[];
}

/**
 * Per-instance state of a strategy, by instance id (discovery hands out new objects on every
 * refresh, so object identity cannot key it). Bounded: unused states are swept away.
 */
export class InstanceTable<S extends InstanceState> {
  readonly #states = new Map<string, S>();
  readonly #create: () => S;
  // The states of a list, in its order, looked up once per list and sweep rather than once per
  // instance per pick: lists are immutable and reused (one per discovery refresh or subset).
  readonly #lists = new WeakMap<readonly ServiceInstance[], ListStates<S>>();
  #lastList: readonly ServiceInstance[] | undefined;
  #lastStates: ListStates<S> = { generation: -1, states: [] };
  #generation = 0;
  #lookups = 0;

  constructor(create: () => S) {
    this.#create = create;
  }

  /** The state of `instance`, created on first use. */
  get(instance: ServiceInstance): S {
    if (++this.#lookups >= sweepEvery) this.#sweep();
    let state = this.#states.get(instance.id);
    if (state === undefined) {
      state = this.#create();
      this.#states.set(instance.id, state);
    }
    state.seen = this.#generation;
    return state;
  }

  /**
   * The states of `instances`, index for index. Valid until the next sweep, which any
   * {@link get} may run: call this again rather than keep the result.
   */
  statesFor(instances: readonly ServiceInstance[]): readonly S[] {
    const last = this.#lastStates;
    if (instances === this.#lastList && last.generation === this.#generation) return last.states;
    let entry = this.#lists.get(instances);
    if (entry === undefined || entry.generation !== this.#generation) {
      // The generation at the start: a sweep during the lookups leaves the entry stale, and it
      // is rebuilt (marking every state as used again) on the next call.
      const generation = this.#generation;
      entry = { generation, states: instances.map((i) => this.get(i)) };
      this.#lists.set(instances, entry);
    }
    this.#lastList = instances;
    this.#lastStates = entry;
    return entry.states;
  }

  /** The state of `instance` if it has one; for feedback, which must not resurrect a forgotten one. */
  find(instance: ServiceInstance): S | undefined {
    return this.#states.get(instance.id);
  }

  #sweep(): void {
    this.#lookups = 0;
    const keepFrom = this.#generation;
    this.#generation++;
    for (const [id, state] of this.#states) {
      if (state.seen < keepFrom && state.outstanding <= 0) this.#states.delete(id);
    }
  }
}

/** A new state with nothing in flight. */
export function freshState(): InstanceState {
  return { outstanding: 0, seen: 0 };
}
