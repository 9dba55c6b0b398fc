import { createHash, randomBytes } from 'node:crypto';
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DownloadError, downloadFile, type DownloadOptions } from '../../src/embeddings/download-file.js';
import { startFakeRegistry, type FakeRegistry } from '../support/fake-registry.js';

const fileBytes = randomBytes(3000);
const fileSha256 = createHash('sha256').update(fileBytes).digest('hex');

let fake: FakeRegistry;
let agent: Agent;
let delays: number[];

beforeEach(async () => {
  fake = await startFakeRegistry();
  agent = new Agent();
  delays = [];
});

afterEach(async () => {
  await agent.destroy();
  await fake.close();
});

function options(overrides: Partial<DownloadOptions> = {}): DownloadOptions {
  return {
    maxBytes: 1024 * 1024,
    timeoutMs: 2_000,
    dispatcher: agent,
    sleep: async (ms) => {
      delays.push(ms);
    },
    ...overrides,
  };
}

async function downloadError(promise: Promise<unknown>): Promise<DownloadError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(DownloadError);
  return error as DownloadError;
}

/** A server for answers the fake registry never gives. */
async function startServer(listener: RequestListener): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe('downloadFile', () => {
  it('follows the registry redirect to storage and hashes what it read', async () => {
    const url = fake.addFile('/models/9208/easynegative.safetensors', fileBytes);
    const downloaded = await downloadFile(url, options({ expectedSha256: fileSha256 }));
    expect(Buffer.from(downloaded.bytes).equals(fileBytes)).toBe(true);
    expect(downloaded.sha256).toBe(fileSha256);
    expect(fake.calls.downloads('/models/9208/easynegative.safetensors')).toBe(1);
    expect(fake.requests.map((request) => request.origin)).toEqual(['registry', 'storage']);
  });

  it('downloads the file a fake registry version lists', async () => {
    fake.addModelVersion({ modelId: 1, versionId: 2, type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'e.pt', bytes: fileBytes }] });
    const downloaded = await downloadFile(`${fake.url}/api/download/models/2/e.pt`, options({ expectedSha256: fileSha256.toUpperCase() }));
    expect(downloaded.sha256).toBe(fileSha256);
    expect(fake.calls.downloads()).toBe(1);
  });

  it('sends the token to the registry origin and not to the storage origin it redirects to', async () => {
    const url = fake.addFile('/e.safetensors', fileBytes);
    await downloadFile(url, options({ credentials: { origin: fake.url, token: 'civitai-token' } }));
    expect(fake.requests).toEqual([
      { url, origin: 'registry', authorization: 'Bearer civitai-token' },
      { url: `${fake.storageUrl}/files/e.safetensors`, origin: 'storage', authorization: undefined },
    ]);
  });

  it('sends no token when the file is not on the credentials origin', async () => {
    const url = fake.addFile('/e.safetensors', fileBytes);
    await downloadFile(url, options({ credentials: { origin: 'https://civitai.com', token: 'civitai-token' } }));
    expect(fake.requests.map((request) => request.authorization)).toEqual([undefined, undefined]);
  });

  it('refuses a file whose SHA-256 differs from the expected one, showing both', async () => {
    const listed = 'AB'.repeat(32);
    fake.addModelVersion({ modelId: 1, versionId: 3, type: 'TextualInversion', baseModel: 'SD 1.5', files: [{ name: 'e.pt', bytes: fileBytes, sha256: listed }] });
    const error = await downloadError(downloadFile(`${fake.url}/api/download/models/3/e.pt`, options({ expectedSha256: listed })));
    expect(error.problem).toBe('checksumMismatch');
    expect(error.message).toContain(fileSha256);
    expect(error.message).toContain(listed.toLowerCase());
    expect(delays).toEqual([]);
  });

  it('answers notFound for a file the registry does not have', async () => {
    const error = await downloadError(downloadFile(`${fake.url}/api/download/models/404/e.pt`, options()));
    expect(error.problem).toBe('notFound');
    expect(fake.requests).toHaveLength(1);
  });

  it('answers notFound for a 410 at the storage end', async () => {
    const server = await startServer((_request, response) => {
      response.writeHead(410);
      response.end('gone');
    });
    try {
      const error = await downloadError(downloadFile(`${server.url}/e.pt`, options()));
      expect(error.problem).toBe('notFound');
    } finally {
      await server.close();
    }
  });
});

describe('downloadFile: size cap', () => {
  it('refuses a file whose Content-Length is over the cap before reading it', async () => {
    const url = fake.addFile('/big.pt', randomBytes(4096));
    const error = await downloadError(downloadFile(url, options({ maxBytes: 4095 })));
    expect(error.problem).toBe('tooLarge');
    expect(error.message).toMatch(/declares 4096 bytes/);
  });

  it('takes a file of exactly the cap', async () => {
    const url = fake.addFile('/exact.pt', fileBytes);
    expect((await downloadFile(url, options({ maxBytes: fileBytes.byteLength }))).bytes.byteLength).toBe(fileBytes.byteLength);
  });

  it('counts the bytes of a body without Content-Length and stops reading once over the cap', async () => {
    const chunk = Buffer.alloc(64 * 1024, 7);
    const limit = 64 * 1024 * 1024;
    let sent = 0;
    let finished = false;
    const server = await startServer((_request, response) => {
      // Chunked: no Content-Length to refuse early on. Keeps writing while the client keeps reading.
      response.writeHead(200, { 'content-type': 'application/octet-stream' });
      const write = (): void => {
        while (sent < limit && !response.destroyed) {
          sent += chunk.length;
          if (!response.write(chunk)) {
            response.once('drain', write);
            return;
          }
        }
        if (!response.destroyed) {
          finished = true;
          response.end();
        }
      };
      write();
    });
    try {
      const error = await downloadError(downloadFile(`${server.url}/stream.pt`, options({ maxBytes: 200 * 1024 })));
      expect(error.problem).toBe('tooLarge');
      expect(error.message).toMatch(/sent more/);
      expect(finished).toBe(false);
      expect(sent).toBeLessThan(limit);
    } finally {
      await server.close();
    }
  });

  it('reads a body without Content-Length that stays under the cap', async () => {
    const server = await startServer((_request, response) => {
      response.writeHead(200);
      response.write(fileBytes.subarray(0, 1000));
      response.end(fileBytes.subarray(1000));
    });
    try {
      const downloaded = await downloadFile(`${server.url}/e.pt`, options({ maxBytes: fileBytes.byteLength, expectedSha256: fileSha256 }));
      expect(downloaded.sha256).toBe(fileSha256);
    } finally {
      await server.close();
    }
  });
});

describe('downloadFile: redirects', () => {
  it('resolves a relative Location against the current URL, keeping the token on its origin', async () => {
    const seen: { path: string | undefined; authorization: string | undefined }[] = [];
    const server = await startServer((request, response) => {
      seen.push({ path: request.url, authorization: request.headers.authorization });
      if (request.url === '/api/download/models/1') {
        response.writeHead(302, { location: '../../files/e.pt?sig=abc' });
        response.end();
        return;
      }
      response.end(fileBytes);
    });
    try {
      const downloaded = await downloadFile(`${server.url}/api/download/models/1`, options({ credentials: { origin: server.url, token: 't' } }));
      expect(downloaded.sha256).toBe(fileSha256);
      expect(seen).toEqual([
        { path: '/api/download/models/1', authorization: 'Bearer t' },
        { path: '/api/files/e.pt?sig=abc', authorization: 'Bearer t' },
      ]);
    } finally {
      await server.close();
    }
  });

  it('gives up after 5 redirects', async () => {
    let hops = 0;
    const server = await startServer((_request, response) => {
      hops += 1;
      response.writeHead(302, { location: `/hop/${hops}` });
      response.end();
    });
    try {
      const error = await downloadError(downloadFile(`${server.url}/start`, options()));
      expect(error.problem).toBe('unavailable');
      expect(error.message).toMatch(/more than 5 times/);
      expect(hops).toBe(6);
    } finally {
      await server.close();
    }
  });

  it('does not follow a redirect to anything but http or https', async () => {
    const server = await startServer((_request, response) => {
      response.writeHead(302, { location: 'file:///etc/passwd' });
      response.end();
    });
    try {
      const error = await downloadError(downloadFile(`${server.url}/start`, options()));
      expect(error.problem).toBe('unavailable');
      expect(error.message).toMatch(/file: URLs are not downloaded/);
    } finally {
      await server.close();
    }
  });

  it('refuses a URL that is not http or https', async () => {
    const error = await downloadError(downloadFile('ftp://example.com/e.pt', options()));
    expect(error.problem).toBe('unavailable');
  });
});

describe('downloadFile: retries', () => {
  it('retries a 503 from the start, after its Retry-After', async () => {
    const url = fake.addFile('/e.pt', fileBytes);
    fake.setBehaviour({ failNext: 1, failStatus: 503, retryAfter: '1' });
    expect((await downloadFile(url, options())).sha256).toBe(fileSha256);
    expect(delays).toEqual([1000]);
    expect(fake.calls.downloads()).toBe(1);
  });

  it('retries a 429 with backoff', async () => {
    const url = fake.addFile('/e.pt', fileBytes);
    fake.setBehaviour({ failNext: 2, failStatus: 429 });
    expect((await downloadFile(url, options({ random: () => 0.5 }))).sha256).toBe(fileSha256);
    expect(delays).toEqual([100, 200]);
  });

  it('gives up after maxAttempts (default 3) as unavailable', async () => {
    const url = fake.addFile('/e.pt', fileBytes);
    fake.setBehaviour({ failNext: 100, failStatus: 500 });
    const error = await downloadError(downloadFile(url, options()));
    expect(error.problem).toBe('unavailable');
    expect(error.message).toMatch(/answered 500 \(3 attempts\)/);
    expect(fake.requests).toHaveLength(3);
  });

  it('gives up on a server that never answers', async () => {
    const url = fake.addFile('/e.pt', fileBytes);
    fake.setBehaviour({ hang: true });
    const error = await downloadError(downloadFile(url, options({ timeoutMs: 100, maxAttempts: 2 })));
    expect(error.problem).toBe('unavailable');
    expect(error.message).toMatch(/timed out after 100 ms \(2 attempts\)/);
    expect(fake.requests).toHaveLength(2);
  });

  it('does not retry a 403, and mentions the token', async () => {
    fake.setBehaviour({ failNext: 100, failStatus: 403 });
    const error = await downloadError(downloadFile(`${fake.url}/api/download/x`, options()));
    expect(error.problem).toBe('unavailable');
    expect(error.message).toMatch(/CIVITAI_TOKEN/);
    expect(fake.requests).toHaveLength(1);
  });

  it('passes the caller abort through without retrying', async () => {
    const url = fake.addFile('/e.pt', fileBytes);
    fake.setBehaviour({ hang: true });
    const controller = new AbortController();
    const reason = new Error('client went away');
    setTimeout(() => controller.abort(reason), 50);
    await expect(downloadFile(url, options({ signal: controller.signal, timeoutMs: 5_000 }))).rejects.toBe(reason);
    expect(fake.requests).toHaveLength(1);
    expect(delays).toEqual([]);
  });

  it('keeps signed query strings out of its messages', async () => {
    const server = await startServer((_request, response) => {
      response.writeHead(500);
      response.end();
    });
    try {
      const error = await downloadError(downloadFile(`${server.url}/e.pt?X-Amz-Signature=secret`, options({ maxAttempts: 1 })));
      expect(error.message).not.toContain('secret');
    } finally {
      await server.close();
    }
  });
});
