import { EmbeddingFileError, inspectEmbeddingFile } from '../../src/embeddings/inspect-embedding.js';

/** Inspects a file that must be refused, and returns the refusal for its problem and message to be checked. */
export async function refusal(bytes: Uint8Array, options?: { maxUncompressedBytes?: number }): Promise<EmbeddingFileError> {
  const error: unknown = await inspectEmbeddingFile(bytes, options).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  if (!(error instanceof EmbeddingFileError)) throw new Error(`expected an EmbeddingFileError, got ${String(error)}`);
  return error;
}
