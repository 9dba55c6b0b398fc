/** What tasks answer with, in Runware's field names (DESIGN §2): one element of a response's `data`. */

/** One generated image. */
export interface ImageResult {
  readonly taskType: 'imageInference';
  readonly taskUUID: string;
  readonly imageUUID: string;
  readonly imageURL?: string;
  readonly imageBase64Data?: string;
  readonly imageDataURI?: string;
  /**
   * Exact. A JSON number on the wire — a bigint where it exceeds 2^53 − 1, written out digit for digit — or
   * a decimal string when the task sent its seed as one.
   */
  readonly seed: number | bigint | string;
  /** Present when the task asked for checkNSFW: the worker's classifier's verdict. */
  readonly NSFWContent?: boolean;
  readonly cost?: number;
  /** In a getResponse answer: the task finished and this is one of its results. */
  readonly status?: 'success';
}

/** In a getResponse answer: the task has not finished yet. */
export interface TaskStatusResult {
  readonly taskType: 'imageInference';
  readonly taskUUID: string;
  readonly status: 'processing';
}

/** The answer to an async task (deliveryMethod "async"): accepted and recorded; getResponse, SSE or a webhook give its results. */
export interface TaskAcceptedResult {
  readonly taskType: 'imageInference';
  readonly taskUUID: string;
}

/** The answer to an `authentication` task. */
export interface AuthenticationResult {
  readonly taskType: 'authentication';
  /** The WebSocket session to resume with; absent over REST, where there is no session. */
  readonly connectionSessionUUID?: string;
  readonly taskUUID?: string;
}

/** The answer to a `ping` task. */
export interface PongResult {
  readonly taskType: 'ping';
  readonly pong: true;
  readonly taskUUID?: string;
}

export type TaskResult = ImageResult | AuthenticationResult | PongResult | TaskStatusResult | TaskAcceptedResult;
