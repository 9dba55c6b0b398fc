import {
  describePosition,
  firstProblems,
  formatWeight,
  isWeightInRange,
  WEIGHT_RANGE_TEXT,
  type FoundProblem,
  type PromptSyntaxProblem,
} from './prompt-syntax-problem.js';

/**
 * A syntax check for `promptWeighting: "sdEmbeds"`, the AUTOMATIC1111 attention syntax, following what A1111's
 * `parse_prompt_attention` accepts:
 *
 * - `(text)` multiplies the weight of `text` by 1.1, `[text]` divides it by 1.1, nesting multiplies;
 * - `(text:1.3)` gives the group the weight 1.3 instead: a `:`, optional spaces, a number `[+-]?[\d.]+`, optional
 *   spaces and `)`; a `:` not followed by that is plain text (so `<lora:x:1>` and
 *   `(<embedding:civitai:7808@9208>:1.2)` need nothing special: only the last `:number)` is a weight);
 * - `\(`, `\)`, `\[`, `\]` and `\\` are literal characters; any other backslash is text;
 * - `BREAK` starts a new 75-token window and is not syntax here.
 *
 * A1111 itself forgives most mistakes (a stray `)` is text, an unclosed `(` weights everything after it by 1.1,
 * `(a:1.2.3)` crashes it), so each of those is a problem here. One scan over the prompt, no backtracking.
 */

type Bracket = '(' | '[';

interface Group {
  readonly bracket: Bracket;
  readonly position: number;
  /** Index in `groups` of the group this one is nested in. */
  readonly parent: number | undefined;
  /** What the group multiplies its text by; known once it closes. */
  multiplier: number;
  /** Already reported (unclosed, mismatched, bad weight): its effective weight means nothing, so is not judged. */
  reported: boolean;
  /** The product of its multiplier and those of all groups around it. */
  effectiveWeight: number;
  /** Has text of its own, outside the groups inside it: only text is given a weight, so only then is it judged. */
  holdsText: boolean;
}

/** `:1.3)` or `:1.3]`; the square form is never a weight in A1111 but gets its own message. */
interface ExplicitWeight {
  readonly numberPosition: number;
  readonly numberText: string;
  readonly closer: ')' | ']';
  readonly closerPosition: number;
}

const ROUND_MULTIPLIER = 1.1;
const SQUARE_MULTIPLIER = 1 / 1.1;
const ESCAPABLE = new Set(['(', ')', '[', ']', '\\']);
/** What Python's float() takes of the characters `[+-]?[\d.]+` that A1111's regex lets through. */
const PYTHON_FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)$/;

export function checkSdEmbedsSyntax(prompt: string): PromptSyntaxProblem[] {
  const problems: FoundProblem[] = [];
  const groups: Group[] = [];
  /** Indexes in `groups` of the groups still open, innermost last. */
  const open: number[] = [];
  const report = (position: number, describe: () => string): void => {
    problems.push({ position, describe });
  };
  const at = (position: number): string => describePosition(prompt, position);

  const settle = (group: Group, weight: ExplicitWeight | undefined): void => {
    if (weight === undefined) {
      group.multiplier = group.bracket === '(' ? ROUND_MULTIPLIER : SQUARE_MULTIPLIER;
      return;
    }
    if (group.bracket === '[') {
      group.reported = true;
      report(
        group.position,
        () =>
          `'[' ${at(group.position)} ends with the weight ':${weight.numberText}]': an explicit weight needs round brackets, ` +
            `as in '(text:${weight.numberText})'; square brackets only divide the weight by 1.1 ` +
            `(and A1111's prompt editing '[from:to:when]' is not applied by clipgate).`,
      );
      return;
    }
    if (!PYTHON_FLOAT.test(weight.numberText)) {
      group.reported = true;
      report(weight.numberPosition, () => `The weight '${weight.numberText}' ${at(weight.numberPosition)} is not a number: write it as a decimal such as 1.2.`);
      return;
    }
    const value = Number(weight.numberText);
    if (!isWeightInRange(value)) {
      group.reported = true;
      const hint = value < 0 ? 'weights cannot be negative; to weaken text use a weight between 0 and 1' : `use a weight from ${WEIGHT_RANGE_TEXT}`;
      report(weight.numberPosition, () => `The weight ${weight.numberText} ${at(weight.numberPosition)} is outside ${WEIGHT_RANGE_TEXT}: ${hint}.`);
      return;
    }
    group.multiplier = value;
  };

  const close = (closer: ')' | ']', closerPosition: number, weight: ExplicitWeight | undefined): void => {
    const opener: Bracket = closer === ')' ? '(' : '[';
    const innermost = open.at(-1);
    if (innermost === undefined) {
      report(
        closerPosition,
        () =>
          weight === undefined
            ? `'${closer}' ${at(closerPosition)} has no '${opener}' to close: remove it or escape it as '\\${closer}'.`
            : `The weight ':${weight.numberText}${closer}' ${at(closerPosition)} has no '(' to close: open the group with '(', as in '(text:${weight.numberText})'.`,
      );
      return;
    }
    const group = groups[innermost] as Group;
    if (group.bracket === opener) {
      open.pop();
      settle(group, weight);
      return;
    }
    // A forgotten closer inside a group that this closer does fit reads better as that than as a wrong bracket.
    const outer = open.at(-2);
    const outerGroup = outer === undefined ? undefined : groups[outer];
    if (outerGroup?.bracket === opener) {
      group.reported = true;
      report(
        group.position,
        () =>
          `'${group.bracket}' ${at(group.position)} is never closed before '${closer}' at character ${closerPosition + 1} closes the ` +
            `'${opener}' at character ${outerGroup.position + 1}: close it with '${closingOf(group.bracket)}' or escape it as '\\${group.bracket}'.`,
      );
      open.pop();
      open.pop();
      settle(outerGroup, weight);
      return;
    }
    group.reported = true;
    open.pop();
    report(
      closerPosition,
      () =>
        weight !== undefined
          ? `'${group.bracket}' at character ${group.position + 1} is closed by '${closer}' ${at(closerPosition)}: ` +
              `a weight needs round brackets on both sides, as in '(text:${weight.numberText})'.`
          : `'${closer}' ${at(closerPosition)} closes the '${group.bracket}' opened at character ${group.position + 1}: ` +
              `close it with '${closingOf(group.bracket)}' instead, or escape the bracket as '\\${closer}' if it is text.`,
    );
  };

  const noteText = (): void => {
    const innermost = open.at(-1);
    if (innermost !== undefined) (groups[innermost] as Group).holdsText = true;
  };

  let index = 0;
  while (index < prompt.length) {
    const character = prompt[index] as string;
    if (character === '\\') {
      noteText();
      index += ESCAPABLE.has(prompt[index + 1] ?? '') ? 2 : 1;
    } else if (character === '(' || character === '[') {
      groups.push({ bracket: character, position: index, parent: open.at(-1), multiplier: 1, reported: false, effectiveWeight: 1, holdsText: false });
      open.push(groups.length - 1);
      index += 1;
    } else if (character === ':') {
      const weight = readExplicitWeight(prompt, index);
      if (weight === undefined) {
        noteText();
        index += 1;
      } else {
        close(weight.closer, weight.closerPosition, weight);
        index = weight.closerPosition + 1;
      }
    } else if (character === ')' || character === ']') {
      close(character, index, undefined);
      index += 1;
    } else {
      if (!isSpace(character)) noteText();
      index += 1;
    }
  }

  for (const unclosed of open) {
    const group = groups[unclosed] as Group;
    group.reported = true;
    report(group.position, () => `'${group.bracket}' ${at(group.position)} is never closed: close it with '${closingOf(group.bracket)}' or escape it as '\\${group.bracket}'.`);
  }

  // Parents are opened before their children, so one pass in opening order sees each parent's weight first.
  for (const group of groups) {
    const parent = group.parent === undefined ? undefined : groups[group.parent];
    group.effectiveWeight = (parent?.effectiveWeight ?? 1) * group.multiplier;
    if (parent?.reported) group.reported = true;
    if (group.reported || !group.holdsText || isWeightInRange(group.effectiveWeight)) continue;
    // Reported once, at the outermost group whose own text is beyond the range; the groups inside it are not repeated.
    group.reported = true;
    report(
      group.position,
      () =>
        `The text in the group opened ${at(group.position)} gets the weight ${formatWeight(group.effectiveWeight)} once the weights of the ` +
          `groups around it are multiplied, outside ${WEIGHT_RANGE_TEXT}: lower the inner or the outer weights.`,
    );
  }

  return firstProblems(problems);
}

/** Matches `:\s*([+-]?[.\d]+)\s*[)\]]` at the colon, in one forward pass that stops before the next colon. */
function readExplicitWeight(prompt: string, colonPosition: number): ExplicitWeight | undefined {
  let cursor = skipSpaces(prompt, colonPosition + 1);
  const numberPosition = cursor;
  if (prompt[cursor] === '+' || prompt[cursor] === '-') cursor += 1;
  const digitsStart = cursor;
  while (cursor < prompt.length && isDigitOrDot(prompt[cursor] as string)) cursor += 1;
  if (cursor === digitsStart) return undefined;
  const numberText = prompt.slice(numberPosition, cursor);
  cursor = skipSpaces(prompt, cursor);
  const closer = prompt[cursor];
  if (closer !== ')' && closer !== ']') return undefined;
  return { numberPosition, numberText, closer, closerPosition: cursor };
}

function skipSpaces(prompt: string, from: number): number {
  let cursor = from;
  // Python's \s, which A1111's regex uses, is Unicode whitespace, as JavaScript's is.
  while (cursor < prompt.length && /\s/.test(prompt[cursor] as string)) cursor += 1;
  return cursor;
}

function isSpace(character: string): boolean {
  return character === ' ' || character === '\n' || character === '\t' || character === '\r';
}

function isDigitOrDot(character: string): boolean {
  return character === '.' || (character >= '0' && character <= '9');
}

function closingOf(bracket: Bracket): ')' | ']' {
  return bracket === '(' ? ')' : ']';
}
