import type { Readable } from 'node:stream';
import yauzl from 'yauzl';
import { EmbeddingFileError } from './embedding-file-error.js';
import { quoteUntrusted } from './quote-untrusted.js';

/**
 * A zip archive held in memory, opened defensively: its central directory is read and vetted in full
 * (entry count, encryption, compression method, declared sizes, duplicate names) before any entry is
 * inflated, and every read is capped while it streams, so a zip bomb stops after at most the cap — whether
 * it declares its true size (refused before inflating) or lies about it (yauzl's size check or our own
 * counter stops the stream).
 *
 * Every cap that is exceeded is 'tooLarge'; an archive that is malformed, encrypted or uses another
 * compression method is 'unparseable'.
 */

export interface ZipLimits {
  /** More entries than this is refused before any is read; torch archives have about six. */
  readonly maxEntries: number;
  /** Per entry and for all entries together, by their declared sizes and by the bytes actually inflated. */
  readonly maxUncompressedBytes: number;
}

export interface ZipArchive {
  /** Entry names in central-directory order. */
  readonly names: readonly string[];
  /** Inflates one entry, refusing it as 'tooLarge' beyond `maxBytes` (and beyond the archive's budget). */
  read(name: string, maxBytes?: number): Promise<Uint8Array>;
  close(): void;
}

const STORED = 0;
const DEFLATED = 8;

export async function openZipArchive(bytes: Uint8Array, limits: ZipLimits): Promise<ZipArchive> {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let zipfile: yauzl.ZipFile;
  try {
    zipfile = await yauzl.fromBufferPromise(buffer, { lazyEntries: true, validateEntrySizes: true, strictFileNames: true });
  } catch (error) {
    throw malformed(error);
  }
  try {
    const entries = await listEntries(zipfile, limits);
    return createArchive(zipfile, entries, limits);
  } catch (error) {
    zipfile.close();
    throw error;
  }
}

async function listEntries(zipfile: yauzl.ZipFile, limits: ZipLimits): Promise<Map<string, yauzl.Entry>> {
  if (zipfile.entryCount > limits.maxEntries) {
    throw new EmbeddingFileError('tooLarge', `the archive lists ${zipfile.entryCount} entries; at most ${limits.maxEntries} are accepted`);
  }
  const entries = new Map<string, yauzl.Entry>();
  let declaredTotal = 0;
  try {
    for await (const entry of zipfile.eachEntry()) {
      const name = entry.fileName;
      if (entries.has(name)) throw unparseable(`the archive holds two entries named ${quoteUntrusted(name)}`);
      if (entry.isEncrypted()) throw unparseable(`archive entry ${quoteUntrusted(name)} is encrypted`);
      if (entry.compressionMethod !== STORED && entry.compressionMethod !== DEFLATED) {
        throw unparseable(`archive entry ${quoteUntrusted(name)} uses compression method ${entry.compressionMethod}; only stored (0) and deflate (8) are read`);
      }
      if (entry.uncompressedSize > limits.maxUncompressedBytes) {
        throw tooLarge(`archive entry ${quoteUntrusted(name)} declares ${entry.uncompressedSize} uncompressed bytes`, limits.maxUncompressedBytes);
      }
      declaredTotal += entry.uncompressedSize;
      if (declaredTotal > limits.maxUncompressedBytes) {
        throw tooLarge(`the archive's entries declare more than ${limits.maxUncompressedBytes} uncompressed bytes together`, limits.maxUncompressedBytes);
      }
      entries.set(name, entry);
    }
  } catch (error) {
    throw error instanceof EmbeddingFileError ? error : malformed(error);
  }
  return entries;
}

function createArchive(zipfile: yauzl.ZipFile, entries: Map<string, yauzl.Entry>, limits: ZipLimits): ZipArchive {
  let budget = limits.maxUncompressedBytes;
  return {
    names: [...entries.keys()],
    async read(name, maxBytes = limits.maxUncompressedBytes) {
      const entry = entries.get(name);
      if (entry === undefined) throw unparseable(`the archive has no entry ${quoteUntrusted(name)}`);
      const cap = Math.min(maxBytes, budget);
      if (entry.uncompressedSize > cap) {
        throw tooLarge(`archive entry ${quoteUntrusted(name)} declares ${entry.uncompressedSize} uncompressed bytes`, cap);
      }
      const content = await inflate(zipfile, entry, cap);
      budget -= content.length;
      return content;
    },
    close() {
      zipfile.close();
    },
  };
}

async function inflate(zipfile: yauzl.ZipFile, entry: yauzl.Entry, cap: number): Promise<Uint8Array> {
  const name = entry.fileName;
  let stream: Readable;
  try {
    stream = await zipfile.openReadStreamPromise(entry);
  } catch (error) {
    throw malformed(error);
  }
  const chunks: Buffer[] = [];
  let received = 0;
  try {
    // Leaving this loop early (a throw) destroys the stream, so nothing more is inflated.
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      received += chunk.length;
      if (received > cap) throw tooLarge(`archive entry ${quoteUntrusted(name)} inflates to more than ${cap} bytes`, cap);
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof EmbeddingFileError) throw error;
    // yauzl's own guard against an entry that inflates beyond its declared size: the zip-bomb lie.
    if (error instanceof Error && error.message.startsWith('too many bytes in the stream')) {
      throw new EmbeddingFileError('tooLarge', `archive entry ${quoteUntrusted(name)} inflates beyond the ${entry.uncompressedSize} bytes it declares`);
    }
    throw malformed(error);
  }
  return new Uint8Array(Buffer.concat(chunks, received));
}

function tooLarge(found: string, cap: number): EmbeddingFileError {
  return new EmbeddingFileError('tooLarge', `${found}; at most ${cap} are accepted`);
}

function unparseable(message: string): EmbeddingFileError {
  return new EmbeddingFileError('unparseable', message);
}

/** yauzl's messages describe the structure (offsets, signatures), never entry contents; names are re-quoted. */
function malformed(error: unknown): EmbeddingFileError {
  const reason = error instanceof Error ? error.message : String(error);
  return unparseable(`the zip archive is malformed: ${quoteUntrusted(reason, 160)}`);
}
