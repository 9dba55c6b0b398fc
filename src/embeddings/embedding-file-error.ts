/**
 * Why an embedding file was refused. Callers branch on `problem`, never on the message:
 * - unparseable: not a format clipgate reads, or a file of a known format that contradicts itself
 *   (truncated, lying header, corrupt archive, non-finite values);
 * - unsafe: reading it as its authors intended would execute code (a pickle global or opcode outside the
 *   tensor-rebuilding allowlist);
 * - tooLarge: it exceeds a resource cap (inflated bytes, archive entries, header or pickle size, unpickler
 *   stack or memo) — a zip bomb ends here;
 * - unsupportedShape: a well-formed file whose tensors are not a textual inversion clipgate serves (wrong
 *   width, vector count, tensor names or dtype);
 * - valueOutOfRange: finite values too large for float16, the precision GPU workers run CLIP in.
 */
export type EmbeddingFileProblem = 'unparseable' | 'unsafe' | 'tooLarge' | 'unsupportedShape' | 'valueOutOfRange';

/** Messages say what was expected and what was found; they never carry the file's bytes. */
export class EmbeddingFileError extends Error {
  override readonly name = 'EmbeddingFileError';
  constructor(
    readonly problem: EmbeddingFileProblem,
    message: string,
  ) {
    super(message);
  }
}
