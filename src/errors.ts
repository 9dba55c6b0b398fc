/**
 * The one catalogue of clipgate error and warning codes. Nothing else invents a code: every error a
 * client can see is created here, with its HTTP status and whether retrying the same task can help.
 * The README's tables are checked against this file by a test.
 */

export interface ErrorDefinition {
  readonly status: number;
  readonly retryable: boolean;
  /** One line for the README's table: when a client sees this code. */
  readonly description: string;
}

export const errorCatalogue = {
  // Request-level problems: the body as a whole could not be taken.
  invalidJson: {
    status: 400,
    retryable: false,
    description: 'The request body is not valid JSON (or is nested too deeply to read).',
  },
  invalidRequestBody: {
    status: 400,
    retryable: false,
    description: 'The body is valid JSON but not a non-empty array of task objects.',
  },
  tooManyTasks: {
    status: 400,
    retryable: false,
    description: 'The array holds more tasks than MAX_TASKS_PER_REQUEST allows.',
  },
  payloadTooLarge: {
    status: 413,
    retryable: false,
    description: 'The body is larger than BODY_LIMIT_BYTES.',
  },
  unsupportedMediaType: {
    status: 415,
    retryable: false,
    description: 'The Content-Type is not application/json (in UTF-8), or the Content-Encoding is not gzip, deflate or br.',
  },
  missingApiKey: {
    status: 401,
    retryable: false,
    description: 'No key was sent: neither an `Authorization: Bearer <key>` header nor a leading `authentication` task (on a WebSocket: tasks before `authentication`).',
  },
  invalidApiKey: {
    status: 401,
    retryable: false,
    description: 'The key (bearer header or `authentication` task) is not one of the configured API keys.',
  },
  invalidMetricsToken: {
    status: 401,
    retryable: false,
    description: '`/metrics` needs `Authorization: Bearer <METRICS_TOKEN>` on this gateway, and the request sent no token or another one.',
  },
  tooManyConnections: {
    status: 429,
    retryable: true,
    description:
      'This API key already holds WS_MAX_SOCKETS_PER_KEY WebSockets, or this address HTTP_MAX_CONNECTIONS_PER_IP connections, on this gateway replica.',
  },
  malformedRequest: {
    status: 400,
    retryable: false,
    description: 'The HTTP request itself cannot be parsed (bad request line, headers or chunked encoding).',
  },
  requestTimeout: {
    status: 408,
    retryable: true,
    description: 'The request headers or body did not arrive within HTTP_HEADERS_TIMEOUT_MS / HTTP_REQUEST_TIMEOUT_MS.',
  },
  headersTooLarge: {
    status: 431,
    retryable: false,
    description: 'The request headers are larger than the server takes (16 KiB).',
  },
  invalidUrl: {
    status: 400,
    retryable: false,
    description: 'The request URL is malformed (e.g. broken percent-encoding).',
  },
  routeNotFound: {
    status: 404,
    retryable: false,
    description: 'No endpoint answers this method and path.',
  },
  methodNotAllowed: {
    status: 405,
    retryable: false,
    description: 'The path exists but does not answer this method; `Allow` lists the ones it does.',
  },
  modelNotFound: {
    status: 404,
    retryable: false,
    description: '`GET /v1/models/{air}` names no model in the catalogue or the registry.',
  },
  imageNotFound: {
    status: 404,
    retryable: false,
    description: 'No generated image with this name is stored (wrong name, or it was cleaned up).',
  },
  embeddingFileNotFound: {
    status: 404,
    retryable: false,
    description: 'No canonical embedding file with this SHA-256 is stored (it was never ingested, or has expired).',
  },

  // Task-level structural problems.
  invalidTask: {
    status: 400,
    retryable: false,
    description: 'An element of the task array is not a JSON object.',
  },
  unsupportedTaskType: {
    status: 400,
    retryable: false,
    description: '`taskType` is missing or names a task type clipgate does not run.',
  },
  missingParameter: {
    status: 400,
    retryable: false,
    description: 'A required parameter is absent.',
  },
  invalidParameter: {
    status: 400,
    retryable: false,
    description: 'A parameter has the wrong type, format or value (see `allowed` where it applies).',
  },
  parameterOutOfRange: {
    status: 400,
    retryable: false,
    description: 'A number, string length or list length is outside its range (see `min` and `max`).',
  },
  unknownParameter: {
    status: 400,
    retryable: false,
    description: 'The task carries a field clipgate does not know (often a typo).',
  },
  invalidAir: {
    status: 400,
    retryable: false,
    description: 'A model identifier is not an AIR (`source:id@version` or `urn:air:…`).',
  },
  duplicateTaskUUID: {
    status: 400,
    retryable: false,
    description: 'Two tasks in one request share a `taskUUID`.',
  },
  conflictTaskUUID: {
    status: 409,
    retryable: false,
    description: 'A task with this `taskUUID` is still being answered on another live WebSocket of the same key.',
  },
  inlineOutputTooLarge: {
    status: 400,
    retryable: false,
    description:
      'The request asks for more inline images (base64Data, dataURI) than one answer carries: INLINE_OUTPUT_MAX_MEGAPIXELS over its tasks; use outputType URL, or fewer tasks per request.',
  },
  unsupportedFeature: {
    status: 400,
    retryable: false,
    description: "A documented Runware field asks for something clipgate's workers do not do (image-to-image, inpainting, ControlNet, …); the message says what to do instead.",
  },

  // Task-level semantic problems.
  unknownModel: {
    status: 400,
    retryable: false,
    description: 'The AIR is well formed but names no model clipgate knows.',
  },
  notABaseModel: {
    status: 400,
    retryable: false,
    description: '`model` names an embedding or a LoRA instead of a base (checkpoint) model.',
  },
  notAnEmbedding: {
    status: 400,
    retryable: false,
    description: 'An `embeddings[]` entry names a model that is not a textual inversion (a LoRA belongs in `lora[]`).',
  },
  notALora: {
    status: 400,
    retryable: false,
    description: 'A `lora[]` entry names a model that is not a LoRA.',
  },
  unsupportedEmbeddingArchitecture: {
    status: 400,
    retryable: false,
    description: 'Embeddings were sent for a base model without a CLIP text encoder (FLUX, HiDream, SD3, third-party, …).',
  },
  incompatibleEmbeddingFamily: {
    status: 400,
    retryable: false,
    description: "An embedding was trained for another family than the base model's (e.g. SD 1.5 on SDXL).",
  },
  invalidPromptSyntax: {
    status: 400,
    retryable: false,
    description: 'A prompt does not parse in its promptWeighting syntax (an unbalanced bracket, a weight out of range, a feature workers do not apply); the message gives the character.',
  },
  invalidEmbeddingMarker: {
    status: 400,
    retryable: false,
    description: 'A prompt holds `<embedding:AIR>` for an AIR not in embeddings[], or in the prompt its weight does not send it to.',
  },
  tooManyEmbeddingVectors: {
    status: 400,
    retryable: false,
    description: "The task's embeddings hold more vectors together than a worker's text encoder has slots for (1,024).",
  },
  taskNotFound: {
    status: 404,
    retryable: false,
    description: 'getResponse: this API key sent no task with that taskUUID, or its record is older than TASK_LEDGER_TTL_SECONDS.',
  },
  taskLedgerUnavailable: {
    status: 503,
    retryable: true,
    description: "The task ledger's store (Redis) is not answering: getResponse cannot read it, an async task cannot be recorded; ask again in a moment.",
  },
  taskUUIDConflict: {
    status: 409,
    retryable: false,
    description: 'This API key sent a different task with the same `taskUUID` within TASK_LEDGER_TTL_SECONDS; a taskUUID names one task. Send a new taskUUID.',
  },
  resultNotKept: {
    status: 410,
    retryable: false,
    description: 'The task was sent before and finished; its inline images went out in that answer and are not kept (sync tasks). Nothing is generated again: send a new taskUUID, or use outputType URL or deliveryMethod async to fetch results again.',
  },
  taskStillProcessing: {
    status: 202,
    retryable: true,
    description: 'A sync task ran past SYNC_WAIT_LIMIT_SECONDS: it continues, and getResponse (or GET /v1/tasks/{taskUUID}) gives its results when it finishes.',
  },
  taskQueueUnavailable: {
    status: 503,
    retryable: true,
    description: "An async task could not be put on the job queue (its store, Redis, is not answering); nothing was accepted. Send it again.",
  },
  asyncTaskFailed: {
    status: 500,
    retryable: true,
    description: 'An async task could not be run to the end: its job was lost with its replica more often than allowed, or its result could not be recorded. Send it again with a new taskUUID.',
  },
  webhookTargetRefused: {
    status: 400,
    retryable: false,
    description: 'The `webhookURL` is not one clipgate calls: not http(s) (https in production), or it resolves to a private, loopback, link-local or metadata address that WEBHOOK_ALLOWED_HOSTS does not name.',
  },
  webhooksNotConfigured: {
    status: 400,
    retryable: false,
    description: 'A `webhookURL` was sent, but this gateway has no WEBHOOK_SIGNING_SECRET, so a receiver could not verify what it sends; the task is refused rather than run without its webhook.',
  },
  duplicateEmbedding: {
    status: 400,
    retryable: false,
    description: 'The same embedding appears twice in one task; merge the entries into one weight.',
  },
  tooManyEmbeddings: {
    status: 400,
    retryable: false,
    description: 'A task carries more embeddings than MAX_EMBEDDINGS_PER_TASK allows.',
  },

  // Problems with the embedding a task names, found when it is resolved and inspected.
  tooManyNewModels: {
    status: 429,
    retryable: true,
    description:
      'The request names more models the gateway has not looked up yet than one request may send to the registry (REGISTRY_LOOKUPS_PER_REQUEST); those it did look up are cached, so a retry gets further.',
  },
  modelUnavailable: {
    status: 503,
    retryable: true,
    description: 'The model registry cannot be reached and nothing is cached for this AIR; retry later.',
  },
  embeddingFileMissing: {
    status: 422,
    retryable: false,
    description: 'The registry lists no downloadable file for this embedding.',
  },
  embeddingFlaggedByScan: {
    status: 422,
    retryable: false,
    description: "The registry's pickle or virus scan marks the embedding's file as Danger.",
  },
  embeddingFileTooLarge: {
    status: 422,
    retryable: false,
    description: 'The embedding file is larger than EMBEDDING_MAX_BYTES (or unpacks to more than is safe).',
  },
  embeddingFileUnsafe: {
    status: 422,
    retryable: false,
    description: 'The embedding file tries to run code or is built to exhaust memory (e.g. a pickle naming os.system, a zip bomb).',
  },
  embeddingFileUnparseable: {
    status: 422,
    retryable: false,
    description: 'The embedding file is not a readable safetensors, A1111 .pt or diffusers .bin file (truncated, lying header, …).',
  },
  unsupportedEmbeddingShape: {
    status: 422,
    retryable: false,
    description: 'The embedding\'s tensors have a shape no served text encoder takes (vector width, or 0 or more than 75 vectors).',
  },
  embeddingValueOutOfRange: {
    status: 422,
    retryable: false,
    description: "The embedding file holds values beyond ±65504, the largest float16: on GPU workers, which run CLIP in float16, they would turn the prompt into NaN.",
  },
  loraFileMissing: {
    status: 422,
    retryable: false,
    description: 'The registry lists no downloadable file for this LoRA, or no SHA-256 a worker could verify it against.',
  },
  loraFormatUnsupported: {
    status: 422,
    retryable: false,
    description: "The LoRA's file is a pickle (.pt, .ckpt): loading it would unpickle code on a GPU host; a .safetensors version is needed.",
  },
  loraFileUnreadable: {
    status: 422,
    retryable: false,
    description: "The LoRA's file is not a readable safetensors file (its header, read by range, is truncated or malformed).",
  },
  loraFlaggedByScan: {
    status: 422,
    retryable: false,
    description: "The registry's pickle or virus scan marks the LoRA's file as Danger.",
  },
  incompatibleLoraFamily: {
    status: 400,
    retryable: false,
    description: "The LoRA was trained for another model family than the task's base model (its file's tensor shapes say which).",
  },
  embeddingChecksumMismatch: {
    status: 502,
    retryable: true,
    description: "The downloaded file's SHA-256 differs from the registry's; the download was discarded.",
  },

  // Capacity and server problems.
  noAvailableWorker: {
    status: 503,
    retryable: true,
    description: 'No healthy GPU worker serves the task\'s model; retry later.',
  },
  overloaded: {
    status: 503,
    retryable: true,
    description: "This replica's event loop lags past SHED_EVENT_LOOP_DELAY_MS or its heap is past SHED_HEAP_USED_BYTES: the request is refused at once, before any work; retry (another replica may take it).",
  },
  rateLimitExceeded: {
    status: 429,
    retryable: true,
    description: 'This API key (or, without one, this address) made more requests than RATE_LIMIT_PER_MINUTE allows; retry after `retryAfter` seconds (also Retry-After; RateLimit-* headers say where it stands).',
  },
  queueFull: {
    status: 429,
    retryable: true,
    description: 'Every worker for the model is busy and the queue is full (QUEUE_MAX); retry after `retryAfter` seconds.',
  },
  tooManyTasksInFlight: {
    status: 429,
    retryable: true,
    description: 'This WebSocket already has WS_MAX_TASKS_IN_FLIGHT tasks running; send more as earlier ones finish.',
  },
  queueTimeout: {
    status: 503,
    retryable: true,
    description: 'The task waited QUEUE_WAIT_MS in the queue without a worker freeing up; retry after `retryAfter` seconds.',
  },
  timeoutWorker: {
    status: 504,
    retryable: true,
    description: 'No worker accepted the job in time (TASK_FIRST_BYTE_TIMEOUT_MS) or finished it within TASK_TIMEOUT_MS.',
  },
  workerFailed: {
    status: 502,
    retryable: true,
    description: 'Workers failed the task (crashed, reset, 5xx) on every attempt; nothing was produced.',
  },
  workerRejectedTask: {
    status: 422,
    retryable: false,
    description: 'A worker refused the task itself (e.g. an embedding that does not fit its model); retrying will not help.',
  },
  shuttingDown: {
    status: 503,
    retryable: true,
    description: 'This gateway replica is draining for shutdown: new work is refused, and work still running when DRAIN_GRACE_MS ends is stopped; retry (another replica takes it).',
  },
  internalError: {
    status: 500,
    retryable: true,
    description: 'clipgate failed in a way that is not the client\'s fault; the details are in its log.',
  },
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof errorCatalogue;

/** The error object of the public API (DESIGN §2). */
export interface ApiError {
  code: ErrorCode;
  message: string;
  parameter?: string;
  taskUUID?: string;
  taskType?: string;
  /** Position of the task in the request array: identifies tasks that sent no usable taskUUID. */
  taskIndex?: number;
  /** Seconds to wait before retrying, for capacity errors (also sent as the Retry-After header). */
  retryAfter?: number;
  /** Where the task stood (or would have stood) in the gateway's queue. */
  queuePosition?: number;
  min?: number;
  max?: number;
  allowed?: readonly (string | number)[];
  retryable: boolean;
}

export type ErrorDetails = Omit<ApiError, 'code' | 'message' | 'retryable'>;

export function createError(code: ErrorCode, message: string, details: ErrorDetails = {}): ApiError {
  return { code, message, ...details, retryable: errorCatalogue[code].retryable };
}

export function statusOf(code: ErrorCode): number {
  return errorCatalogue[code].status;
}

export interface WarningDefinition {
  readonly description: string;
}

export const warningCatalogue = {
  extremeEmbeddingWeight: {
    description: 'An embedding weight beyond ±2.0: accepted, but such weights often distort the image.',
  },
  manyEmbeddings: {
    description: 'More than 3 embeddings in one task: accepted, but they tend to interfere with each other.',
  },
  ineffectiveEmbeddingWeight: {
    description: 'An embedding with weight 0 has no effect; remove it or give it a weight.',
  },
  embeddingLabelMismatch: {
    description:
      "The embedding's file says another family than its registry label; the file wins, because its tensor shapes are what the text encoder sees.",
  },
  parameterNotApplied: {
    description:
      'A documented Runware field that changes nothing about the image (acceleration, ttl, outputQuality on PNG, …) was taken but not applied; the message says why.',
  },
  ineffectiveLoraWeight: {
    description: 'A LoRA with weight 0 has no effect; it is not sent to the worker. Remove it or give it a weight.',
  },
  triggerWordOnOtherSide: {
    description: "A prompt names an embedding (its trigger word) that its weight's sign sends to the other prompt: the word is encoded as text there, and the embedding is appended to its own prompt.",
  },
  negativeEmbeddingWithoutGuidance: {
    description:
      'A negative embedding works through the negative prompt, which has no effect when CFGScale ≤ 1.',
  },
} as const satisfies Record<string, WarningDefinition>;

export type WarningCode = keyof typeof warningCatalogue;

export interface ApiWarning {
  code: WarningCode;
  message: string;
  parameter?: string;
  taskUUID?: string;
  taskType?: string;
  taskIndex?: number;
}

export function createWarning(
  code: WarningCode,
  message: string,
  details: Omit<ApiWarning, 'code' | 'message'> = {},
): ApiWarning {
  return { code, message, ...details };
}
