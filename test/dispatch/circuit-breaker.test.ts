import { describe, expect, it } from 'vitest';
import { createCircuitBreaker } from '../../src/dispatch/circuit-breaker.js';

function breaker() {
  const clock = { now: 0 };
  return { clock, breaker: createCircuitBreaker({ failureThreshold: 3, cooldownMs: 1000, clock: () => clock.now }) };
}

describe('circuit breaker', () => {
  it('opens after the threshold of consecutive failures, not before', () => {
    const { breaker: b } = breaker();
    b.onFailure();
    b.onFailure();
    expect(b.state()).toBe('closed');
    b.onSuccess();
    b.onFailure();
    b.onFailure();
    expect(b.canAttempt()).toBe(true);
    b.onFailure();
    expect(b.state()).toBe('open');
    expect(b.canAttempt()).toBe(false);
  });

  it('lets one trial through after the cool-down, and closes on its success', () => {
    const { clock, breaker: b } = breaker();
    for (let i = 0; i < 3; i++) b.onFailure();
    clock.now = 1000;
    expect(b.state()).toBe('half-open');
    expect(b.canAttempt()).toBe(true);
    b.onAttempt();
    expect(b.canAttempt()).toBe(false);
    b.onSuccess();
    expect(b.state()).toBe('closed');
  });

  it('frees the trial slot when the trial ends saying nothing about the worker', () => {
    const { clock, breaker: b } = breaker();
    for (let i = 0; i < 3; i++) b.onFailure();
    clock.now = 1000;
    b.onAttempt();
    b.onNeutral();
    expect(b.state()).toBe('half-open');
    expect(b.canAttempt()).toBe(true);
  });

  it('opens again for a full cool-down when the trial fails', () => {
    const { clock, breaker: b } = breaker();
    for (let i = 0; i < 3; i++) b.onFailure();
    clock.now = 1500;
    b.onAttempt();
    b.onFailure();
    expect(b.state()).toBe('open');
    clock.now = 2400;
    expect(b.canAttempt()).toBe(false);
    clock.now = 2500;
    expect(b.canAttempt()).toBe(true);
  });
});
