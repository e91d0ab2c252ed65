import type { Clock, Timer } from '@trellis/core';

/** A node of a {@link DeadlineQueue}: when it falls due, and what to do then. */
export interface DeadlineEntry {
  readonly deadline: number;
  prev: DeadlineEntry | undefined;
  next: DeadlineEntry | undefined;
  /** Called once when the deadline passes, after the entry is unlinked. */
  expire(): void;
}

/**
 * Calls in flight under one delay (a timeout, a hedging delay), oldest first. When every entry
 * gets the same delay on a monotonic clock, deadlines come in insertion order, so one clock
 * timer armed for the oldest serves them all: no timer per call. An entry that settles is
 * unlinked at once, so the queue holds exactly the calls in flight, whatever the call rate.
 * (If the delay changes, an entry queued behind a later one fires when that one does: late by
 * at most the change.)
 */
export class DeadlineQueue<E extends DeadlineEntry> {
  readonly #clock: Clock;
  #head: DeadlineEntry | undefined;
  #tail: DeadlineEntry | undefined;
  #timer: Timer | undefined;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  add(entry: E): void {
    entry.prev = this.#tail;
    if (this.#tail === undefined) this.#head = entry;
    else this.#tail.next = entry;
    this.#tail = entry;
    // A timer armed for an earlier head that has since settled fires early, finds nothing due
    // and re-arms; that is cheaper than cancelling and re-arming on every settle.
    if (this.#timer === undefined) this.#timer = this.#clock.setTimer(entry.deadline - this.#clock.now(), this.#fire);
  }

  /** Unlinks `entry`; does nothing if it is not linked. */
  remove(entry: E): void {
    if (entry.prev === undefined) {
      if (this.#head !== entry) return;
      this.#head = entry.next;
    } else {
      entry.prev.next = entry.next;
    }
    if (entry.next === undefined) this.#tail = entry.prev;
    else entry.next.prev = entry.prev;
    entry.prev = undefined;
    entry.next = undefined;
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    const now = this.#clock.now();
    // Bounded by the number of entries in flight.
    for (let head = this.#head; head !== undefined && head.deadline <= now; head = this.#head) {
      this.remove(head as E);
      head.expire();
    }
    if (this.#head !== undefined) this.#timer = this.#clock.setTimer(this.#head.deadline - now, this.#fire);
  };
}
