/** Where the gateway serves a canonical embedding file; workers are sent this path on PUBLIC_BASE_URL. */
export function embeddingFilePath(sha256: string): string {
  return `/v1/embeddings/${sha256}.safetensors`;
}
