/**
 * Where a prompt names an embedding (DESIGN §7): its `<embedding:AIR>` marker, or one of its trigger words
 * (the registry's `trainedWords`). A trigger word counts where it stands whole — case-insensitive, with no
 * letter, digit or `_` right before or after — so `easynegative` is found in `(easynegative:1.2), blurry` but
 * not in `easynegatives`. The reference worker places the vectors by the same rule
 * (worker/clipgate_worker/embedding_mentions.py); the job carries the words found, as spelled in the list.
 */


import { AIR_MAX_LENGTH } from '../../contracts/air.js';

/** `<embedding:civitai:7808@9208>`; the AIR inside is parsed and matched against embeddings[]. */
export const EMBEDDING_MARKER = new RegExp(`<embedding:([^<>\\s]{1,${AIR_MAX_LENGTH}})>`, 'g');

/** Trained words are short; a longer "word" is a prompt someone pasted into the list. */
const TRIGGER_WORD_MAX_LENGTH = 100;

/** Characters prompt syntaxes give a meaning: a trigger word holding one cannot be found as plain text. */
const SYNTAX_CHARACTERS = /[()[\]{}<>:\\|"]/;
const WORD_CHARACTER = /[\p{L}\p{N}_]/u;
const EDGE_PUNCTUATION = /^[\s,.;]+|[\s,.;]+$/g;

/**
 * The registry's trained words a prompt can name: trimmed of the commas authors leave, holding a letter or a
 * digit and no syntax characters, each once (case-insensitively).
 */
export function usableTriggerWords(trainedWords: readonly string[] | undefined): string[] {
  if (!trainedWords) return [];
  const seen = new Set<string>();
  const usable: string[] = [];
  for (const raw of trainedWords) {
    const word = raw.replace(EDGE_PUNCTUATION, '');
    if (word.length === 0 || word.length > TRIGGER_WORD_MAX_LENGTH || SYNTAX_CHARACTERS.test(word) || !/[\p{L}\p{N}]/u.test(word)) continue;
    const key = word.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    usable.push(word);
  }
  return usable;
}

/** The words of `words` that `text` names, in the order of `words`. */
export function wordsNamedIn(text: string, words: readonly string[]): string[] {
  return words.filter((word) => namesWord(text, word));
}

function namesWord(text: string, word: string): boolean {
  const pattern = new RegExp(escapeRegExp(word), 'giu');
  const checkBefore = WORD_CHARACTER.test(word[0] ?? '');
  const checkAfter = WORD_CHARACTER.test(word.at(-1) ?? '');
  for (const match of text.matchAll(pattern)) {
    const start = match.index;
    const end = start + match[0].length;
    if (checkBefore && start > 0 && WORD_CHARACTER.test(charBefore(text, start))) continue;
    if (checkAfter && end < text.length && WORD_CHARACTER.test(charAt(text, end))) continue;
    return true;
  }
  return false;
}

/** The whole code point before `index` (a letter outside the BMP is two UTF-16 units). */
function charBefore(text: string, index: number): string {
  const low = text.charCodeAt(index - 1);
  return low >= 0xdc00 && low <= 0xdfff && index >= 2 ? text.slice(index - 2, index) : text.charAt(index - 1);
}

function charAt(text: string, index: number): string {
  return String.fromCodePoint(text.codePointAt(index) ?? 0);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
