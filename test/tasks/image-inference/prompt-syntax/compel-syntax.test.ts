import { describe, expect, it } from 'vitest';
import { checkCompelSyntax } from '../../../../src/tasks/image-inference/prompt-syntax/compel-syntax.js';
import { MAX_PROMPT_SYNTAX_PROBLEMS, PROMPT_WEIGHT_RANGE } from '../../../../src/tasks/image-inference/prompt-syntax/prompt-syntax-problem.js';

/**
 * The compel (`promptWeighting: "compel"`) checker. compel never fails on what it cannot read: it takes it as
 * plain text, so these cases pin both halves, what compel reads as meant (no problem) and what it silently
 * misreads (a problem, at an exact position).
 *
 * The `compel:` notes are what `PromptParser().parse_conjunction(prompt)` of compel 2.5.1 (pyparsing 3.3.3)
 * returned, fragments as 'text'@weight; they were run by hand, the tests do not call Python.
 */

function positionsOf(prompt: string): number[] {
  const problems = checkCompelSyntax(prompt);
  for (const problem of problems) expect(problem.message).toContain(`at character ${problem.position + 1} (`);
  return problems.map((problem) => problem.position);
}

function onlyMessage(prompt: string): string {
  const problems = checkCompelSyntax(prompt);
  expect(problems).toHaveLength(1);
  return (problems[0] as { message: string }).message;
}

describe('checkCompelSyntax: prompts compel reads as meant', () => {
  it.each([
    ['', 'empty'],
    ['a photo of a cat, best quality', "'a photo of a cat, best quality'@1.0"],
    ['a cat. a dog, 🐱 emoji, é', 'text only'],
    ['<embedding:civitai:7808@9208> a cat BREAK a dog', 'text only: compel has no BREAK'],
    ['a (cat)1.3', "'a'@1.0, 'cat'@1.3"],
    // Parentheses alone only group: weight 1.0, not A1111's 1.1.
    ['a (cat)', "'a cat'@1.0"],
    ['a cat+', "'a'@1.0, 'cat'@1.1"],
    ['a cat++ dog', "'a'@1.0, 'cat'@1.21, 'dog'@1.0"],
    ['a cat- dog', "'cat'@0.9"],
    ['"a b"1.3', "'a b'@1.3"],
    ['"a b"++', "'a b'@1.21"],
    ['(cat).5', "'cat'@0.5"],
    ['(cat)1.', "'cat'@1.0"],
    ['(cat)0', "'cat'@0.0"],
    ['((cat)1.5)2', "'cat'@3.0"],
    ['"a (cat)1.5 b"1.2', "'a'@1.2, 'cat'@1.8, 'b'@1.2"],
    ['(a, (b)+ c)', "'a ,'@1.0, 'b'@1.1, 'c'@1.0"],
    ['(cat).attend(1.3)', "'cat'@1.3"],
    ['cat .attend(1.3)', "'cat'@1.3"],
    ['cat.attend(++)', "'cat'@1.21"],
    ['(cat)1.3, dog', "'cat'@1.3, ', dog'@1.0"],
    ['(cat)1.3. dog', "'cat'@1.3, '. dog'@1.0"],
    ['(cat)1.3cats', "'cat'@1.3, 'cats'@1.0"],
    ['(cat)++3d', "'cat'@1.21, '3d'@1.0"],
    ['cat++dog', "'cat'@1.21, 'dog'@1.0"],
    ['cat--1girl', "'cat'@0.81, '1girl'@1.0"],
    ['(cat)1.3(dog)1.2', "'cat'@1.3, 'dog'@1.2"],
    ['x+(cat)1.3', "'x'@1.1, 'cat'@1.3"],
    ['"x"(cat)1.3', "'x'@1.0, 'cat'@1.3"],
    ['(<embedding:civitai:7808@9208>)1.2 BREAK 🐱, done.', "'<embedding:civitai:7808@9208>'@1.2, 'BREAK 🐱, done.'@1.0"],
    ['a+b well-known -x', "'a+b well-known -x'@1.0: signs inside words are text"],
    ['\\(cat\\)1.3', "'(cat)1.3'@1.0: escaped, as meant"],
    ['"say \\"hi\\""1.2', "'say \"hi\"'@1.2"],
    ['x(cat)', "'x(cat)'@1.0: no weight to lose"],
    ['(black - white) cat', "'(black - white) cat'@1.0: no weight to lose"],
    ['("a", "b").blend(0.7, 0.3)', 'Blend [a, b] weights [0.7, 0.3]'],
    ['("a", "b").blend()', 'Blend weights [1.0, 1.0]: no weights are equal weights'],
    ['("a", "b").blend(0.7, 0.3, no_normalize)', 'Blend (non-normalized) [0.7, 0.3]'],
    ['("a", "b").blend(.5, .5) ', 'Blend [0.5, 0.5]'],
    ['(cat, dog).blend(1,1)', 'Blend [cat, dog]: single words need no quotes'],
    ['("a", "b").and()', 'Conjunction weights [1.0, 1.0]'],
    ['("a", "b").and(1, 0.5)', 'Conjunction weights [1.0, 0.5]'],
    ['( "a" , (b c) ).add( )', 'Conjunction [a, b c] weights [1.0, 1.0]'],
    ['("a = b", "c").and()', "quoted parts are read with compel's forgiving prompt grammar: 'a = b'@1.0"],
  ])('%j (compel: %s)', (prompt) => {
    expect(checkCompelSyntax(prompt)).toEqual([]);
  });

  it('takes weights at the ends of the allowed range', () => {
    expect(checkCompelSyntax(`(cat)${PROMPT_WEIGHT_RANGE.min}`)).toEqual([]);
    expect(checkCompelSyntax(`(cat)${PROMPT_WEIGHT_RANGE.max}`)).toEqual([]);
    expect(checkCompelSyntax('((cat)2)2')).toEqual([]);
    // 1.1^14 = 3.80; any number of '-' stays above 0.
    expect(checkCompelSyntax(`cat${'+'.repeat(14)}`)).toEqual([]);
    expect(checkCompelSyntax(`cat${'-'.repeat(40)}`)).toEqual([]);
  });
});

describe('checkCompelSyntax: brackets and quotes', () => {
  it("reports an unclosed '(' at the opener (compel: '(a, b'@1.0)", () => {
    expect(positionsOf('(a, b')).toEqual([0]);
    expect(positionsOf('a (cat)1.3 (dog')).toEqual([11]);
  });

  it("reports a ')' with nothing to close at the closer (compel: 'a, b)'@1.0)", () => {
    expect(positionsOf('a, b)')).toEqual([4]);
    expect(positionsOf('(cat)1.3)')).toEqual([8]);
  });

  it("reports an unclosed '\"' at the opener (compel: 'a \"b c'@1.0)", () => {
    expect(positionsOf('a "b c')).toEqual([2]);
    expect(positionsOf('12" vinyl')).toEqual([2]);
    expect(checkCompelSyntax('12\\" vinyl')).toEqual([]);
  });

  it('reports brackets that cross a quote (compel: the whole group as text)', () => {
    // compel: '"a (cat b"'@1.0
    expect(positionsOf('"a (cat b"')).toEqual([3]);
    // compel: '("a)" b)'@1.0
    expect(positionsOf('("a)" b)')).toEqual([3]);
  });

  it('says what is wrong, where, and what to do instead', () => {
    expect(onlyMessage('a (cat')).toBe(`'(' at character 3 ("a (cat") is never closed: close it with ')' or escape it as '\\('.`);
  });
});

describe('checkCompelSyntax: weights', () => {
  it("reports a weight outside the range at the number (compel: '(cat)4.5' is 'cat'@4.5)", () => {
    expect(positionsOf('(cat)4.5')).toEqual([5]);
    expect(positionsOf('"a b"9')).toEqual([5]);
    expect(positionsOf('(cat).attend(5)')).toEqual([13]);
  });

  it("reports an effective weight beyond the range once, at the span that crosses it (compel: '((cat)3)2' is 'cat'@6.0)", () => {
    expect(positionsOf('((cat)3)2')).toEqual([1]);
    expect(onlyMessage('((cat)3)2')).toContain('the weight 6');
    // compel: 'cat'@4.177
    expect(positionsOf(`a cat${'+'.repeat(15)}`)).toEqual([2]);
    // Weights inside a conjunction part are multiplied by its weight. compel: 'cat'@3.0 in a part weighted 2.
    expect(positionsOf('("a (cat)3", "b").and(2, 1)')).toEqual([4]);
  });

  it("reports signs followed by a number, which compel splits (compel: '(cat)-1.5' is 'cat'@0.9, '1.5'@1.0)", () => {
    expect(positionsOf('(cat)-1.5')).toEqual([5]);
    expect(onlyMessage('(cat)-1.5')).toContain('cannot be negative');
    // compel: 'cat'@1.1, '1'@1.0
    expect(positionsOf('(cat)+1')).toEqual([5]);
    // compel: 'cat'@1.1, '-'@1.0
    expect(positionsOf('a cat+-')).toEqual([5]);
  });

  it("reports a number compel cuts short (compel: '(cat)1.2.3' is 'cat'@1.2, '.3'@1.0; '(cat)1e3' is 'cat e3'@1.0)", () => {
    expect(positionsOf('(cat)1.2.3')).toEqual([5]);
    expect(positionsOf('a (cat)1e3')).toEqual([7]);
  });

  it("reports .attend() without a weight compel reads (compel: 'cat.attend(-1)'@1.0 as text)", () => {
    expect(positionsOf('cat.attend(-1)')).toEqual([3]);
    expect(positionsOf('(cat).attend()')).toEqual([5]);
  });

  it("reports a '+', '-' or '=' alone inside a weighted group (compel: '(a + b)1.3' is '(a + b)1.3'@1.0)", () => {
    expect(positionsOf('(a + b)1.3')).toEqual([3]);
    expect(positionsOf('((a = b) c)1.2')).toEqual([4]);
    expect(positionsOf('"a -- b"+')).toEqual([3]);
    expect(checkCompelSyntax('(a \\+ b)1.3')).toEqual([]);
  });

  it("reports a weighted group written against text, which compel's catch-all swallows (compel: 'x(cat)1.3'@1.0)", () => {
    expect(positionsOf('x(cat)1.3')).toEqual([1]);
    // compel: 'a.(cat)1.3'@1.0
    expect(positionsOf('a.(cat)1.3')).toEqual([2]);
    // compel: 'x((cat)1.3)'@1.0
    expect(positionsOf('x((cat)1.3)')).toEqual([1]);
    expect(checkCompelSyntax('x (cat)1.3')).toEqual([]);
    expect(checkCompelSyntax('(x y(cat)1.3)')).toEqual([]);
  });

  it("reports A1111's (word:1.3), at the colon (compel: 'word:1 . 3'@1.0)", () => {
    expect(positionsOf('a (word:1.3) b')).toEqual([7]);
    expect(positionsOf('(<embedding:civitai:7808@9208>: 1.2 )')).toEqual([30]);
    const message = onlyMessage('(word:1.3)');
    expect(message).toContain('A1111');
    expect(message).toContain("'(text)1.3'");
    expect(message).toContain('"sdEmbeds"');
    expect(checkCompelSyntax('(word:cat) a:1.3')).toEqual([]);
  });
});

describe('checkCompelSyntax: blend and conjunction', () => {
  it('reports a weight count that does not match the parts (compel: ParsingException, mismatched prompts/weights counts)', () => {
    expect(positionsOf('("a", "b").blend(0.7)')).toEqual([10]);
    expect(positionsOf('("a", "b").and(1)')).toEqual([10]);
    expect(positionsOf('("a", "b", "c").blend(1, 1)')).toEqual([15]);
  });

  it("reports blend weights that are not numbers (compel: ValueError, could not convert string to float: 'foo')", () => {
    expect(positionsOf('("a", "b").blend(0.7, foo)')).toEqual([22]);
    // no_normalize counts as a weight unless it comes last.
    expect(positionsOf('("a", "b").blend(1, no_normalize, 1)')).toEqual([10, 20]);
    // compel: 'a , b .blend(1e2, 1)'@1.0
    expect(positionsOf('("a", "b").blend(1e2, 1)')).toEqual([17]);
  });

  it('reports negative blend weights, and blend weights that are all 0 (compel divides by their sum)', () => {
    expect(positionsOf('("a", "b").blend(-1, 2)')).toEqual([17]);
    expect(positionsOf('("a", "b").blend(0, 0)')).toEqual([10]);
    expect(checkCompelSyntax('("a", "b").blend(0, 1)')).toEqual([]);
  });

  it("reports conjunction weights outside the range (compel: weights [1.0, 5.0])", () => {
    expect(positionsOf('("a", "b").and(1, 5)')).toEqual([18]);
    expect(positionsOf('("a", "b").and(-1, 1)')).toEqual([15]);
  });

  it("reports a part that is not one quoted text, group or word (compel: 'a cat , dog .blend(1, 1)'@1.0)", () => {
    expect(positionsOf('(a cat, dog).blend(1,1)')).toEqual([1]);
    // compel: 'a'@1.2, ', b .blend(1, 1)'@1.0
    expect(positionsOf('("a"1.2, "b").blend(1,1)')).toEqual([1]);
    expect(positionsOf('("a",, "b").and()')).toEqual([4]);
  });

  it('reports .blend() or .and() that is not the whole prompt', () => {
    // compel: 'x a cat , a dog .blend(1, 1)'@1.0
    expect(positionsOf('x ("a cat", "a dog").blend(1,1)')).toEqual([20]);
    expect(positionsOf('a, (b c).and()')).toEqual([8]);
    // compel: ParseException, Expected end of text, found 'trailing'
    expect(positionsOf('("a cat", "a dog").blend(1,1) trailing')).toEqual([30]);
    // compel silently drops the text after .and(…): weights [1.0, 0.5], no 'trailing text'.
    expect(positionsOf('("a", "b").and(1, 0.5) trailing text')).toEqual([23]);
  });
});

describe('checkCompelSyntax: compel features clipgate does not apply', () => {
  it('refuses .swap(), compel 2.5.1\'s only cross-attention control operator (compel: CrossAttentionControlSubstitute)', () => {
    expect(positionsOf('(cat).swap(dog)')).toEqual([5]);
    expect(positionsOf('a cat.swap(dog, s_start=0.1)')).toEqual([5]);
    expect(onlyMessage('"a cat".swap("a dog")')).toContain('cross-attention control');
  });

  it("refuses withLora() and useLora() (compel: loras [Lora('foo'@0.5)])", () => {
    expect(positionsOf('a cat withLora(foo, 0.5)')).toEqual([6]);
    expect(positionsOf('(a useLora(foo) b)')).toEqual([3]);
    expect(onlyMessage('withLora(foo)')).toContain('use lora[] for LoRAs');
    expect(checkCompelSyntax('a cat with lora')).toEqual([]);
  });

  it("reports operators compel does not have, such as .shuffle() (compel: 'cat .shuffle()'@1.0)", () => {
    expect(positionsOf('(cat).shuffle()')).toEqual([5]);
    expect(checkCompelSyntax('a cat. shuffle(it)')).toEqual([]);
  });
});

describe('checkCompelSyntax: the list of problems', () => {
  it('is in order of position, whatever order the problems are found in', () => {
    // The effective weight and the unclosed '(' are judged after the scan, the stray ')' during it.
    expect(positionsOf('((cat)3)2 a) (b')).toEqual([1, 11, 13]);
  });

  it(`holds at most ${MAX_PROMPT_SYNTAX_PROBLEMS} problems, the first ones`, () => {
    expect(positionsOf(')'.repeat(25))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(positionsOf('('.repeat(3000))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

describe('checkCompelSyntax: speed', () => {
  it('checks a 3,000-character prompt in well under a millisecond, and a pathological one quickly', () => {
    const unit = 'a photo of (a cat)1.2, blurry-, "best quality"++, <embedding:civitai:7808@9208>, (red hair) ';
    const prompt = unit.repeat(Math.ceil(3000 / unit.length)).slice(0, 3000);
    expect(checkCompelSyntax(prompt)).toEqual([]);
    for (let warm = 0; warm < 50; warm += 1) checkCompelSyntax(prompt);
    const runs = 200;
    const start = performance.now();
    for (let run = 0; run < runs; run += 1) checkCompelSyntax(prompt);
    expect((performance.now() - start) / runs).toBeLessThan(1);

    const pathological = '(a = '.repeat(600);
    const pathologicalStart = performance.now();
    for (let run = 0; run < 20; run += 1) checkCompelSyntax(pathological);
    expect((performance.now() - pathologicalStart) / 20).toBeLessThan(5);
  });
});
