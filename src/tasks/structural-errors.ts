import type { z } from 'zod';
import { createError, type ApiError, type ErrorCode, type ErrorDetails, errorCatalogue } from '../errors.js';
import { closestName } from './closest-name.js';
import { parameterPath, valueAt } from './parameter-path.js';

/**
 * Turns zod's issues into catalogue errors whose messages say what was wrong, what was expected and what
 * to send instead, with the parameter path (`embeddings[1].weight`) and `min`/`max`/`allowed` filled in.
 */

type Issue = z.core.$ZodIssue;

export interface IssueContext {
  /** The task as the client sent it, to describe what was received without trusting zod to echo it. */
  readonly input: unknown;
  /** The field names known at each object path, for "did you mean" suggestions. */
  readonly knownKeys: (path: readonly PropertyKey[]) => readonly string[];
  readonly details: ErrorDetails;
}

export function issuesToErrors(issues: readonly Issue[], context: IssueContext): ApiError[] {
  return issues.flatMap((issue) => issueToErrors(issue, context));
}

function issueToErrors(issue: Issue, context: IssueContext): ApiError[] {
  const path = issue.path;
  const parameter = parameterPath(path);
  const at = { ...context.details, parameter };
  const received = valueAt(context.input, path);

  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = context.knownKeys(path);
      return issue.keys.map((key) => {
        const suggestion = closestName(key, known);
        const hint = suggestion ? ` Did you mean "${suggestion}"?` : ' Remove it.';
        return createError('unknownParameter', `"${clip(key)}" is not a parameter here.${hint}`, {
          ...context.details,
          parameter: parameterPath([...path, key]),
          allowed: known,
        });
      });
    }
    case 'invalid_type':
      if (received === undefined) {
        return [createError('missingParameter', `${parameter} is required: expected ${issue.expected}.`, at)];
      }
      return [
        createError('invalidParameter', `${parameter} must be ${article(issue.expected)}; got ${describe(received)}.`, at),
      ];
    case 'too_small':
    case 'too_big':
      return [rangeError(issue, parameter, received, at)];
    case 'not_multiple_of': {
      const divisor = Number(issue.divisor);
      const nearest = typeof received === 'number' ? ` (nearest: ${Math.max(divisor, Math.round(received / divisor) * divisor)})` : '';
      return [createError('invalidParameter', `${parameter} must be a multiple of ${divisor}; got ${describe(received)}${nearest}.`, at)];
    }
    case 'invalid_value': {
      const allowed = issue.values.filter((value): value is string | number => typeof value === 'string' || typeof value === 'number');
      const suggestion = typeof received === 'string' ? closestName(received, allowed.map(String)) : undefined;
      const hint = suggestion ? ` Did you mean "${suggestion}"?` : '';
      return [
        createError('invalidParameter', `${parameter} must be one of ${allowed.map((value) => JSON.stringify(value)).join(', ')}; got ${describe(received)}.${hint}`, {
          ...at,
          allowed,
        }),
      ];
    }
    case 'invalid_format':
      return [createError('invalidParameter', `${parameter} must be ${formatDescription(issue.format)}; got ${describe(received)}.`, at)];
    case 'custom': {
      const code = catalogueCode(issue.params?.['code']);
      const min = issue.params?.['min'];
      return [
        createError(code, `${parameter}: ${issue.message}; got ${describe(received)}.`, {
          ...at,
          ...(typeof min === 'number' && { min }),
        }),
      ];
    }
    default:
      return [createError('invalidParameter', `${parameter}: ${issue.message}; got ${describe(received)}.`, at)];
  }
}

function rangeError(
  issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig,
  parameter: string,
  received: unknown,
  at: ErrorDetails,
): ApiError {
  const bound = Number(issue.code === 'too_small' ? issue.minimum : issue.maximum);
  const limit = issue.code === 'too_small' ? { min: bound } : { max: bound };
  const comparison = issue.code === 'too_small' ? 'at least' : 'at most';
  const exclusive = issue.inclusive === false ? ' (exclusive)' : '';
  switch (issue.origin) {
    case 'string':
      return createError(
        'parameterOutOfRange',
        `${parameter} must be ${comparison} ${bound} characters long${exclusive}; got ${typeof received === 'string' ? received.length : 'a value of another length'}.`,
        { ...at, ...limit },
      );
    case 'array':
      return createError(
        'parameterOutOfRange',
        `${parameter} must hold ${comparison} ${bound} entries${exclusive}; got ${Array.isArray(received) ? received.length : 'another number'}.`,
        { ...at, ...limit },
      );
    default:
      return createError('parameterOutOfRange', `${parameter} must be ${comparison} ${bound}${exclusive}; got ${describe(received)}.`, {
        ...at,
        ...limit,
      });
  }
}

function catalogueCode(code: unknown): ErrorCode {
  return typeof code === 'string' && code in errorCatalogue ? (code as ErrorCode) : 'invalidParameter';
}

function formatDescription(format: string): string {
  switch (format) {
    case 'uuid':
      return 'a UUID such as "a770f077-f413-47de-9dac-be0b26a35da6"';
    case 'url':
      return 'an absolute http:// or https:// URL';
    default:
      return `a valid ${format}`;
  }
}

function article(expected: string): string {
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

const MAX_ECHO = 60;

/** Describes what the client sent, briefly: a huge string or nested junk is never echoed whole. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  switch (typeof value) {
    case 'string':
      return `the string ${JSON.stringify(clip(value))}`;
    case 'number':
    case 'boolean':
      return String(value);
    case 'bigint':
      return value.toString();
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}

function clip(text: string): string {
  return text.length > MAX_ECHO ? `${text.slice(0, MAX_ECHO)}… (${text.length} characters)` : text;
}
