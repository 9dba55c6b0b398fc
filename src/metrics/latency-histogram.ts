import type { Metric, Registry } from 'prom-client';

/** One label combination of a histogram: what the hot path holds, and calls for each observation. */
export interface HistogramSeries {
  observe(seconds: number): void;
}

/** What prom-client's registry reads from a metric when it writes the exposition (its types name only its own classes). */
interface ExposedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram';
  readonly aggregator: 'sum';
  readonly values: readonly { readonly metricName: string; readonly labels: Readonly<Record<string, string | number>>; readonly value: number }[];
}

interface SeriesState extends HistogramSeries {
  readonly labels: Readonly<Record<string, string>>;
  /** Observations per bucket (not cumulative), the last one above every bound (+Inf). */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * A Prometheus histogram for the paths every request takes. prom-client's own observe() builds a label
 * object, validates it and hashes it into a string on every call, even through a child from labels(): on the
 * request path that showed as garbage-collector time in bench:dispatch. Here a series is looked up once and
 * observing allocates nothing. prom-client's registry reads it through get(), in the format it reads its own
 * metrics in, so the exposition is prom-client's.
 */
export class LatencyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, SeriesState>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    private readonly upperBounds: readonly number[],
  ) {
    // A histogram without labels shows its zero counts before the first observation, as prom-client's do.
    if (labelNames.length === 0) this.labels();
  }

  /** The series of these label values, in labelNames' order: keep it, and observe through it. */
  labels(...values: readonly string[]): HistogramSeries {
    const key = values.join('\u0000');
    let state = this.series.get(key);
    if (!state) {
      const labels = Object.fromEntries(this.labelNames.map((name, index) => [name, values[index] ?? '']));
      const counts = new Float64Array(this.upperBounds.length + 1);
      const bounds = this.upperBounds;
      const created: SeriesState = {
        labels,
        counts,
        sum: 0,
        count: 0,
        observe(seconds) {
          let bucket = 0;
          while (bucket < bounds.length && seconds > bounds[bucket]!) bucket++;
          counts[bucket]!++;
          created.sum += seconds;
          created.count++;
        },
      };
      this.series.set(key, created);
      state = created;
    }
    return state;
  }

  /** Adds it to a registry, which then writes it with prom-client's own metrics. */
  registerIn(registry: Registry): this {
    // The registry duck-types what it registers (name, get, reset); its declared type lists its own classes.
    registry.registerMetric(this as unknown as Metric);
    return this;
  }

  async get(): Promise<ExposedMetric> {
    const values: ExposedMetric['values'][number][] = [];
    for (const state of this.series.values()) {
      let cumulative = 0;
      this.upperBounds.forEach((bound, index) => {
        cumulative += state.counts[index]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le: bound, ...state.labels }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...state.labels }, value: state.count });
      values.push({ metricName: `${this.name}_sum`, labels: state.labels, value: state.sum });
      values.push({ metricName: `${this.name}_count`, labels: state.labels, value: state.count });
    }
    return { name: this.name, help: this.help, type: 'histogram', aggregator: 'sum', values };
  }

  reset(): void {
    for (const state of this.series.values()) {
      state.counts.fill(0);
      state.sum = 0;
      state.count = 0;
    }
  }
}
