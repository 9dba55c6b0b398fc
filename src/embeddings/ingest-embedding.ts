import type { ErrorCode } from '../errors.js';
import type { EmbeddingFileFacts } from '../contracts/model-record.js';
import type { Family } from '../contracts/families.js';
import type { RegistryFile } from '../contracts/registry-file.js';
import { toCanonicalSafetensors } from './canonical-safetensors.js';
import type { ContentStore } from './content-store.js';
import { DownloadError, downloadFile } from './download-file.js';
import { EmbeddingFileError, inspectEmbeddingFile } from './inspect-embedding.js';
import { createHash } from 'node:crypto';

/**
 * Turns a registry's file entry into a verified, inspected, canonical embedding: download (size cap, SHA-256
 * against the registry), read the tensor shapes without executing anything, derive the family from them,
 * store the canonical safetensors copy by its SHA-256. Failures say which catalogue error they are.
 */

export class EmbeddingRejected extends Error {
  override readonly name = 'EmbeddingRejected';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The download could not be done now (network, registry storage down); worth retrying later. */
export class EmbeddingUnavailable extends Error {
  override readonly name = 'EmbeddingUnavailable';
}

export interface IngestDependencies {
  readonly store: ContentStore;
  readonly maxBytes: number;
  readonly timeoutMs: number;
  readonly credentials: { readonly origin: string; readonly token: string } | undefined;
  readonly onDownload: () => void;
}

export interface IngestedEmbedding {
  readonly family: Family;
  readonly facts: EmbeddingFileFacts;
}

export async function ingestEmbedding(file: RegistryFile, labelledFamily: Family, dependencies: IngestDependencies): Promise<IngestedEmbedding> {
  if (file.pickleScan === 'Danger' || file.virusScan === 'Danger') {
    throw new EmbeddingRejected(
      'embeddingFlaggedByScan',
      `the registry's scans mark its file "${file.name}" as dangerous (pickle scan: ${file.pickleScan}, virus scan: ${file.virusScan}); it is not downloaded.`,
    );
  }
  if (file.sizeBytes > dependencies.maxBytes) {
    throw new EmbeddingRejected('embeddingFileTooLarge', tooLargeMessage(file.name, file.sizeBytes, dependencies.maxBytes));
  }

  let downloaded: { bytes: Uint8Array; sha256: string };
  try {
    dependencies.onDownload();
    downloaded = await downloadFile(file.downloadUrl, {
      maxBytes: dependencies.maxBytes,
      expectedSha256: file.sha256,
      timeoutMs: dependencies.timeoutMs,
      credentials: dependencies.credentials,
    });
  } catch (error) {
    if (!(error instanceof DownloadError)) throw error;
    switch (error.problem) {
      case 'tooLarge':
        throw new EmbeddingRejected('embeddingFileTooLarge', `its file "${file.name}" is larger than this gateway's limit of ${dependencies.maxBytes} bytes.`);
      case 'checksumMismatch':
        throw new EmbeddingRejected('embeddingChecksumMismatch', `its file "${file.name}" did not match the registry's SHA-256: ${error.message}`);
      case 'notFound':
        throw new EmbeddingRejected('embeddingFileMissing', `its file "${file.name}" is listed by the registry but cannot be downloaded (not found).`);
      default:
        throw new EmbeddingUnavailable(`its file "${file.name}" could not be downloaded: ${error.message}`);
    }
  }

  let inspected;
  try {
    inspected = await inspectEmbeddingFile(downloaded.bytes);
  } catch (error) {
    if (!(error instanceof EmbeddingFileError)) throw error;
    throw new EmbeddingRejected(fileProblemCodes[error.problem], `its file "${file.name}" was refused: ${error.message}`);
  }

  const canonical = toCanonicalSafetensors(inspected, { source_sha256: downloaded.sha256 });
  const canonicalSha256 = createHash('sha256').update(canonical).digest('hex');
  await dependencies.store.put(canonicalSha256, canonical);

  return {
    family: inspected.family,
    facts: {
      sha256: downloaded.sha256,
      sizeBytes: downloaded.bytes.byteLength,
      format: inspected.format,
      vectors: inspected.vectors,
      canonicalSha256,
      canonicalSizeBytes: canonical.byteLength,
      ...(inspected.family !== labelledFamily && { labelledFamily }),
    },
  };
}

const fileProblemCodes = {
  unparseable: 'embeddingFileUnparseable',
  unsafe: 'embeddingFileUnsafe',
  tooLarge: 'embeddingFileTooLarge',
  unsupportedShape: 'unsupportedEmbeddingShape',
  valueOutOfRange: 'embeddingValueOutOfRange',
} as const satisfies Record<EmbeddingFileError['problem'], ErrorCode>;

function tooLargeMessage(name: string, size: number, max: number): string {
  return `its file "${name}" is ${size} bytes, more than this gateway's limit of ${max} bytes (EMBEDDING_MAX_BYTES).`;
}
