import { createRunware } from '@runware/ai-sdk-provider';
import { APICallError, generateImage } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_API_KEY, EASY_NEGATIVE, FLUX, SD15, startClientStack, type ClientStack } from '../../support/client-stack.js';

/**
 * @runware/ai-sdk-provider (the Vercel AI SDK's Runware provider, REST), as published on npm, with `ai` 6,
 * pointed at clipgate with nothing changed but its base URL. It always sends outputQuality and checkNSFW,
 * validates `seed` as a number, downloads the image from imageURL itself, and reads a top-level `error`.
 */

let stack: ClientStack;
let runware: ReturnType<typeof createRunware>;

beforeAll(async () => {
  stack = await startClientStack();
  runware = createRunware({ apiKey: CLIENT_API_KEY, baseURL: `http://127.0.0.1:${stack.gateways[0]!.port}/v1` });
  // The provider reports every answer as a warning; `ai` would print each with console.warn.
  (globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;
}, 60_000);

afterAll(async () => {
  await stack.close();
});

async function refusal(promise: Promise<unknown>): Promise<APICallError> {
  try {
    await promise;
  } catch (error) {
    if (APICallError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('the call was not refused');
}

describe('@runware/ai-sdk-provider against clipgate', () => {
  it('generates an image for an SD 1.5 task with a negative embedding', async () => {
    const { image } = await generateImage({
      model: runware.image(SD15),
      prompt: 'a lighthouse on a cliff at dusk, oil painting',
      size: '512x512',
      seed: 42,
      providerOptions: { runware: { embeddings: [{ model: EASY_NEGATIVE, weight: -1 }] } },
    });
    // It asked for a PNG by URL and downloaded it from the gateway.
    expect(image.mediaType).toBe('image/png');
    expect(Buffer.from(image.uint8Array).subarray(1, 4).toString()).toBe('PNG');
    const job = stack.worker.receivedJobs.at(-1);
    expect(job).toMatchObject({ seed: '42', outputFormat: 'PNG', embeddings: [expect.objectContaining({ air: EASY_NEGATIVE, placement: 'negative' })] });
    // outputQuality 95 on PNG and checkNSFW false ask for nothing a worker must do.
    expect(job?.outputQuality).toBeUndefined();
    expect(job?.checkNSFW).toBeUndefined();
  });

  it('reads a random seed exactly, as a number', async () => {
    // The provider hands its caller the answer's data, as parsed by its own schema, in a warning.
    const { warnings } = await generateImage({ model: runware.image(SD15), prompt: 'a lighthouse', size: '256x256' });
    const sent = stack.worker.receivedJobs.at(-1)?.seed;
    expect(BigInt(sent ?? '0')).toBeLessThanOrEqual(BigInt(Number.MAX_SAFE_INTEGER));
    const data = warnings.map((warning) => ('message' in warning ? warning.message : '')).find((message) => message.startsWith('Response data: '));
    expect(JSON.parse(data?.slice('Response data: '.length) ?? '[]')).toEqual([expect.objectContaining({ seed: Number(sent) })]);
  });

  it("shows clipgate's own message for an embedding on FLUX and for width 500", async () => {
    const flux = await refusal(
      generateImage({ model: runware.image(FLUX), prompt: 'a lighthouse', size: '1024x1024', maxRetries: 0, providerOptions: { runware: { embeddings: [{ model: EASY_NEGATIVE, weight: 1 }] } } }),
    );
    expect(flux.statusCode).toBe(400);
    expect(flux.message).toContain('unsupportedEmbeddingArchitecture');
    expect(flux.message).toContain('Embeddings cannot be used with model \\"runware:101@1\\"');
    const width = await refusal(generateImage({ model: runware.image(SD15), prompt: 'a lighthouse', size: '500x512', maxRetries: 0 }));
    expect(width.statusCode).toBe(400);
    expect(width.message).toBe('Runware API error: {"code":"invalidParameter","message":"width must be a multiple of 64; got 500 (nearest: 512).","parameter":"width"}');
  });
});
