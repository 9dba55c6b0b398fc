import { statusOf, type ApiError } from '../errors.js';

/** A request-level problem (bad body, bad key) raised from a hook or parser and answered by the error handler. */
export class ClientRequestError extends Error {
  override readonly name = 'ClientRequestError';
  readonly statusCode: number;
  constructor(readonly apiError: ApiError) {
    super(apiError.message);
    this.statusCode = statusOf(apiError.code);
  }
}
