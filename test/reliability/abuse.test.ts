import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCatalogue } from '../../src/errors.js';
import { reliabilityProfile, recordResult } from './profile.js';
import { embeddingAir, imageTask, processFootprint, startReliabilityStack, type ReliabilityStack } from './reliability-stack.js';

/**
 * The abuse cases: bodies, headers and field values a careless or hostile client sends, each to a real gateway
 * process. Every answer is an HTTP answer in the documented shape with a code from the catalogue — never a
 * 500 — and a bad task loses nothing else in its request: the ping sent beside it is answered. The gateway
 * still serves normally after all of them.
 */

const KEY = 'abuse-test-key-0123456789';
let stack: ReliabilityStack;

beforeAll(async () => {
  stack = await startReliabilityStack({ embeddings: 2, env: { API_KEYS: KEY, BODY_LIMIT_BYTES: String(1024 * 1024) } });
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

interface Answer {
  readonly status: number;
  readonly text: string;
}

async function post(body: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await request(`http://127.0.0.1:${stack.port}/v1/tasks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...headers },
    body,
  });
  return { status: response.statusCode, text: await response.body.text() };
}

/** Sends raw bytes and reads until the server closes or answers; for what fetch-like clients will not send. */
async function raw(bytes: string): Promise<Answer> {
  return new Promise((resolve) => {
    const socket = connect(stack.port, '127.0.0.1');
    let received = '';
    const done = () => {
      socket.destroy();
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0);
      resolve({ status, text: received.slice(received.indexOf('\r\n\r\n') + 4) });
    };
    socket.setTimeout(5000, done);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      // One answer is all a case needs.
      if (/\r\n\r\n/.test(received) && (/content-length: (\d+)/i.exec(received) ? received.length >= received.indexOf('\r\n\r\n') + 4 + Number(/content-length: (\d+)/i.exec(received)![1]) : true)) done();
    });
    socket.on('error', done).on('close', done);
    socket.write(bytes);
  });
}

const catalogued = new Set(Object.keys(errorCatalogue));

/** The documented error shape, for every error an answer carries. */
function shapeProblems(answer: Answer): string[] {
  if (answer.status === 0) return ['no HTTP answer'];
  if (answer.status >= 500 && answer.status !== 503) return [`HTTP ${answer.status}`];
  if (answer.status === 200 && answer.text === '') return [];
  let body: { data?: unknown[]; errors?: Record<string, unknown>[]; error?: Record<string, unknown> };
  try {
    body = JSON.parse(answer.text) as typeof body;
  } catch {
    return [`not JSON: ${answer.text.slice(0, 120)}`];
  }
  const problems: string[] = [];
  const errors = body.errors ?? [];
  if (answer.status >= 400 && errors.length === 0) problems.push(`HTTP ${answer.status} without errors`);
  // `error` is the top-level summary (code, message) for clients that read only that.
  for (const error of [...errors, ...(body.error ? [body.error] : [])]) {
    if (!catalogued.has(String(error['code']))) problems.push(`code ${String(error['code'])} is not in the catalogue`);
    if (typeof error['message'] !== 'string' || error['message'] === '') problems.push('an error without a message');
    if (error['code'] === 'internalError') problems.push('internalError');
  }
  for (const error of errors) if (typeof error['retryable'] !== 'boolean') problems.push('an error without retryable');
  return problems;
}

const outcomes: Record<string, number> = {};
function count(answer: Answer): void {
  let codes: string[] = [];
  try {
    const body = JSON.parse(answer.text) as { errors?: { code: string }[]; error?: { code: string } };
    codes = [...new Set([...(body.errors ?? []), ...(body.error ? [body.error] : [])].map((error) => error.code))].sort();
  } catch {
    // Counted by status alone.
  }
  const key = [String(answer.status), ...codes].join(' ');
  outcomes[key] = (outcomes[key] ?? 0) + 1;
}
let cases = 0;

const deep = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const bodies: [string, string | Buffer][] = [
  ['empty body', ''],
  ['whitespace', '   \n\t '],
  ['null', 'null'],
  ['true', 'true'],
  ['a number', '42'],
  ['a string', '"imageInference"'],
  ['an empty object', '{}'],
  ['an empty array', '[]'],
  ['[null]', '[null]'],
  ['[1]', '[1]'],
  ['[[]]', '[[]]'],
  ['["ping"]', '["ping"]'],
  ['truncated array', '[{"taskType": "ping"'],
  ['a lone bracket', ']'],
  ['trailing comma', '[{"taskType": "ping", "ping": true},]'],
  ['comments', '[/* hi */ {"taskType": "ping", "ping": true}]'],
  ['single quotes', "[{'taskType': 'ping'}]"],
  ['NaN', '[{"taskType": "imageInference", "width": NaN}]'],
  ['Infinity', '[{"taskType": "imageInference", "width": Infinity}]'],
  ['1e999', '[{"taskType": "imageInference", "width": 1e999}]'],
  ['nesting 100,000 deep', deep(100_000)],
  ['nesting 1,000 deep inside a task', `[{"taskType": "ping", "ping": true, "x": ${deep(1000)}}]`],
  ['a byte-order mark', '\ufeff[{"taskType": "ping", "ping": true}]'],
  ['invalid UTF-8', Buffer.concat([Buffer.from('[{"taskType": "ping", "taskUUID": "'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}]')])],
  ['a NUL byte', '[{"taskType": "ping", "ping": true}]\u0000'],
  ['duplicate keys', '[{"taskType": "ping", "taskType": "imageInference"}]'],
  ['__proto__', '[{"taskType": "ping", "ping": true, "__proto__": {"polluted": true}}]'],
  ['constructor.prototype', '[{"taskType": "ping", "ping": true, "constructor": {"prototype": {"polluted": true}}}]'],
  ['a 900 KB prompt', JSON.stringify([imageTask({ positivePrompt: 'a'.repeat(900_000) })])],
  ['over the body limit', JSON.stringify([imageTask({ positivePrompt: 'a'.repeat(1_100_000) })])],
  ['10,000 tasks', JSON.stringify(Array.from({ length: 10_000 }, () => ({ taskType: 'ping', ping: true })))],
  ['an unknown taskType', JSON.stringify([{ taskType: 'videoInference', taskUUID: randomUUID() }])],
  ['taskType of another case', JSON.stringify([{ taskType: 'IMAGEINFERENCE', taskUUID: randomUUID() }])],
  ['a taskType that is an object', JSON.stringify([{ taskType: { $ne: null } }])],
  ['the same taskUUID twice', (() => { const taskUUID = randomUUID(); return JSON.stringify([imageTask({ taskUUID }), imageTask({ taskUUID })]); })()],
  ['a lone surrogate in the prompt', '[{"taskType": "imageInference", "taskUUID": "' + randomUUID() + '", "positivePrompt": "\\ud800", "model": "civitai:4384@128713", "width": 512, "height": 512}]'],
  ['100 embeddings', JSON.stringify([imageTask({ embeddings: Array.from({ length: 100 }, (_, index) => ({ model: embeddingAir(index % 2) })) })])],
  ['1,000 unknown fields', JSON.stringify([Object.fromEntries([...Object.entries(imageTask()), ...Array.from({ length: 1000 }, (_, index) => [`field${index}`, index])])])],
];

const headerCases: [string, Record<string, string>, string | Buffer][] = [
  ['text/plain', { 'content-type': 'text/plain' }, '[{"taskType": "ping", "ping": true}]'],
  ['form-urlencoded', { 'content-type': 'application/x-www-form-urlencoded' }, 'taskType=ping'],
  ['multipart', { 'content-type': 'multipart/form-data; boundary=x' }, '--x\r\n\r\nping\r\n--x--'],
  ['charset latin1', { 'content-type': 'application/json; charset=latin1' }, '[{"taskType": "ping", "ping": true}]'],
  ['a wrong bearer', { authorization: 'Bearer not-the-key' }, '[{"taskType": "ping", "ping": true}]'],
  ['a Basic credential', { authorization: 'Basic dXNlcjpwYXNz' }, '[{"taskType": "ping", "ping": true}]'],
  ['a 4 KB bearer', { authorization: `Bearer ${'k'.repeat(4096)}` }, '[{"taskType": "ping", "ping": true}]'],
  ['gzip that is not gzip', { 'content-encoding': 'gzip' }, '[{"taskType": "ping", "ping": true}]'],
  ['a gzip bomb', { 'content-encoding': 'gzip' }, gzipSync(Buffer.alloc(64 * 1024 * 1024, ' '))],
  ['compress', { 'content-encoding': 'compress' }, '[{"taskType": "ping", "ping": true}]'],
  ['gzip twice', { 'content-encoding': 'gzip, gzip' }, gzipSync(gzipSync('[{"taskType": "ping", "ping": true}]'))],
  ['a 20 KB header', { 'x-padding': 'p'.repeat(20_000) }, '[]'],
];

const rawCases: [string, string][] = [
  ['Content-Length and Transfer-Encoding both', 'POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ['a broken chunk', 'POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n[]\r\n0\r\n\r\n'],
  ['a negative Content-Length', 'POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n'],
  ['a Content-Length of 10 GB', 'POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n[]'],
  ['HTTP/0.9', 'GET /\r\n\r\n'],
  ['a method of garbage', 'FOO\u0001 /v1/tasks HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['a path with NUL', 'GET /v1/models/civitai%00:1@2 HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['a path traversal for an image', 'GET /v1/images/..%2F..%2Fetc%2Fpasswd HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['a path traversal for an embedding', 'GET /v1/embeddings/../../package.json HTTP/1.1\r\nHost: x\r\n\r\n'],
  ['a 10 KB path', `GET /${'a'.repeat(10_000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['a header without a colon', 'GET /health/live HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n'],
];

/** Values put in place of each field of a valid task; a few are valid, which must work. */
const values: [string, unknown][] = [
  ['null', null],
  ['true', true],
  ['-1', -1],
  ['0', 0],
  ['1.5', 1.5],
  ['1e308', 1e308],
  ['-1e308', -1e308],
  ['2^64', 18446744073709551616],
  ['""', ''],
  ['10,000 characters', 'x'.repeat(10_000)],
  ['[]', []],
  ['{}', {}],
  ['an emoji', '💥'],
  ['a NUL character', '\u0000'],
  ['a number as a string', '512'],
];
const fields = [
  'taskUUID',
  'positivePrompt',
  'negativePrompt',
  'model',
  'width',
  'height',
  'steps',
  'CFGScale',
  'seed',
  'scheduler',
  'clipSkip',
  'numberResults',
  'outputType',
  'outputFormat',
  'outputQuality',
  'checkNSFW',
  'deliveryMethod',
  'webhookURL',
  'includeCost',
  'lora',
  'embeddings',
  'controlNet',
];

describe('abuse', () => {
  it('answers every malformed body in the documented shape, never a 500', async () => {
    for (const [name, body] of bodies) {
      const answer = await post(body);
      cases++;
      count(answer);
      expect(shapeProblems(answer), name).toStrictEqual([]);
    }
  }, 120_000);

  it('answers every abused header in the documented shape, never a 500', async () => {
    for (const [name, headers, body] of headerCases) {
      const answer = await post(body, headers);
      cases++;
      count(answer);
      expect(shapeProblems(answer), name).toStrictEqual([]);
      expect(answer.status, name).toBeGreaterThanOrEqual(400);
    }
  }, 120_000);

  it('answers broken HTTP with a 4xx or a closed connection, never a 500', async () => {
    for (const [name, bytes] of rawCases) {
      const answer = await raw(bytes);
      cases++;
      count(answer);
      // A request too broken to answer may be closed without one; anything answered is a client error.
      if (answer.status !== 0) expect(answer.status, name).toBeGreaterThanOrEqual(400);
      expect(answer.status, name).toBeLessThan(500);
      // Nothing outside the served files comes back.
      expect(answer.text, name).not.toMatch(/root:|"name": "clipgate"/);
    }
  }, 120_000);

  it(`refuses each bad field value (${fields.length} fields × ${values.length} values) by name, and answers the ping beside it`, async () => {
    for (const field of fields) {
      for (const [valueName, value] of values) {
        const task = imageTask({ [field]: value, numberResults: field === 'numberResults' ? value : 1 });
        const pingUUID = randomUUID();
        const answer = await post(JSON.stringify([task, { taskType: 'ping', ping: true, taskUUID: pingUUID }]));
        const name = `${field} = ${valueName}`;
        cases++;
        count(answer);
        expect(shapeProblems(answer), name).toStrictEqual([]);
        const body = JSON.parse(answer.text) as { data?: { taskUUID?: string; pong?: boolean }[]; errors?: { code: string; parameter?: string; message: string; taskUUID?: string }[] };
        // The ping is answered whatever happened to the task beside it.
        expect(body.data?.some((item) => item.taskUUID === pingUUID && item.pong === true), name).toBe(true);
        const refusals = (body.errors ?? []).filter((error) => error.taskUUID !== pingUUID);
        // A refusal says which field is wrong.
        for (const refusal of refusals) {
          if (refusal.code === 'noAvailableWorker' || refusal.code === 'unknownModel') continue;
          expect(`${refusal.parameter ?? ''} ${refusal.message}`, name).toContain(field === 'taskUUID' ? 'taskUUID' : field);
        }
      }
    }
  }, 300_000);

  it('still serves normally after every case', async () => {
    const answer = await post(JSON.stringify([imageTask()]));
    expect(answer.status).toBe(200);
    const ready = await request(`http://127.0.0.1:${stack.port}/health/ready`);
    expect(ready.statusCode).toBe(200);
    await ready.body.dump();
    recordResult('abuse', { profile: reliabilityProfile.name, cases, outcomes, gatewayAfter: processFootprint(stack.gateway.child.pid!) });
    expect(cases).toBe(bodies.length + headerCases.length + rawCases.length + fields.length * values.length);
  });
});
