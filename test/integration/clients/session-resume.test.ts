import { createHash, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Runware } from '@runware/sdk-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CLIENT_API_KEY, SD15, startClientStack, type ClientStack } from '../../support/client-stack.js';
import { runPythonClient } from '../../support/python-client.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';
import { startTcpSwitch, type TcpSwitch } from '../../support/tcp-switch.js';
import { until } from '../../support/gateway.js';

/**
 * A socket dropped mid-task, behind a load balancer that sends the reconnection to the *other* of two gateway
 * replicas sharing Redis (a TCP switch on loopback plays the balancer). The task keeps running on the first
 * replica; its answer reaches the client exactly once on the second, and the GPU worker runs it once.
 */

let redis: RedisServer;
let stack: ClientStack;
let balancer: TcpSwitch;
const LATENCY_MS = 3000;

beforeAll(async () => {
  redis = await startRedisServer();
  stack = await startClientStack({ replicas: 2, env: { REDIS_URL: redis.url } });
}, 60_000);

beforeEach(async () => {
  await balancer?.close();
  balancer = await startTcpSwitch(stack.gateways[0]!.port);
  stack.worker.setBehaviour({ latencyMs: LATENCY_MS });
});

afterAll(async () => {
  await balancer?.close();
  await stack.close();
  await redis.stop();
});

/** Waits until the worker has the task's job, then cuts every connection and points the balancer at replica 2. */
async function dropMidTask(taskUUID: string): Promise<void> {
  await until(() => stack.worker.receivedJobs.some((job) => job.jobId.startsWith(taskUUID)), 20_000);
  balancer.setTarget(stack.gateways[1]!.port);
  balancer.dropAll();
}

async function sessionsInRedis(): Promise<number> {
  const admin = new Redis(redis.url);
  try {
    const principal = createHash('sha256').update(CLIENT_API_KEY).digest('hex');
    return (await admin.keys(`clipgate:v1:ws:{${principal}}:session:*`)).length;
  } finally {
    admin.disconnect();
  }
}

const jobsOf = (taskUUID: string) => stack.worker.receivedJobs.filter((job) => job.jobId.startsWith(taskUUID)).length;

describe('a socket dropped mid-task, reconnected to the other replica', () => {
  it('runware-sdk resumes its session there and receives the result exactly once', async () => {
    const taskUUID = randomUUID();
    const task = { taskType: 'imageInference', taskUUID, positivePrompt: 'a lighthouse', model: SD15, width: 256, height: 256 };
    const url = `127.0.0.1:${balancer.port}/v1`;
    const running = runPythonClient('runware-sdk', { transport: 'websocket', httpUrl: `http://${url}`, wsUrl: `ws://${url}`, apiKey: CLIENT_API_KEY, task });
    await dropMidTask(taskUUID);
    const { outcome, stderr } = await running;
    // Sent as async (its default), the task ran on whichever replica's consumer took it from the queue.
    expect(outcome, stderr).toMatchObject({ images: [{ taskUUID, imageURL: expect.stringMatching(new RegExp(`127\\.0\\.0\\.1:(${stack.gateways.map((gateway) => gateway.port).join('|')})/v1/images/`)) }] });
    expect((outcome['images'] as unknown[]).length).toBe(1);
    expect(jobsOf(taskUUID)).toBe(1);
    expect(balancer.connections).toBe(2);
    // One session, resumed: a fresh authentication would have opened a second one.
    expect(await sessionsInRedis()).toBe(1);
  }, 60_000);

  it('@runware/sdk-js reconnects there, and its retry of the same task is answered from the task, not generated again', async () => {
    // sdk-js 1.3.2 forgets its connectionSessionUUID when a socket closes (Runware-server.ts handleClose), so it
    // authenticates afresh; after its 60 s timeoutDuration it sends the task again with the same taskUUID.
    const client = new Runware({ apiKey: CLIENT_API_KEY, url: `ws://127.0.0.1:${balancer.port}/v1` });
    try {
      await client.ensureConnection();
      const taskUUID = randomUUID();
      const partials: string[] = [];
      const answer = client.imageInference({ taskUUID, positivePrompt: 'a lighthouse', model: SD15, width: 256, height: 256, onPartialImages: (images) => partials.push(...images.map((image) => image.imageUUID!)) });
      await dropMidTask(taskUUID);
      const images = await answer;
      expect(images?.map((image) => image.taskUUID)).toEqual([taskUUID]);
      expect(partials).toEqual([images?.[0]?.imageUUID]);
      expect(jobsOf(taskUUID)).toBe(1);
      expect(balancer.connections).toBe(2);
    } finally {
      await client.disconnect();
    }
  }, 120_000);
});
