import { describe, expect, it } from 'vitest';
import { checkSdEmbedsSyntax } from '../../../../src/tasks/image-inference/prompt-syntax/sd-embeds-syntax.js';
import {
  describePosition,
  excerptAround,
  MAX_PROMPT_SYNTAX_PROBLEMS,
  PROMPT_WEIGHT_RANGE,
} from '../../../../src/tasks/image-inference/prompt-syntax/prompt-syntax-problem.js';

/**
 * The A1111 (`promptWeighting: "sdEmbeds"`) checker against the rules of A1111's `parse_prompt_attention`.
 * Every problem's position is asserted exactly, and every message must name the place a person counts
 * (1-based) so a client can find it.
 */

function positionsOf(prompt: string): number[] {
  const problems = checkSdEmbedsSyntax(prompt);
  for (const problem of problems) expect(problem.message).toContain(`at character ${problem.position + 1} (`);
  return problems.map((problem) => problem.position);
}

function onlyMessage(prompt: string): string {
  const problems = checkSdEmbedsSyntax(prompt);
  expect(problems).toHaveLength(1);
  return (problems[0] as { message: string }).message;
}

describe('checkSdEmbedsSyntax: prompts with nothing to report', () => {
  it.each([
    '',
    'a photo of a cat, best quality',
    'a cat. a dog, a bird; 🐱🐶 emoji and é accents',
    '<embedding:civitai:7808@9208> a cat <lora:x:1> <lora:style:0.8>',
    'a cat BREAK a dog BREAK',
    '(cat) [dog] ((bird)) [[fish]] ([mixed])',
    '(cat:1.3)',
    '(cat: 1.3 )',
    '(cat:+1.3)',
    '(cat:1.)',
    '(cat:.5)',
    '(a cat, a dog:0.8), (masterpiece:1.2)',
    '(<embedding:civitai:7808@9208>:1.2)',
    '(a:b:1.2)',
    '(a:1.2 b)',
    'time 12:30, ratio 16:9',
    '\\(cat\\) \\[dog\\] \\\\ a\\b',
    '\\\\(cat)',
  ])('%j', (prompt) => {
    expect(checkSdEmbedsSyntax(prompt)).toEqual([]);
  });

  it('takes weights at the ends of the allowed range', () => {
    expect(checkSdEmbedsSyntax(`(cat:${PROMPT_WEIGHT_RANGE.min})`)).toEqual([]);
    expect(checkSdEmbedsSyntax(`(cat:${PROMPT_WEIGHT_RANGE.max})`)).toEqual([]);
    // Nested to exactly 4, and 1.1^14 = 3.80: both in range.
    expect(checkSdEmbedsSyntax('((x:2):2)')).toEqual([]);
    expect(checkSdEmbedsSyntax(`${'('.repeat(14)}x${')'.repeat(14)}`)).toEqual([]);
  });

  it('judges only groups with text of their own: fifteen empty groups (1.1^15 = 4.18) around (x:0.5) give x 2.09', () => {
    expect(checkSdEmbedsSyntax(`${'('.repeat(15)}(x:0.5)${')'.repeat(15)}`)).toEqual([]);
  });
});

describe('checkSdEmbedsSyntax: brackets', () => {
  it('reports a closer with nothing to close, at the closer', () => {
    expect(positionsOf('a cat)')).toEqual([5]);
    expect(positionsOf('a cat]')).toEqual([5]);
    expect(positionsOf('(a) b)')).toEqual([5]);
  });

  it('reports an opener never closed, at the opener', () => {
    expect(positionsOf('(a cat')).toEqual([0]);
    expect(positionsOf('a [cat')).toEqual([2]);
    expect(positionsOf('(a (b) c')).toEqual([0]);
  });

  it('reports a round group closed by a square bracket and the other way round, at the closer', () => {
    expect(positionsOf('(a cat]')).toEqual([6]);
    expect(positionsOf('[a cat)')).toEqual([6]);
  });

  it('reports a bracket forgotten inside a group closed correctly, at the forgotten opener', () => {
    expect(positionsOf('(a [cat)')).toEqual([3]);
    expect(positionsOf('[(a cat]')).toEqual([1]);
  });

  it('treats escaped brackets and backslashes as text', () => {
    expect(checkSdEmbedsSyntax('\\( a \\] b \\)')).toEqual([]);
    expect(positionsOf('\\\\)')).toEqual([2]);
  });

  it('says what is wrong, where, and what to do instead', () => {
    expect(onlyMessage('a (cat')).toBe(`'(' at character 3 ("a (cat") is never closed: close it with ')' or escape it as '\\('.`);
    expect(onlyMessage('a cat)')).toBe(`')' at character 6 ("a cat)") has no '(' to close: remove it or escape it as '\\)'.`);
  });
});

describe('checkSdEmbedsSyntax: explicit weights', () => {
  it('reports a weight that is not a number, at the number', () => {
    expect(positionsOf('(cat:1.2.3)')).toEqual([5]);
    expect(positionsOf('(cat: .)')).toEqual([6]);
    expect(onlyMessage('(cat:1.2.3)')).toContain("'1.2.3'");
  });

  it('reports a weight outside the range, negative ones too, at the number', () => {
    expect(positionsOf('(cat:5)')).toEqual([5]);
    expect(positionsOf('(cat:4.01)')).toEqual([5]);
    expect(positionsOf('a (cat:-1)')).toEqual([7]);
    expect(onlyMessage('(cat:-1)')).toContain('negative');
  });

  it('reports once per group an effective weight beyond the range, at the group that crosses it', () => {
    expect(positionsOf('((x:3):2)')).toEqual([1]);
    expect(positionsOf('(((x:2):2):2)')).toEqual([2]);
    // 1.1^15 = 4.18
    expect(positionsOf(`${'('.repeat(15)}x${')'.repeat(15)}`)).toEqual([14]);
    expect(onlyMessage('((x:3):2)')).toContain('the weight 6');
  });

  it('does not repeat an out-of-range weight as an effective weight inside it', () => {
    expect(positionsOf('((x:2):5)')).toEqual([7]);
  });

  it('takes only a colon, a number and the closing bracket as a weight; any other colon is text', () => {
    expect(checkSdEmbedsSyntax('(cat:dog)')).toEqual([]);
    expect(checkSdEmbedsSyntax('(cat:1.2 dog)')).toEqual([]);
    expect(positionsOf('(cat:1.2 dog:9)')).toEqual([13]);
    // As in A1111: "16:9)" is the weight 9, and "(smile :)" is a group closed after the colon.
    expect(positionsOf('(ratio 16:9)')).toEqual([10]);
    expect(positionsOf('(smile :) happy)')).toEqual([15]);
  });

  it('reports [text:1.2]: an explicit weight needs round brackets', () => {
    expect(positionsOf('a [cat:1.2]')).toEqual([2]);
    expect(onlyMessage('[cat:1.2]')).toContain('an explicit weight needs round brackets');
    expect(checkSdEmbedsSyntax('a (cat:1.2)')).toEqual([]);
  });

  it('reports (text:1.2] and [text:1.2), at the closer', () => {
    expect(positionsOf('(cat:1.2]')).toEqual([8]);
    expect(positionsOf('[cat:1.2)')).toEqual([8]);
    expect(onlyMessage('(cat:1.2]')).toContain("'(text:1.2)'");
  });

  it('reports a weight with no group to close, at its closer', () => {
    expect(positionsOf('cat:1.2)')).toEqual([7]);
    expect(positionsOf('(a:1.2):1.3)')).toEqual([11]);
  });
});

describe('checkSdEmbedsSyntax: the list of problems', () => {
  it('is in order of position, whatever order the problems are found in', () => {
    // The effective weight is judged after the scan, the stray ')' during it.
    expect(positionsOf('((x:3):2) a)')).toEqual([1, 11]);
    expect(positionsOf('a) (b:9) [c')).toEqual([1, 6, 9]);
  });

  it(`holds at most ${MAX_PROMPT_SYNTAX_PROBLEMS} problems, the first ones`, () => {
    expect(MAX_PROMPT_SYNTAX_PROBLEMS).toBe(10);
    expect(positionsOf(')'.repeat(25))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(positionsOf('('.repeat(3000))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

describe('excerptAround and describePosition', () => {
  it('quote a short prompt whole', () => {
    expect(excerptAround('a (cat', 2)).toBe('"a (cat"');
    expect(describePosition('a (cat', 2)).toBe('at character 3 ("a (cat")');
  });

  it('cut a long prompt to 30 characters around the position, marking the cuts', () => {
    const prompt = `${'x'.repeat(50)}(cat:1.2${'y'.repeat(50)}`;
    const excerpt = excerptAround(prompt, 50);
    expect(excerpt).toBe(`"…${'x'.repeat(12)}(cat:1.2${'y'.repeat(10)}…"`);
    expect(excerpt.length - 4).toBe(30);
  });

  it('never cut an emoji in half, and show line breaks as spaces', () => {
    const prompt = `${'🐱'.repeat(30)}(`;
    for (const position of [0, 13, 30, 60]) {
      expect(excerptAround(prompt, position)).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
    }
    expect(excerptAround('a\ncat', 0)).toBe('"a cat"');
  });
});

describe('checkSdEmbedsSyntax: speed', () => {
  it('checks a 3,000-character prompt in well under a millisecond, and a pathological one quickly', () => {
    const unit = 'a photo of (a cat:1.2), [blurry], <embedding:civitai:7808@9208>, ((best quality)) BREAK ';
    const prompt = unit.repeat(Math.ceil(3000 / unit.length)).slice(0, 3000);
    expect(checkSdEmbedsSyntax(prompt)).toEqual([]);
    for (let warm = 0; warm < 50; warm += 1) checkSdEmbedsSyntax(prompt);
    const runs = 200;
    const start = performance.now();
    for (let run = 0; run < runs; run += 1) checkSdEmbedsSyntax(prompt);
    expect((performance.now() - start) / runs).toBeLessThan(1);

    // No backtracking: colons and numbers that never become a weight are scanned once.
    const pathological = ':1.1 '.repeat(600);
    const pathologicalStart = performance.now();
    for (let run = 0; run < 20; run += 1) checkSdEmbedsSyntax(pathological);
    expect((performance.now() - pathologicalStart) / 20).toBeLessThan(5);
  });
});
