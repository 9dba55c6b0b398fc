import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import type { Dispatcher } from '../../src/contracts/dispatcher.js';
import { authorized, buildTestApp, createEchoDispatcher, imageTask, readTaskResponse, testConfig } from '../helper.js';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.js';

const SECRET = 'whsec-test-0123456789abcdef0123456789';
const receivers: WebhookReceiver[] = [];
afterEach(async () => {
  await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
});

function webhookConfig(overrides: Partial<Config['webhooks']> = {}): Config {
  const base = testConfig();
  return { ...base, webhooks: { ...base.webhooks, signingSecret: SECRET, allowedHosts: ['127.0.0.1'], requireHttps: false, maxAttempts: 6, backoffMs: 100, timeoutMs: 2000, ...overrides } };
}

async function receiver(): Promise<WebhookReceiver> {
  const made = await startWebhookReceiver(SECRET);
  receivers.push(made);
  return made;
}

async function appWith(config: Config, dispatcher: Dispatcher = createEchoDispatcher()) {
  const app = await buildTestApp({ config, dispatcher });
  const post = async (tasks: unknown[]) => {
    const response = await app.inject({ method: 'POST', url: '/v1/tasks', headers: authorized, payload: JSON.stringify(tasks) });
    return { status: response.statusCode, body: readTaskResponse(response.body) };
  };
  const attempts = async (taskUUID: unknown) => {
    const response = await app.inject({ method: 'GET', url: `/v1/tasks/${String(taskUUID)}/webhooks`, headers: authorized });
    return (JSON.parse(response.body) as { data: { imageUUID: string; delivered: boolean; reason?: string; attempt: number }[] }).data;
  };
  return { app, post, attempts };
}

describe('webhooks', () => {
  it('reach a receiver that was down for a while: every result once, every signature valid, every attempt recorded', async () => {
    const hook = await receiver();
    await hook.down();
    const { post, attempts } = await appWith(webhookConfig());
    const task = imageTask({ deliveryMethod: 'async', numberResults: 2, webhookURL: hook.url });
    expect((await post([task])).status).toBe(200);
    await expect.poll(async () => (await attempts(task['taskUUID'])).filter((attempt) => !attempt.delivered).length, { timeout: 5000 }).toBeGreaterThanOrEqual(2);
    await hook.up();
    await expect.poll(() => new Set(hook.received.map((delivery) => delivery.deliveryId)).size, { timeout: 10_000 }).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(hook.received).toHaveLength(2);
    expect(hook.received.every((delivery) => delivery.verified)).toBe(true);
    const bodies = hook.received.map((delivery) => JSON.parse(delivery.body) as { data: { taskUUID: string; imageUUID: string; status: string }[] });
    expect(bodies.map((body) => body.data[0]?.taskUUID)).toEqual([task['taskUUID'], task['taskUUID']]);
    expect(bodies.every((body) => body.data[0]?.status === 'success')).toBe(true);
    const recorded = await attempts(task['taskUUID']);
    for (const imageUUID of bodies.map((body) => body.data[0]!.imageUUID)) {
      const mine = recorded.filter((attempt) => attempt.imageUUID === imageUUID);
      expect(mine.at(-1)?.delivered).toBe(true);
      expect(mine.filter((attempt) => attempt.delivered)).toHaveLength(1);
      expect(mine.some((attempt) => !attempt.delivered && /ECONNREFUSED|refused/i.test(attempt.reason ?? ''))).toBe(true);
    }
  });

  it('are sent for sync tasks too, and for a task that failed, with its errors', async () => {
    const hook = await receiver();
    let fail = false;
    const echo = createEchoDispatcher();
    const { post } = await appWith(webhookConfig(), { dispatch: async (task, context) => (fail ? { kind: 'failed', error: { code: 'workerFailed', message: 'down', retryable: true } } : echo.dispatch(task, context)) });
    expect((await post([imageTask({ webhookURL: hook.url })])).status).toBe(200);
    fail = true;
    expect((await post([imageTask({ webhookURL: hook.url })])).status).toBe(502);
    await expect.poll(() => hook.received.length).toBe(2);
    const [success, failure] = hook.received.map((delivery) => JSON.parse(delivery.body) as { data?: unknown[]; errors?: { code: string }[] });
    expect(success?.data).toHaveLength(1);
    expect(failure?.errors?.[0]?.code).toBe('workerFailed');
  });

  it.each([
    ['loopback, without the allowlist', 'http://127.0.0.1:9/hook', [], /loopback/],
    ['a private address', 'http://10.0.0.1/hook', ['127.0.0.1'], /private/],
    ['the cloud metadata address', 'http://169.254.169.254/latest/meta-data', ['127.0.0.1'], /link-local/],
    ['a hostname that resolves to loopback', 'http://localhost:9/hook', ['127.0.0.1'], /localhost.*resolves to/],
    ['not http(s)', 'ftp://files.example.com/hook', ['127.0.0.1'], /./],
  ])('refuse %s when the task is sent: webhookTargetRefused, 400, and nothing runs', async (_, url, allowedHosts, reason) => {
    const jobs: string[] = [];
    const echo = createEchoDispatcher();
    const { post } = await appWith(webhookConfig({ allowedHosts }), { dispatch: async (task, context) => { jobs.push(task.task.taskUUID); return echo.dispatch(task, context); } });
    const refused = await post([imageTask({ deliveryMethod: 'async', webhookURL: url }), imageTask()]);
    expect(refused.status).toBe(200);
    expect(refused.body.errors).toHaveLength(1);
    expect(refused.body.errors[0]).toMatchObject({ code: expect.stringMatching(/webhookTargetRefused|invalidParameter/), parameter: 'webhookURL' });
    expect(refused.body.errors[0]!.message).toMatch(reason);
    // The other task of the request is not touched.
    expect(refused.body.data).toHaveLength(1);
    expect(jobs).toHaveLength(1);
  });

  it('refuse a redirect to a private address at delivery, without retrying, and record why', async () => {
    const hook = await receiver();
    hook.answerWith(307, 'http://10.0.0.1/steal');
    const { post, attempts } = await appWith(webhookConfig());
    const task = imageTask({ deliveryMethod: 'async', webhookURL: hook.url });
    await post([task]);
    await expect.poll(async () => (await attempts(task['taskUUID'])).length).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const recorded = await attempts(task['taskUUID']);
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatchObject({ delivered: false });
    expect(recorded[0]?.reason).toMatch(/10\.0\.0\.1.*private/);
    expect(hook.received).toHaveLength(1);
  });
});
