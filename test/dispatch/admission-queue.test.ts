import { describe, expect, it } from 'vitest';
import { createAdmissionQueue, QueueFullError, QueueTimeoutError, type Claim } from '../../src/dispatch/admission-queue.js';
import { createCancellation, neverCancelled } from '../../src/contracts/cancellation.js';

describe('admission queue', () => {
  it('serves waiters first come, first served, as capacity frees', async () => {
    const queue = createAdmissionQueue<string>(10);
    let slots = 0;
    const claim = (name: string) => (): Claim<string> => (slots > 0 ? (slots--, { kind: 'taken', value: name }) : { kind: 'wait' });
    const order: string[] = [];
    const waits = ['a', 'b', 'c'].map((name) => queue.wait(claim(name), neverCancelled, 5000).then((value) => order.push(value)));
    expect(queue.length).toBe(3);
    slots = 1;
    queue.pump();
    slots = 2;
    queue.pump();
    await Promise.all(waits);
    expect(order).toEqual(['a', 'b', 'c']);
    expect(queue.length).toBe(0);
  });

  it('refuses at once past its length, saying the position', async () => {
    const queue = createAdmissionQueue<string>(2);
    const never = (): Claim<string> => ({ kind: 'wait' });
    const first = queue.wait(never, neverCancelled, 200);
    const second = queue.wait(never, neverCancelled, 200);
    await expect(queue.wait(never, neverCancelled, 200)).rejects.toEqual(new QueueFullError(3));
    await expect(first).rejects.toBeInstanceOf(QueueTimeoutError);
    await expect(second).rejects.toMatchObject({ position: 2 });
    expect(queue.length).toBe(0);
  });

  it('lets an aborted waiter go and fails waiters whose claim fails', async () => {
    const queue = createAdmissionQueue<string>(5);
    const cancellation = createCancellation();
    const aborted = queue.wait(() => ({ kind: 'wait' }), cancellation, 5000);
    cancellation.cancel(new Error('client left'));
    await expect(aborted).rejects.toThrow('client left');
    let failing = false;
    const doomed = queue.wait(() => (failing ? { kind: 'fail', error: new Error('no worker serves it') } : { kind: 'wait' }), neverCancelled, 5000);
    failing = true;
    queue.pump();
    await expect(doomed).rejects.toThrow('no worker serves it');
    expect(queue.length).toBe(0);
  });
});
