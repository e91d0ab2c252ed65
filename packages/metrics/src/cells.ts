import type { Registry } from 'prom-client';

/*
 * Series kept in our own cells and handed to prom-client only when it is scraped. prom-client
 * hashes the label object on every observe() and inc(), even through a child from labels(),
 * which cost a governed call more than the rest of its metrics together; here a series is found
 * by walking nested Maps keyed by label values that are already bounded (enums, or capped by a
 * LabelCap), and a histogram's buckets are a plain array of counts.
 */

/** One series' value as prom-client's registry formats it. */
interface Sample {
  readonly value: number;
  readonly labels: Readonly<Record<string, string | number>>;
  readonly metricName?: string;
  /** Labels prom-client's text writer puts after `labels`; one object per series, so its WeakMap cache holds. */
  readonly sharedLabels?: Readonly<Record<string, string>>;
}

/** What prom-client's registry reads of a metric: `get()` for JSON, `getForPromString()` for the text format. */
interface MetricObject {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator: 'sum';
  readonly values: Sample[];
}

/** A series: its labels, made once, and the cell holding its value. */
interface Entry<C> {
  readonly labels: Readonly<Record<string, string>>;
  readonly cell: C;
}

type Node<C> = Map<string, Node<C> | Entry<C>>;

/**
 * The cells of one metric, one per label set, found by label values in the order of
 * `labelNames` (up to five), kept in the order they were first seen, as prom-client does.
 */
class Cells<C> {
  readonly #labelNames: readonly string[];
  readonly #make: () => C;
  #root: Node<C> = new Map();
  #entries: Entry<C>[] = [];

  constructor(labelNames: readonly string[], make: () => C) {
    if (labelNames.length < 1 || labelNames.length > 5) throw new RangeError('between 1 and 5 labels');
    this.#labelNames = labelNames;
    this.#make = make;
  }

  get entries(): readonly Entry<C>[] {
    return this.#entries;
  }

  // Positional rather than an array, so that the hot path allocates nothing once a series exists.
  at(a: string, b?: string, c?: string, d?: string, e?: string): C {
    const last = this.#labelNames.length - 1;
    let node = this.#root;
    for (let i = 0; i < last; i++) {
      const key = (i === 0 ? a : i === 1 ? b : i === 2 ? c : d) as string;
      let next = node.get(key) as Node<C> | undefined;
      if (next === undefined) {
        next = new Map();
        node.set(key, next);
      }
      node = next;
    }
    const key = (last === 0 ? a : last === 1 ? b : last === 2 ? c : last === 3 ? d : e) as string;
    const entry = node.get(key) as Entry<C> | undefined;
    if (entry !== undefined) return entry.cell;
    return this.#add(node, key, [a, b, c, d, e]);
  }

  clear(): void {
    this.#root = new Map();
    this.#entries = [];
  }

  #add(node: Node<C>, key: string, values: ReadonlyArray<string | undefined>): C {
    const labels: Record<string, string> = {};
    this.#labelNames.forEach((name, i) => {
      labels[name] = values[i] ?? '';
    });
    const entry: Entry<C> = { labels, cell: this.#make() };
    node.set(key, entry);
    this.#entries.push(entry);
    return entry.cell;
  }
}

/** What a metric of ours needs: prom-client's registry calls these and nothing else. */
abstract class CellMetric {
  readonly aggregator = 'sum' as const;
  abstract readonly type: 'counter' | 'gauge' | 'histogram';

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  /** Registers the metric; prom-client's types know only its own classes, its registry reads only this protocol. */
  register(registry: Registry): this {
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
    return this;
  }

  get(): Promise<MetricObject> {
    return Promise.resolve(this.#object(this.samples(false)));
  }

  getForPromString(): Promise<MetricObject> {
    return Promise.resolve(this.#object(this.samples(true)));
  }

  abstract reset(): void;

  /** The samples; `shared` when the labels of a series may be given as `sharedLabels` (the text format). */
  protected abstract samples(shared: boolean): Sample[];

  #object(values: Sample[]): MetricObject {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

interface Value {
  value: number;
}

/** A counter (or an event-fed gauge) in cells: `at(...labels).value += 1`. */
export class CounterCells extends CellMetric {
  readonly type: 'counter' | 'gauge';
  readonly #cells: Cells<Value>;

  constructor(name: string, help: string, labelNames: readonly string[], type: 'counter' | 'gauge' = 'counter') {
    super(name, help);
    this.type = type;
    this.#cells = new Cells(labelNames, () => ({ value: 0 }));
  }

  /** The cell of one label set, in the order of the label names; made at 0 on first use. */
  at(a: string, b?: string, c?: string, d?: string, e?: string): Value {
    return this.#cells.at(a, b, c, d, e);
  }

  reset(): void {
    this.#cells.clear();
  }

  /** Every series, for a gauge that shows these cells only some of the time. */
  values(): GaugeSample[] {
    return this.#cells.entries.map((entry) => ({ value: entry.cell.value, labels: entry.labels }));
  }

  protected samples(): Sample[] {
    return this.values();
  }
}

interface Buckets {
  /** Observations per bucket, not cumulative; the last slot is above the highest bound. */
  readonly counts: number[];
  sum: number;
  count: number;
}

/** A histogram in cells: a count per bucket, the sum and the count of each label set. */
export class HistogramCells extends CellMetric {
  readonly type = 'histogram' as const;
  readonly #bounds: readonly number[];
  readonly #le: ReadonlyArray<Readonly<Record<string, string | number>>>;
  readonly #cells: Cells<Buckets>;

  constructor(name: string, help: string, labelNames: readonly string[], bounds: readonly number[]) {
    super(name, help);
    this.#bounds = [...bounds].sort((x, y) => x - y);
    this.#le = [...this.#bounds.map((le) => ({ le })), { le: '+Inf' }];
    const slots = this.#bounds.length + 1;
    this.#cells = new Cells(labelNames, () => ({ counts: new Array<number>(slots).fill(0), sum: 0, count: 0 }));
  }

  /** Counts `value` (seconds) under one label set, in the order of the label names. */
  observe(value: number, a: string, b?: string, c?: string, d?: string, e?: string): void {
    // prom-client throws here; a call must never fail for its metrics.
    if (!Number.isFinite(value)) return;
    const cell = this.#cells.at(a, b, c, d, e);
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    (cell.counts[i] as number)++;
    cell.sum += value;
    cell.count++;
  }

  reset(): void {
    this.#cells.clear();
  }

  // As prom-client writes a histogram: per series its cumulative buckets with `le` first, +Inf, _sum, _count.
  protected samples(shared: boolean): Sample[] {
    const samples: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    const sum = `${this.name}_sum`;
    const count = `${this.name}_count`;
    const none = {};
    for (const { labels, cell } of this.#cells.entries) {
      let cumulative = 0;
      this.#le.forEach((le, i) => {
        // The +Inf bucket is the count, whatever the rounding of the others.
        cumulative = i === this.#bounds.length ? cell.count : cumulative + (cell.counts[i] as number);
        samples.push(
          shared
            ? { value: cumulative, labels: le, sharedLabels: labels, metricName: bucket }
            : { value: cumulative, labels: { ...le, ...labels }, metricName: bucket },
        );
      });
      samples.push(
        shared
          ? { value: cell.sum, labels: none, sharedLabels: labels, metricName: sum }
          : { value: cell.sum, labels: { ...labels }, metricName: sum },
        shared
          ? { value: cell.count, labels: none, sharedLabels: labels, metricName: count }
          : { value: cell.count, labels: { ...labels }, metricName: count },
      );
    }
    return samples;
  }
}

/** One value of a gauge computed at scrape time. */
export interface GaugeSample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A gauge whose values are computed when it is scraped, from the state of the objects it reads. */
export class ScrapedGauge extends CellMetric {
  readonly type = 'gauge' as const;
  readonly #read: () => Iterable<GaugeSample>;

  constructor(name: string, help: string, read: () => Iterable<GaugeSample>) {
    super(name, help);
    this.#read = read;
  }

  reset(): void {}

  protected samples(): Sample[] {
    return [...this.#read()].map((s) => ({ value: s.value, labels: s.labels }));
  }
}
