/**
 * Who sent a request: the API key it authenticated with, known only by its digest. Sessions, and later
 * stored tasks and images, belong to a principal; one never reads another's.
 */
export interface Principal {
  /** SHA-256 of the API key (hex), or `open` on a gateway without API_KEYS and without a key presented. */
  readonly id: string;
}
