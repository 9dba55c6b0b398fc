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
 * A syntax check for `promptWeighting: "compel"`, following the grammar of compel 2.5.1's
 * `compel/prompt_parser.py` (`build_parser_syntax`) and what its `PromptParser.parse_conjunction` returned for
 * the cases in the tests:
 *
 * - `word+`, `word++`, `word-`: each `+` multiplies by 1.1, each `-` by 0.9 (a sign is part of the word when a
 *   letter follows it: `a+b`, `well-known`); `(words)` and `"words"` take `+`/`-` signs or a number: `(words)1.3`;
 *   `(words)` alone is only grouping, weight 1.0 (not A1111's 1.1); `target.attend(1.3)` is the long form;
 *   nesting multiplies.
 * - `("a", "b").blend(0.7, 0.3[, no_normalize])` and `("a", "b").and(1, 0.5)` (or `.add`) must be the whole prompt.
 * - `.swap()` (cross-attention control, the only such operator compel 2.5.1 has) and `withLora()`/`useLora()`
 *   are compel features clipgate's workers do not apply, so they are refused.
 *
 * compel itself is lenient: whatever its grammar cannot read becomes literal text with weight 1 (`(a, b`,
 * `(cat)-1.5`, `(a + b)1.3`, `x(cat)1.3`, A1111's `(cat:1.3)`), so the client gets a picture of the wrong
 * prompt and no error. Those are the problems reported here. One forward scan, no regex over the whole prompt.
 */

type GroupKind = 'paren' | 'quote';

/** A piece of the prompt with a weight of its own: a group, or a word with `+`/`-` signs. */
interface WeightedSpan {
  readonly kind: GroupKind | 'word';
  readonly position: number;
  /** Index in `spans` of the group it is in. */
  readonly parent: number | undefined;
  /** Which part of a top-level `(…).and()` it is, when it is directly inside that group. */
  readonly part: number | undefined;
  /** For a group at the top level written right after text (`x(cat)1.3`): where that text starts. */
  readonly gluedAfter: number | undefined;
  /** The top-level group it is in (itself at the top level): where compel's grammar falls back to plain text. */
  readonly root: number;
  /** Inside a quoted part of the candidate: the outermost group within that part, the other place compel falls back. */
  readonly partRoot: number | undefined;
  factor: number;
  /** Carries a weight or an operator of its own. */
  weighted: boolean;
  glueReported: boolean;
  /** Already reported: its effective weight means nothing, so is not judged (nor are the spans inside it). */
  reported: boolean;
  effectiveWeight: number;
  /** Has text of its own, outside the spans inside it: only text is given a weight, so only then is it judged. */
  holdsText: boolean;
}

/** What follows a word or group: `+`/`-` signs, a number, or an operator such as `.attend(1.3)`. */
interface Suffix {
  readonly next: number;
  readonly weighted: boolean;
  readonly factor: number;
  readonly reported: boolean;
}

interface Operator {
  readonly name: string;
  readonly dotPosition: number;
  readonly openPosition: number;
  /** Whitespace before the dot: compel allows it for its operators, so only known names count then. */
  readonly spaced: boolean;
}

/** One comma-separated part inside a top-level group, in case the group turns out to be a blend or conjunction. */
interface TargetSegment {
  readonly start: number;
  firstItem: number | undefined;
  items: number;
  /** Holds something compel cannot take as a blend/conjunction part (a weighted word, `=`, …). */
  unusable: boolean;
}

/** The last thing scanned at the top level: text is what compel's catch-all reads up to the next space. */
interface TopLevelToken {
  readonly kind: 'text' | 'syntax';
  readonly start: number;
  end: number;
}

const PLUS_FACTOR = 1.1;
const MINUS_FACTOR = 0.9;
/** compel's `syntactic_symbols`: each may be escaped with a backslash to be text. */
const SYNTAX_CHARACTERS = new Set(['(', ')', '"', ',', '.', '+', '-', '=']);
/** Python's string.whitespace, which compel's words stop at. */
const WHITESPACE = new Set([' ', '\t', '\n', '\r', '\v', '\f']);
const OPERATORS_ON_WORDS = new Set(['attend', 'swap', 'blend', 'and', 'add']);
const CONJUNCTION_OPERATORS = new Set(['blend', 'and', 'add']);
const LORA_TRIGGERS = new Set(['withLora', 'useLora']);
/** pyparsing's `real | Combine(Optional('-') + Word(nums))`, which compel uses for blend and conjunction weights. */
const OPTION_NUMBER = /^(?:[+-]?(?:\d+\.\d*|\.\d+)|-?\d+)$/;
const WORD_CHARACTER = /[\p{L}\p{N}_]/u;

export function checkCompelSyntax(prompt: string): PromptSyntaxProblem[] {
  return new CompelSyntaxScan(prompt).run();
}

class CompelSyntaxScan {
  private readonly problems: FoundProblem[] = [];
  private readonly spans: WeightedSpan[] = [];
  /** Indexes in `spans` of the groups still open, innermost last. */
  private readonly open: number[] = [];
  /** Where in `open` the open quote is: compel's quotes do not nest, the next `"` always closes. */
  private openQuoteDepth: number | undefined;
  /** The group that starts the prompt: only it may be followed by `.blend()` or `.and()`. */
  private candidate: number | undefined;
  private readonly segments: TargetSegment[] = [];
  /** Symbols that break the group they stand in; a problem only where that group carries a weight (see finish). */
  private readonly loneSymbols: LoneSymbol[] = [];
  private isConjunction = false;
  private conjunctionWeights: number[] | undefined;
  private previous: TopLevelToken | undefined;
  private readonly firstContent: number;

  constructor(private readonly prompt: string) {
    this.firstContent = this.skipWhitespace(0);
  }

  run(): PromptSyntaxProblem[] {
    const { prompt } = this;
    let index = 0;
    while (index < prompt.length) {
      const character = prompt[index] as string;
      if (WHITESPACE.has(character)) index += 1;
      else if (character === '(') index = this.openGroup('paren', index);
      else if (character === '"') index = this.quote(index);
      else if (character === ')') index = this.closeParen(index);
      else if (character === ',') index = this.comma(index);
      else if (this.startsWord(index)) index = this.word(index);
      else index = this.loneSymbol(index);
    }
    this.finish();
    return firstProblems(this.problems);
  }

  private report(position: number, describe: () => string): void {
    this.problems.push({ position, describe });
  }

  private at(position: number): string {
    return describePosition(this.prompt, position);
  }

  private span(index: number): WeightedSpan {
    return this.spans[index] as WeightedSpan;
  }

  private openGroup(kind: GroupKind, position: number): number {
    const topLevel = this.open.length === 0;
    const glued = topLevel && this.previous?.kind === 'text' && this.previous.end === position;
    if (this.isDirectlyInCandidate()) this.noteTargetItem(position, false);
    const index = this.addSpan(kind, position, 1, glued ? this.previous?.start : undefined);
    if (topLevel && kind === 'paren' && position === this.firstContent) {
      this.candidate = index;
      this.segments.push({ start: position, firstItem: undefined, items: 0, unusable: false });
    }
    this.open.push(index);
    if (kind === 'quote') this.openQuoteDepth = this.open.length - 1;
    return position + 1;
  }

  /** A span inside the innermost open group. */
  private addSpan(kind: WeightedSpan['kind'], position: number, factor: number, gluedAfter: number | undefined): number {
    const index = this.spans.length;
    const parent = this.open.at(-1);
    const parentSpan = parent === undefined ? undefined : this.span(parent);
    const parentIsQuotedPart = parentSpan?.kind === 'quote' && parentSpan.parent !== undefined && parentSpan.parent === this.candidate;
    this.spans.push({
      kind,
      position,
      parent,
      part: this.isDirectlyInCandidate() ? this.segments.length - 1 : undefined,
      gluedAfter,
      root: parentSpan?.root ?? index,
      partRoot: parentIsQuotedPart ? index : parentSpan?.partRoot,
      factor,
      weighted: kind === 'word',
      glueReported: false,
      reported: false,
      effectiveWeight: 1,
      holdsText: kind === 'word',
    });
    return index;
  }

  private quote(position: number): number {
    if (this.openQuoteDepth === undefined) return this.openGroup('quote', position);
    // The quote ends here whatever is open inside it, as compel's QuotedString does.
    while (this.open.length - 1 > this.openQuoteDepth) {
      const unclosed = this.span(this.open.pop() as number);
      unclosed.reported = true;
      this.report(
        unclosed.position,
        () =>
          `'(' ${this.at(unclosed.position)} is not closed before the quoted text ends at character ${position + 1}: ` +
            `close it with ')' inside the quotes, or escape it as '\\('.`,
      );
    }
    this.openQuoteDepth = undefined;
    return this.afterGroup(this.open.pop() as number, position + 1);
  }

  private closeParen(position: number): number {
    const innermost = this.open.at(-1);
    if (innermost === undefined) {
      this.report(position, () => `')' ${this.at(position)} has no '(' to close: remove it or escape it as '\\)'.`);
      this.noteTopLevelText(position, position + 1);
      return position + 1;
    }
    const group = this.span(innermost);
    if (group.kind === 'quote') {
      this.report(
        position,
        () =>
          `')' ${this.at(position)} has no '(' to close inside the quoted text that starts at character ${group.position + 1}: ` +
            `remove it or escape it as '\\)'.`,
      );
      return position + 1;
    }
    this.open.pop();
    return this.afterGroup(innermost, position + 1);
  }

  private comma(position: number): number {
    this.noteText();
    if (this.isDirectlyInCandidate()) this.segments.push({ start: position, firstItem: undefined, items: 0, unusable: false });
    // compel puts a space after every comma before parsing, so a comma never glues text to a group.
    if (this.open.length === 0) this.previous = undefined;
    return position + 1;
  }

  /** `.`, `=`, or `+`/`-` that belong to no word: text at the top level, but they break a group compel parses. */
  private loneSymbol(position: number): number {
    const { prompt } = this;
    const symbol = prompt[position] as string;
    let end = position + 1;
    if (symbol === '+' || symbol === '-') while (prompt[end] === symbol) end += 1;
    if (this.isDirectlyInCandidate()) this.noteTargetItem(position, true);
    this.noteText();
    const innermost = this.open.at(-1);
    if (innermost === undefined) {
      this.noteTopLevelText(position, end);
    } else if (symbol !== '.') {
      const where = this.span(innermost).kind === 'quote' ? 'quoted text' : 'parentheses';
      this.loneSymbols.push({
        innermost,
        position,
        describe: () =>
          `'${prompt.slice(position, end)}' ${this.at(position)} stands alone inside ${where}, where compel cannot read it ` +
          `and so takes the whole group as plain text, its weight lost: escape it as '\\${symbol}', remove it, or join it to a word.`,
      });
    }
    return end;
  }

  private startsWord(position: number): boolean {
    const character = this.prompt[position] as string;
    if (!SYNTAX_CHARACTERS.has(character)) return true;
    return (character === '+' || character === '-') && this.continuesWord(position + 1);
  }

  /** compel keeps a `+`/`-` in a word when a character that is neither space nor syntax follows it. */
  private continuesWord(position: number): boolean {
    const next = this.prompt[position];
    return next !== undefined && !WHITESPACE.has(next) && !SYNTAX_CHARACTERS.has(next);
  }

  private word(start: number): number {
    const { prompt } = this;
    let end = start;
    while (end < prompt.length) {
      const character = prompt[end] as string;
      if (character === '\\' && SYNTAX_CHARACTERS.has(prompt[end + 1] ?? '')) {
        end += 2;
        continue;
      }
      if (character === ':') this.checkA1111Weight(end);
      if (WHITESPACE.has(character) || SYNTAX_CHARACTERS.has(character)) {
        if ((character === '+' || character === '-') && this.continuesWord(end + 1)) {
          end += 1;
          continue;
        }
        break;
      }
      end += 1;
    }

    const inCandidate = this.isDirectlyInCandidate();
    if (inCandidate) this.noteTargetItem(start, false);
    const text = prompt.slice(start, end);
    if (LORA_TRIGGERS.has(text) && prompt[this.skipWhitespace(end)] === '(') {
      this.report(
        start,
        () =>
          `'${text}(…)' ${this.at(start)} is compel's LoRA syntax, which clipgate's workers do not apply: ` +
            `remove it and use lora[] for LoRAs.`,
      );
      const next = this.skipParenthesized(this.skipWhitespace(end));
      if (this.open.length === 0) this.previous = { kind: 'syntax', start, end: next };
      return next;
    }

    const suffix = this.readSuffix(end, undefined);
    if (suffix.weighted) {
      if (inCandidate) this.noteTargetItem(start, true, false);
      const index = this.addSpan('word', start, suffix.factor, undefined);
      if (suffix.reported) this.span(index).reported = true;
      this.noteWeightedInsideGluedGroup();
      if (this.open.length === 0) this.previous = { kind: 'syntax', start, end: suffix.next };
    } else {
      this.noteText();
      if (this.open.length === 0) this.noteTopLevelText(start, end);
    }
    return suffix.next;
  }

  private afterGroup(index: number, next: number): number {
    const group = this.span(index);
    const suffix = this.readSuffix(next, index);
    group.factor = suffix.factor;
    group.weighted = suffix.weighted;
    if (suffix.reported) group.reported = true;
    if (suffix.weighted) {
      if (group.parent !== undefined && group.parent === this.candidate && this.open.at(-1) === this.candidate) {
        this.noteTargetItem(group.position, true, false);
      }
      if (group.gluedAfter !== undefined) this.reportGlued(group);
      else this.noteWeightedInsideGluedGroup();
    }
    if (this.open.length === 0) this.previous = { kind: 'syntax', start: group.position, end: suffix.next };
    return suffix.next;
  }

  /** `group` is the closed group the suffix follows, undefined after a word; only groups take numbers and unknown operators. */
  private readSuffix(position: number, group: number | undefined): Suffix {
    const isGroup = group !== undefined;
    const { prompt } = this;
    const character = prompt[position];
    if (character === '+' || character === '-') return this.signs(position);
    if (isGroup && (isDigit(character) || (character === '.' && isDigit(prompt[position + 1])))) return this.numberWeight(position);
    const operator = this.readOperator(position);
    if (operator === undefined) return { next: position, weighted: false, factor: 1, reported: false };
    if (!OPERATORS_ON_WORDS.has(operator.name) && (!isGroup || operator.spaced)) return { next: position, weighted: false, factor: 1, reported: false };
    return this.operator(operator, group);
  }

  private signs(position: number): Suffix {
    const { prompt } = this;
    const sign = prompt[position] as '+' | '-';
    let end = position;
    while (prompt[end] === sign) end += 1;
    const count = end - position;
    const factor = (sign === '+' ? PLUS_FACTOR : MINUS_FACTOR) ** count;
    // `(cat)-1.5`, `(cat)+1`, `cat+-`: compel applies the signs and takes what follows as text. Signs before a
    // word (`(cat)++3d`, `cat--1girl`) are read as meant: weight, then the word.
    let tokenEnd = end;
    while (tokenEnd < prompt.length && isSignNumberCharacter(prompt[tokenEnd] as string)) tokenEnd += 1;
    const rest = prompt.slice(end, tokenEnd);
    const beforeWord = WORD_CHARACTER.test(prompt[tokenEnd] ?? '');
    // Dots alone are the end of a sentence.
    if (/^\.*$/.test(rest) || beforeWord) return { next: end, weighted: true, factor, reported: false };
    const negative = sign === '-' && /^[\d.]/.test(rest) ? ' A weight cannot be negative.' : '';
    this.report(
      position,
      () =>
        `'${prompt.slice(position, tokenEnd)}' ${this.at(position)} is not a compel weight: compel applies '${sign.repeat(count)}' ` +
          `(×${formatWeight(factor)}) and takes '${rest}' as text.${negative} Write only '+' or only '-' signs, ` +
          `or only a number from ${WEIGHT_RANGE_TEXT} such as 1.3.`,
    );
    return { next: tokenEnd, weighted: true, factor, reported: true };
  }

  private numberWeight(position: number): Suffix {
    const { prompt } = this;
    const end = readUnsignedNumber(prompt, position);
    // compel stops the number where pyparsing's `real` stops: `1.2.3` is 1.2 and the text ".3", `1e3` is 1 and
    // "e3". A word after the number (`(cat)1.3cats`) is read as meant, the weight then the word.
    const misread = misreadNumberTail(prompt, end);
    if (misread > end) {
      this.report(
        position,
        () =>
          `The weight '${prompt.slice(position, misread)}' ${this.at(position)} is not a number compel can read: it would take ` +
            `'${prompt.slice(position, end)}' as the weight and '${prompt.slice(end, misread)}' as text. Write a plain decimal such as 1.3.`,
      );
      return { next: misread, weighted: true, factor: 1, reported: true };
    }
    return this.explicitWeight(position, end, Number(prompt.slice(position, end)));
  }

  private explicitWeight(position: number, next: number, weight: number): Suffix {
    if (isWeightInRange(weight)) return { next, weighted: true, factor: weight, reported: false };
    this.report(position, () => `The weight ${formatWeight(weight)} ${this.at(position)} is outside ${WEIGHT_RANGE_TEXT}: use a weight from ${WEIGHT_RANGE_TEXT}.`);
    return { next, weighted: true, factor: weight, reported: true };
  }

  /** `.name(` after a word or group, with the whitespace compel allows around the dot and before the parenthesis. */
  private readOperator(position: number): Operator | undefined {
    const { prompt } = this;
    const dotPosition = this.skipWhitespace(position);
    if (prompt[dotPosition] !== '.') return undefined;
    let nameEnd = dotPosition + 1;
    while (nameEnd < prompt.length && /[A-Za-z_]/.test(prompt[nameEnd] as string)) nameEnd += 1;
    if (nameEnd === dotPosition + 1) return undefined;
    const openPosition = this.skipWhitespace(nameEnd);
    if (prompt[openPosition] !== '(') return undefined;
    return { name: prompt.slice(dotPosition + 1, nameEnd), dotPosition, openPosition, spaced: dotPosition !== position };
  }

  private operator(operator: Operator, group: number | undefined): Suffix {
    const { name, dotPosition, openPosition } = operator;
    if (name === 'attend') return this.attend(operator);
    if (CONJUNCTION_OPERATORS.has(name) && group !== undefined && group === this.candidate) return this.conjunction(operator);

    let describe: () => string;
    if (name === 'swap') {
      describe = () =>
        `'.swap(…)' ${this.at(dotPosition)} is compel's cross-attention control, which clipgate's workers do not apply: ` +
        `remove it and write the prompt you want.`;
    } else if (CONJUNCTION_OPERATORS.has(name)) {
      describe = () =>
        `'.${name}(…)' ${this.at(dotPosition)} only works on the whole prompt: write the prompt as ` +
        `("first part", "second part").${name}(…) with nothing before or after it.`;
    } else {
      describe = () =>
        `compel has no '.${name}()' operator ${this.at(dotPosition)}; it would take it as text: ` +
        `use '(text)1.3', '.attend(1.3)', '.blend()' or '.and()', or escape the dot as '\\.'.`;
    }
    this.report(dotPosition, describe);
    return { next: this.skipParenthesized(openPosition), weighted: true, factor: 1, reported: true };
  }

  /** `.attend(+)`, `.attend(--)` or `.attend(1.3)`; compel takes anything else as text. */
  private attend(operator: Operator): Suffix {
    const { prompt } = this;
    const argument = this.skipWhitespace(operator.openPosition + 1);
    const character = prompt[argument];
    let end = argument;
    let factor: number | undefined;
    if (character === '+' || character === '-') {
      while (prompt[end] === character) end += 1;
      factor = (character === '+' ? PLUS_FACTOR : MINUS_FACTOR) ** (end - argument);
    } else if (isDigit(character) || (character === '.' && isDigit(prompt[argument + 1]))) {
      end = readUnsignedNumber(prompt, argument);
      factor = Number(prompt.slice(argument, end));
    }
    const close = this.skipWhitespace(end);
    if (factor === undefined || prompt[close] !== ')') {
      this.report(
        operator.dotPosition,
        () =>
          `'.attend(…)' ${this.at(operator.dotPosition)} needs one weight, which compel reads only as '+' or '-' signs ` +
            `or a plain number from ${WEIGHT_RANGE_TEXT}, such as '.attend(1.3)'.`,
      );
      return { next: this.skipParenthesized(operator.openPosition), weighted: true, factor: 1, reported: true };
    }
    if (character === '+' || character === '-') return { next: close + 1, weighted: true, factor, reported: false };
    return this.explicitWeight(argument, close + 1, factor);
  }

  /** The candidate group followed by `.blend(…)`, `.and(…)` or `.add(…)`. */
  private conjunction(operator: Operator): Suffix {
    const { prompt } = this;
    const { name, dotPosition, openPosition } = operator;
    const isBlend = name === 'blend';
    const close = prompt.indexOf(')', openPosition + 1);
    if (close < 0) {
      this.report(openPosition, () => `'(' ${this.at(openPosition)} of '.${name}(' is never closed: close the weights with ')'.`);
      return { next: prompt.length, weighted: true, factor: 1, reported: true };
    }
    this.isConjunction = true;

    this.segments.forEach((segment, index) => {
      if (segment.items === 1 && !segment.unusable) return;
      const position = segment.firstItem ?? segment.start;
      this.report(
        position,
        () =>
          `Part ${index + 1} of the '.${name}()' ${this.at(position)} is not one quoted text, one group or one word, ` +
            `so compel would not ${isBlend ? 'blend' : 'join'} the parts: put each part in quotes, as in ("a cat", "a dog").${name}(…).`,
      );
    });

    const options = splitOptions(prompt, openPosition + 1, close);
    let normalized = true;
    if (isBlend && options.at(-1)?.text === 'no_normalize') {
      normalized = false;
      options.pop();
    }
    const weights: number[] = [];
    let allWeightsValid = true;
    for (const option of options) {
      if (!OPTION_NUMBER.test(option.text)) {
        allWeightsValid = false;
        this.report(
          option.position,
          () =>
            `'${option.text}' ${this.at(option.position)} is not a weight compel can read: ` +
              (isBlend ? `blend weights are numbers from 0 up, optionally followed by no_normalize.` : `conjunction weights are numbers from ${WEIGHT_RANGE_TEXT}.`),
        );
        continue;
      }
      const weight = Number(option.text);
      weights.push(weight);
      if (isBlend && weight < 0) {
        allWeightsValid = false;
        this.report(option.position, () => `The blend weight ${option.text} ${this.at(option.position)} is negative: blend weights are 0 or more.`);
      } else if (!isBlend && !isWeightInRange(weight)) {
        allWeightsValid = false;
        this.report(option.position, () => `The weight ${option.text} ${this.at(option.position)} is outside ${WEIGHT_RANGE_TEXT}: use a weight from ${WEIGHT_RANGE_TEXT}.`);
      }
    }

    // An empty list is compel's "all weights 1", for .blend() as for .and().
    const parts = this.segments.length;
    if (options.length > 0 && options.length !== parts) {
      allWeightsValid = false;
      this.report(
        dotPosition,
        () =>
          `'.${name}(…)' ${this.at(dotPosition)} has ${options.length} weight${options.length === 1 ? '' : 's'} for ${parts} part${parts === 1 ? '' : 's'}: ` +
            `give one weight per part, or none for equal weights.`,
      );
    } else if (isBlend && normalized && allWeightsValid && weights.length > 0 && weights.every((weight) => weight === 0)) {
      this.report(dotPosition, () => `The weights of '.blend(…)' ${this.at(dotPosition)} are all 0, and compel divides by their sum: give at least one part a weight above 0.`);
    }
    if (!isBlend && allWeightsValid && weights.length === parts) this.conjunctionWeights = weights;

    const trailing = this.skipWhitespace(close + 1);
    if (trailing < prompt.length) {
      this.report(
        trailing,
        () =>
          isBlend
            ? `compel cannot read text after '.blend(…)' (it fails with a parse error) ${this.at(trailing)}: move it into one of the blended parts.`
            : `compel ignores everything after '.${name}(…)', so the text ${this.at(trailing)} would be lost: move it into one of the parts.`,
      );
    }
    return { next: close + 1, weighted: true, factor: 1, reported: false };
  }

  /** `(cat:1.3)`: A1111's weight, which compel takes as the text "cat:1 . 3" at weight 1. */
  private checkA1111Weight(colon: number): void {
    const innermost = this.open.at(-1);
    if (innermost === undefined || this.span(innermost).kind !== 'paren') return;
    const { prompt } = this;
    let cursor = skipUnicodeSpaces(prompt, colon + 1);
    const numberStart = cursor;
    if (prompt[cursor] === '+' || prompt[cursor] === '-') cursor += 1;
    const digitsStart = cursor;
    while (cursor < prompt.length && (isDigit(prompt[cursor]) || prompt[cursor] === '.')) cursor += 1;
    if (cursor === digitsStart) return;
    const number = prompt.slice(numberStart, cursor);
    if (prompt[skipUnicodeSpaces(prompt, cursor)] !== ')') return;
    this.report(
      colon,
      () =>
        `':${number})' ${this.at(colon)} is A1111 (sdEmbeds) weight syntax, which compel takes as plain text: ` +
          `write '(text)${number}' for compel, or send promptWeighting "sdEmbeds".`,
    );
  }

  private reportGlued(group: WeightedSpan): void {
    if (group.glueReported) return;
    group.glueReported = true;
    group.reported = true;
    const text = this.prompt.slice(group.gluedAfter ?? group.position, group.position);
    const opener = group.kind === 'quote' ? '"' : '(';
    this.report(
      group.position,
      () =>
        `'${opener}' ${this.at(group.position)} follows '${text}' with no space, so compel reads them together as plain text ` +
          `and ignores the weight: put a space before '${opener}'.`,
    );
  }

  /** A weight inside a group glued to text (`x((cat)1.3)`) is lost with it; reported once, at that group. */
  private noteWeightedInsideGluedGroup(): void {
    const outermost = this.open[0];
    if (outermost === undefined) return;
    const group = this.span(outermost);
    if (group.gluedAfter !== undefined) this.reportGlued(group);
  }

  private noteText(): void {
    const innermost = this.open.at(-1);
    if (innermost !== undefined) this.span(innermost).holdsText = true;
  }

  private noteTopLevelText(start: number, end: number): void {
    if (this.previous?.kind === 'text' && this.previous.end === start) this.previous.end = end;
    else this.previous = { kind: 'text', start, end };
  }

  private isDirectlyInCandidate(): boolean {
    return this.candidate !== undefined && this.open.length === 1 && this.open[0] === this.candidate;
  }

  private noteTargetItem(position: number, unusable: boolean, counts = true): void {
    const segment = this.segments.at(-1);
    if (segment === undefined) return;
    if (counts) {
      segment.items += 1;
      segment.firstItem ??= position;
    }
    if (unusable) segment.unusable = true;
  }

  private finish(): void {
    for (const index of this.open) {
      const group = this.span(index);
      group.reported = true;
      this.report(
        group.position,
        () =>
          group.kind === 'quote'
            ? `'"' ${this.at(group.position)} is never closed: close the quoted text with '"' or escape the quote as '\\"'.`
            : `'(' ${this.at(group.position)} is never closed: close it with ')' or escape it as '\\('.`,
      );
    }
    this.reportLoneSymbols();

    // Parents come before their children in `spans`, so one pass sees each parent's weight first.
    for (const span of this.spans) {
      const parent = span.parent === undefined ? undefined : this.span(span.parent);
      const partWeight = span.part !== undefined && this.conjunctionWeights ? (this.conjunctionWeights[span.part] ?? 1) : 1;
      span.effectiveWeight = (parent?.effectiveWeight ?? 1) * partWeight * span.factor;
      if (parent?.reported) span.reported = true;
      if (span.reported || !span.holdsText || isWeightInRange(span.effectiveWeight)) continue;
      // Reported once, at the outermost span whose own text is beyond the range; the spans inside it are not repeated.
      span.reported = true;
      this.report(
        span.position,
        () =>
          `The text ${this.at(span.position)} gets the weight ${formatWeight(span.effectiveWeight)} once the weights around it are multiplied, ` +
            `outside ${WEIGHT_RANGE_TEXT}: lower the weights (each '+' multiplies by 1.1).`,
      );
    }
  }

  /**
   * A lone `+`, `-` or `=` makes compel fail on the group it stands in and on every group around it, up to where
   * its grammar falls back to plain text: the top level, or a quoted part of a blend or conjunction. That costs
   * nothing unless something there is weighted (`(black - white)` reads the same either way), so only then is it
   * a problem.
   */
  private reportLoneSymbols(): void {
    if (this.loneSymbols.length === 0) return;
    const weightedWithin = this.spans.map((span) => span.weighted);
    for (let index = this.spans.length - 1; index >= 0; index -= 1) {
      const parent = this.span(index).parent;
      if (weightedWithin[index] && parent !== undefined) weightedWithin[parent] = true;
    }
    for (const symbol of this.loneSymbols) {
      const span = this.span(symbol.innermost);
      let unit = span.root;
      if (this.isConjunction && span.root === this.candidate) {
        // Directly in the candidate it already spoils a part, which is reported; directly in a quoted part it is forgiven.
        if (symbol.innermost === this.candidate) continue;
        if (span.kind === 'quote' && span.parent === this.candidate) continue;
        unit = span.partRoot ?? span.root;
      }
      if (weightedWithin[unit]) this.report(symbol.position, symbol.describe);
    }
  }

  private skipWhitespace(from: number): number {
    let cursor = from;
    while (cursor < this.prompt.length && WHITESPACE.has(this.prompt[cursor] as string)) cursor += 1;
    return cursor;
  }

  /** Past the `)` that matches the `(` at `openPosition`; when there is none, the `(` itself, to be scanned as a group. */
  private skipParenthesized(openPosition: number): number {
    const { prompt } = this;
    let depth = 0;
    for (let cursor = openPosition; cursor < prompt.length; cursor += 1) {
      const character = prompt[cursor];
      if (character === '\\') cursor += 1;
      else if (character === '(') depth += 1;
      else if (character === ')' && --depth === 0) return cursor + 1;
    }
    return openPosition;
  }
}

interface LoneSymbol {
  readonly innermost: number;
  readonly position: number;
  readonly describe: () => string;
}

interface Option {
  readonly text: string;
  readonly position: number;
}

/** The comma-separated options between `from` and `to`; none for `()` or `( )`. */
function splitOptions(prompt: string, from: number, to: number): Option[] {
  const inside = prompt.slice(from, to);
  if (inside.trim() === '') return [];
  const options: Option[] = [];
  let start = 0;
  for (const piece of inside.split(',')) {
    const leading = piece.length - piece.trimStart().length;
    options.push({ text: piece.trim(), position: from + start + (piece.trim() === '' ? 0 : leading) });
    start += piece.length + 1;
  }
  return options;
}

/** pyparsing's `real` (`\d+\.\d*` or `\.\d+`) or, failing that, an integer; the caller has seen a digit or `.digit`. */
function readUnsignedNumber(prompt: string, from: number): number {
  let cursor = from;
  while (isDigit(prompt[cursor])) cursor += 1;
  if (prompt[cursor] === '.' && (cursor > from || isDigit(prompt[cursor + 1]))) {
    cursor += 1;
    while (isDigit(prompt[cursor])) cursor += 1;
  }
  return cursor;
}

/** Past what follows a number to make it look like another one (`.3` of `1.2.3`, `e3` of `1e3`); `from` if nothing does. */
function misreadNumberTail(prompt: string, from: number): number {
  let cursor = from;
  if (prompt[cursor] === '.' && isDigit(prompt[cursor + 1])) {
    while (prompt[cursor] === '.' || isDigit(prompt[cursor])) cursor += 1;
    return cursor;
  }
  if (prompt[cursor] === 'e' || prompt[cursor] === 'E') {
    cursor += 1;
    if (prompt[cursor] === '+' || prompt[cursor] === '-') cursor += 1;
    if (!isDigit(prompt[cursor])) return from;
    while (isDigit(prompt[cursor])) cursor += 1;
    return cursor;
  }
  return from;
}

function skipUnicodeSpaces(prompt: string, from: number): number {
  let cursor = from;
  while (cursor < prompt.length && /\s/.test(prompt[cursor] as string)) cursor += 1;
  return cursor;
}

function isDigit(character: string | undefined): boolean {
  return character !== undefined && character >= '0' && character <= '9';
}

function isSignNumberCharacter(character: string): boolean {
  return character === '+' || character === '-' || character === '.' || isDigit(character);
}
