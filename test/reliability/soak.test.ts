import { describe, expect, it } from 'vitest';
import { reliabilityProfile, recordResult } from './profile.js';
import { runSoak, trendOf } from './soak-load.js';

/**
 * The soak, bounded (the profile's length; `npm run bench:soak` runs it for minutes): under a steady mixed
 * load nothing is lost or answered twice, resident memory levels off instead of climbing, and the gateway
 * gives back its descriptors once the load stops.
 */

describe('soak', () => {
  it(`holds memory and descriptors level over ${reliabilityProfile.soakMs / 1000} s of mixed load`, async () => {
    const report = await runSoak({ durationMs: reliabilityProfile.soakMs, concurrency: 16, sampleEveryMs: reliabilityProfile.name === 'long' ? 5000 : 1000 });
    const memory = trendOf(report.samples, 'rssMiB');
    const descriptors = trendOf(report.samples, 'fds');
    const first = report.samples[0]!;
    recordResult('soak', {
      profile: reliabilityProfile.name,
      seconds: reliabilityProfile.soakMs / 1000,
      requests: report.requests,
      sockets: report.sockets,
      outcomes: report.outcomes,
      rssMiB: { start: first.rssMiB, earlyPeak: memory.early, latePeak: memory.late, idle: report.idle.rssMiB, lateOverEarly: memory.ratio },
      fds: { start: first.fds, earlyPeak: descriptors.early, latePeak: descriptors.late, idle: report.idle.fds },
    });
    expect(report.breaches).toStrictEqual([]);
    expect(report.socketFailures).toStrictEqual([]);
    expect(report.requests).toBeGreaterThan(100);
    // Level, not climbing: the late samples' peak within a quarter of the early samples' (GC moves it some).
    expect(memory.ratio).toBeLessThan(1.25);
    // Descriptors: the pools (clients' keep-alive, workers, Redis) fill early and stay; nothing piles up after.
    expect(descriptors.late).toBeLessThanOrEqual(descriptors.early + 16);
    expect(report.idle.fds).toBeLessThanOrEqual(descriptors.late);
  }, reliabilityProfile.soakMs + 120_000);
});
