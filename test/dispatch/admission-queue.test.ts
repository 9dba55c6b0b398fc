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

  it('asks no waiter while nothing has room, and stops asking once the room is taken', async () => {
    let slots = 0;
    let asked = 0;
    const queue = createAdmissionQueue<number>(5000, () => slots > 0);
    const claim = (value: number) => (): Claim<number> => {
      asked++;
      return slots > 0 ? (slots--, { kind: 'taken', value }) : { kind: 'wait' };
    };
    const waits = Array.from({ length: 3000 }, (_, index) => queue.wait(claim(index), neverCancelled, 5000));
    for (let pump = 0; pump < 100; pump++) queue.pump();
    expect(asked).toBe(0);
    slots = 2;
    queue.pump();
    expect(asked).toBe(2);
    await expect(Promise.all(waits.slice(0, 2))).resolves.toEqual([0, 1]);
    expect(queue.length).toBe(2998);
    // pumpAll asks every waiter, room or not: each says whether it can still wait.
    queue.pumpAll();
    expect(asked).toBe(3000);
    slots = 2998;
    queue.pump();
    await expect(Promise.all(waits)).resolves.toHaveLength(3000);
    expect(queue.length).toBe(0);
  });

  it('fails a waiter whose claim fails on pumpAll even while nothing has room', async () => {
    let failing = false;
    const queue = createAdmissionQueue<string>(5, () => false);
    const doomed = queue.wait(() => (failing ? { kind: 'fail', error: new Error('its only worker went away') } : { kind: 'wait' }), neverCancelled, 5000);
    failing = true;
    queue.pump();
    expect(queue.length).toBe(1);
    queue.pumpAll();
    await expect(doomed).rejects.toThrow('its only worker went away');
    expect(queue.length).toBe(0);
  });

  it('asks one waiter of a likeness that waits, not all of them, and asks again once something was taken', async () => {
    // Room elsewhere (a free worker serving other models), none for model x.
    let slotsForX = 0;
    const asked = { x: 0, y: 0 };
    const queue = createAdmissionQueue<string>(10_000, () => true);
    const claimX = (name: string) => (): Claim<string> => {
      asked.x++;
      return slotsForX > 0 ? (slotsForX--, { kind: 'taken', value: name }) : { kind: 'wait' };
    };
    const forX = Array.from({ length: 3000 }, (_, index) => queue.wait(claimX(`x${index}`), neverCancelled, 5000, () => 'x'));
    const claimY = (): Claim<string> => {
      asked.y++;
      return { kind: 'taken', value: 'y' };
    };
    const forY = queue.wait(claimY, neverCancelled, 5000, () => 'y');
    queue.pump();
    expect(asked).toEqual({ x: 1, y: 1 });
    await expect(forY).resolves.toBe('y');
    slotsForX = 2;
    queue.pump();
    // Two taken, then the third waits, and the rest of its likeness are not asked.
    expect(asked.x).toBe(1 + 3);
    await expect(Promise.all(forX.slice(0, 2))).resolves.toEqual(['x0', 'x1']);
    slotsForX = 2998;
    queue.pump();
    await expect(Promise.all(forX)).resolves.toHaveLength(3000);
  });
});
