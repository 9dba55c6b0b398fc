import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { usableTriggerWords, wordsNamedIn } from '../../../src/tasks/image-inference/embedding-mentions.js';

interface MentionCase {
  readonly prompt: string;
  readonly word: string;
  readonly named: boolean;
}

/** The cases the reference worker is held to as well (worker/tests/test_embedding_mentions.py). */
const { cases } = JSON.parse(readFileSync(new URL('../../../openapi/embedding-mention-cases.json', import.meta.url), 'utf8')) as { cases: MentionCase[] };

describe('a prompt naming an embedding', () => {
  it.each(cases.map((entry) => [`${entry.word} in ${JSON.stringify(entry.prompt)}`, entry] as const))('%s', (_, { prompt, word, named }) => {
    expect(wordsNamedIn(prompt, [word])).toEqual(named ? [word] : []);
  });

  it('keeps the order of the list and the spelling of the registry', () => {
    expect(wordsNamedIn('BAD-HANDS-5 and EasyNegative', ['easynegative', 'nothing', 'bad-hands-5'])).toEqual(['easynegative', 'bad-hands-5']);
  });
});

describe("a registry's trained words", () => {
  it('are trimmed of the commas authors leave, deduplicated, and dropped where no prompt can name them as text', () => {
    expect(usableTriggerWords(['EasyNegative, ', 'easynegative', '(worst quality:1.4)', '<lora:x:1>', ' , ', '', 'a'.repeat(101), 'sks person.'])).toEqual([
      'EasyNegative',
      'sks person',
    ]);
    expect(usableTriggerWords(undefined)).toEqual([]);
  });
});
