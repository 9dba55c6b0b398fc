import { statusOf, type ApiError, type ApiWarning } from '../errors.js';
import type { ImageResult } from '../contracts/dispatcher.js';

export interface TaskResponse {
  readonly data: readonly ImageResult[];
  readonly errors: readonly ApiError[];
  readonly warnings: readonly ApiWarning[];
}

/**
 * When several tasks fail for different reasons, the status is the first of these present: what the
 * client must fix (auth, size, the request itself) before what retrying may fix (capacity, timeouts,
 * worker failures).
 */
const statusPrecedence = [401, 403, 413, 415, 400, 422, 404, 429, 503, 504, 502, 500] as const;

/** DESIGN §2: 200 when any task produced data; otherwise the status of the dominant error class. */
export function responseStatus(response: TaskResponse): number {
  if (response.data.length > 0 || response.errors.length === 0) return 200;
  const present = new Set(response.errors.map((error) => statusOf(error.code)));
  return statusPrecedence.find((status) => present.has(status)) ?? 500;
}

export function errorResponse(error: ApiError): TaskResponse {
  return { data: [], errors: [error], warnings: [] };
}
