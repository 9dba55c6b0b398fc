import { PROMPT_WEIGHT_RANGE } from '../../../contracts/task-limits.js';

/**
 * What the prompt-weighting syntax checkers (sdEmbeds, compel) report, and the helpers both use to word it.
 * The checkers run before any GPU time is spent, so a client learns what is wrong and where from the gateway
 * instead of getting an image made from a silently misread prompt.
 */

export interface PromptSyntaxProblem {
  /** 0-based UTF-16 index into the prompt. */
  readonly position: number;
  readonly message: string;
}

/** The weights a prompt may give any piece of text, after nesting multiplies them (shared contract). */
export { PROMPT_WEIGHT_RANGE };

/** Past this many problems a prompt is not a typo away from valid; more would only bloat the answer. */
export const MAX_PROMPT_SYNTAX_PROBLEMS = 10;

/** Nesting multiplies floats (1.1^n); a weight that is the maximum in decimal must not fail by rounding. */
const WEIGHT_TOLERANCE = 1e-9;

const EXCERPT_LENGTH = 30;
/** How much of the excerpt comes before the position, so the reader sees what leads up to it. */
const EXCERPT_LEAD = 12;

export function isWeightInRange(weight: number): boolean {
  return weight >= PROMPT_WEIGHT_RANGE.min - WEIGHT_TOLERANCE && weight <= PROMPT_WEIGHT_RANGE.max + WEIGHT_TOLERANCE;
}

/** A weight as people write it: 1.21 rather than 1.2100000000000002. */
export function formatWeight(weight: number): string {
  return String(Number(weight.toFixed(3)));
}

export const WEIGHT_RANGE_TEXT = `${PROMPT_WEIGHT_RANGE.min} to ${PROMPT_WEIGHT_RANGE.max}`;

/** `"…a (cat:1.2 …"`: up to 30 characters of the prompt around `position`, line breaks shown as spaces. */
export function excerptAround(prompt: string, position: number): string {
  let start = Math.max(0, Math.min(position - EXCERPT_LEAD, prompt.length - EXCERPT_LENGTH));
  let end = Math.min(prompt.length, start + EXCERPT_LENGTH);
  // Never cut an emoji (a surrogate pair) in half: the half would print as a replacement character.
  if (start > 0 && isLowSurrogate(prompt.charCodeAt(start))) start -= 1;
  if (end < prompt.length && isLowSurrogate(prompt.charCodeAt(end))) end += 1;
  const text = prompt.slice(start, end).replace(/[\r\n\t\v\f]/g, ' ');
  return `"${start > 0 ? '…' : ''}${text}${end < prompt.length ? '…' : ''}"`;
}

/** "at character 5 ("…a (cat …")": the 1-based place a person counts, and what is there. */
export function describePosition(prompt: string, position: number): string {
  return `at character ${position + 1} (${excerptAround(prompt, position)})`;
}

/** A problem as a checker finds it: worded only if it is among those returned (`'('.repeat(3000)` has 3,000). */
export interface FoundProblem {
  readonly position: number;
  readonly describe: () => string;
}

/** The problems in order of position, at most MAX_PROMPT_SYNTAX_PROBLEMS; the sort is stable for ties. */
export function firstProblems(found: readonly FoundProblem[]): PromptSyntaxProblem[] {
  return [...found]
    .sort((a, b) => a.position - b.position)
    .slice(0, MAX_PROMPT_SYNTAX_PROBLEMS)
    .map(({ position, describe }) => ({ position, message: describe() }));
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}
