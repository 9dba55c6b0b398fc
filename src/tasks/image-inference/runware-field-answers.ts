import { createError, createWarning, type ApiError, type ApiWarning, type ErrorDetails } from '../../errors.js';
import { describe } from '../structural-errors.js';
import { fieldsNotApplied, PROMPT_WEIGHTING_SWITCH, SAFETY_FIELD, unsupportedFeatures } from './runware-fields.js';

/**
 * Takes the documented Runware fields that are not task parameters out of a task (runware-fields.ts), with
 * their answers: an unsupportedFeature error, or a parameterNotApplied warning. `safety.checkContent` is
 * Runware's newer spelling of checkNSFW and becomes it. What remains goes to the schema, which reports
 * anything else unknown as unknownParameter.
 */

export interface SeparatedTask {
  readonly task: Record<string, unknown>;
  readonly errors: ApiError[];
  readonly warnings: ApiWarning[];
}

export function separateRunwareFields(raw: Record<string, unknown>, details: ErrorDetails): SeparatedTask {
  const task: Record<string, unknown> = {};
  const errors: ApiError[] = [];
  const warnings: ApiWarning[] = [];
  for (const key of Object.keys(raw)) {
    const value = raw[key];
    if (value === undefined || value === null) {
      // Clients that serialise optional fields as null (runware's controlNet entries, say) mean "not set".
      if (key in unsupportedFeatures || key in fieldsNotApplied) continue;
    }
    const refusal = Object.hasOwn(unsupportedFeatures, key) ? unsupportedFeatures[key] : undefined;
    if (refusal) {
      errors.push(unsupported(key, refusal.feature, refusal.instead, details));
      continue;
    }
    const notApplied = Object.hasOwn(fieldsNotApplied, key) ? fieldsNotApplied[key] : undefined;
    if (notApplied) {
      warnings.push(createWarning('parameterNotApplied', `${key} is accepted but not applied: ${notApplied}.`, { ...details, parameter: key }));
      continue;
    }
    if (key === PROMPT_WEIGHTING_SWITCH) {
      // An explicit promptWeighting wins: usePromptWeighting predates the choice.
      if (value === true && raw['promptWeighting'] === undefined) task['promptWeighting'] = 'compel';
      else if (typeof value !== 'boolean') errors.push(createError('invalidParameter', `${key} must be a boolean; got ${describe(value)}.`, { ...details, parameter: key }));
      continue;
    }
    if (key === SAFETY_FIELD) {
      takeSafety(value, raw, task, errors, details);
      continue;
    }
    // Defined, not assigned: a `__proto__` key must stay a plain (unknown) parameter, not become a prototype.
    Object.defineProperty(task, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return { task, errors, warnings };
}

function takeSafety(value: unknown, raw: Record<string, unknown>, task: Record<string, unknown>, errors: ApiError[], details: ErrorDetails): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    errors.push(createError('invalidParameter', `${SAFETY_FIELD} must be an object such as {"checkContent": true}; got ${describe(value)}.`, { ...details, parameter: SAFETY_FIELD }));
    return;
  }
  for (const [key, setting] of Object.entries(value as Record<string, unknown>)) {
    const parameter = `${SAFETY_FIELD}.${key}`;
    if (key !== 'checkContent') {
      errors.push(unsupported(parameter, 'safety settings other than checkContent', 'use checkContent (or checkNSFW) for the NSFW check', details));
    } else if (typeof setting !== 'boolean') {
      errors.push(createError('invalidParameter', `${parameter} must be a boolean; got ${describe(setting)}.`, { ...details, parameter }));
    } else if (typeof raw['checkNSFW'] === 'boolean' && raw['checkNSFW'] !== setting) {
      errors.push(createError('invalidParameter', `${parameter} is ${setting} but checkNSFW is ${raw['checkNSFW']}; they are the same switch, send one.`, { ...details, parameter }));
    } else {
      task['checkNSFW'] = setting;
    }
  }
}

function unsupported(parameter: string, feature: string, instead: string | undefined, details: ErrorDetails): ApiError {
  return createError('unsupportedFeature', `${parameter}: ${feature} is not something clipgate's GPU workers do${instead ? `; ${instead}` : ''}.`, {
    ...details,
    parameter,
  });
}
