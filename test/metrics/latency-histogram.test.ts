import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../../src/metrics/latency-histogram.js';

describe('LatencyHistogram', () => {
  it('writes exactly what prom-client\'s own Histogram writes for the same observations', async () => {
    const bounds = [0.005, 0.01, 0.1, 1, 10];
    const ours = new Registry();
    const theirs = new Registry();
    const fast = new LatencyHistogram('clipgate_example_seconds', 'An example, with "quotes" and a \\ backslash.', ['method', 'route'], bounds).registerIn(ours);
    const reference = new Histogram({ name: 'clipgate_example_seconds', help: 'An example, with "quotes" and a \\ backslash.', labelNames: ['method', 'route'], buckets: bounds, registers: [theirs] });
    const observations: [string, string, number][] = [
      ['POST', '/v1/tasks', 0.004],
      ['POST', '/v1/tasks', 0.005],
      ['POST', '/v1/tasks', 0.2],
      ['GET', '/v1/models/:air', 12],
      ['POST', '/v1/tasks', 0.0101],
      ['GET', '/v1/models/:air', 0],
    ];
    for (const [method, route, seconds] of observations) {
      fast.labels(method, route).observe(seconds);
      reference.labels(method, route).observe(seconds);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('shows zero counts before any observation when it has no labels, as prom-client does', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    new LatencyHistogram('clipgate_wait_seconds', 'A wait.', [], [1, 5]).registerIn(ours);
    theirs.registerMetric(new Histogram({ name: 'clipgate_wait_seconds', help: 'A wait.', buckets: [1, 5], registers: [] }));
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('gives the same series for the same label values, and resets with the registry', async () => {
    const registry = new Registry();
    const histogram = new LatencyHistogram('clipgate_reset_seconds', 'Reset.', ['outcome'], [1]).registerIn(registry);
    expect(histogram.labels('success')).toBe(histogram.labels('success'));
    histogram.labels('success').observe(2);
    expect(await registry.metrics()).toContain('clipgate_reset_seconds_count{outcome="success"} 1');
    registry.resetMetrics();
    expect(await registry.metrics()).toContain('clipgate_reset_seconds_count{outcome="success"} 0');
  });
});
