import { describe, expect, it } from 'vitest';
import { responseStatus } from '../../src/api/task-response.js';
import { createError, type ErrorCode } from '../../src/errors.js';

const errors = (...codes: ErrorCode[]) => codes.map((code) => createError(code, code));
const image = { taskType: 'imageInference' as const, taskUUID: 'u', imageUUID: 'i', seed: 1 };

describe('responseStatus', () => {
  it('is 200 when any task produced data, whatever failed beside it', () => {
    expect(responseStatus({ data: [image], errors: errors('noAvailableWorker', 'invalidParameter') })).toBe(200);
  });

  it('is the status of the only error class present', () => {
    expect(responseStatus({ data: [], errors: errors('noAvailableWorker', 'noAvailableWorker') })).toBe(503);
    expect(responseStatus({ data: [], errors: errors('unknownModel') })).toBe(400);
  });

  it('puts what the client must fix before what a retry may fix', () => {
    expect(responseStatus({ data: [], errors: errors('noAvailableWorker', 'unknownModel', 'noAvailableWorker') })).toBe(400);
    expect(responseStatus({ data: [], errors: errors('internalError', 'noAvailableWorker') })).toBe(503);
    expect(responseStatus({ data: [], errors: errors('invalidParameter', 'payloadTooLarge') })).toBe(413);
  });
});
