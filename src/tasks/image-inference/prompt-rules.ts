import { parseAir, type Air } from '../../contracts/air.js';
import type { Family } from '../../contracts/families.js';
import type { PromptWeighting } from '../../contracts/image-inference-task.js';
import type { ModelRecord } from '../../contracts/model-record.js';
import { EMBEDDING_VECTORS_PER_TASK, MAX_MENTIONS } from '../../contracts/task-limits.js';
import { createError, createWarning, type ApiError, type ApiWarning, type ErrorDetails } from '../../errors.js';
import { EMBEDDING_MARKER, usableTriggerWords, wordsNamedIn } from './embedding-mentions.js';
import { checkCompelSyntax } from './prompt-syntax/compel-syntax.js';
import { checkSdEmbedsSyntax } from './prompt-syntax/sd-embeds-syntax.js';
import type { PromptSyntaxProblem } from './prompt-syntax/prompt-syntax-problem.js';

/**
 * What the prompts of a task say, checked before any GPU time (DESIGN §7): their promptWeighting syntax,
 * the embeddings they name (markers and trigger words) and the side each belongs on, the vectors the
 * embeddings need together, and clip skip where SDXL does not take it. Pure: the task and its resolved
 * embeddings in; errors, warnings and each embedding's mentions out.
 */

export interface PromptEmbedding {
  /** Position in the task's `embeddings` array. */
  readonly index: number;
  readonly air: Air;
  readonly weight: number;
  readonly record: ModelRecord | undefined;
}

/** The parts of a task these rules read (a parsed task is one); each present where it passed structural checks. */
export interface PromptParts {
  readonly positivePrompt: string;
  readonly negativePrompt?: string | undefined;
  readonly promptWeighting?: PromptWeighting | undefined;
  readonly clipSkip: number;
}

export interface PromptOutcome {
  readonly errors: ApiError[];
  readonly warnings: ApiWarning[];
  /** By position in embeddings[]: the words of its own prompt that stand for it. Only non-empty lists. */
  readonly mentions: ReadonlyMap<number, readonly string[]>;
}

type Side = 'positivePrompt' | 'negativePrompt';

const checkers: Record<PromptWeighting, (prompt: string) => PromptSyntaxProblem[]> = {
  sdEmbeds: checkSdEmbedsSyntax,
  compel: checkCompelSyntax,
};

export const nothingToSay: PromptOutcome = { errors: [], warnings: [], mentions: new Map() };

/** Whether the rules can say anything: the common task (plain prompts, no embeddings) costs two substring searches. */
export function promptRulesApply(task: PromptParts, embeddingCount: number): boolean {
  return task.promptWeighting !== undefined || embeddingCount > 0 || task.clipSkip > 0 || hasMarker(task);
}

export function checkPrompts(task: PromptParts, embeddings: readonly PromptEmbedding[], baseFamily: Family | undefined, details: ErrorDetails): PromptOutcome {
  const errors: ApiError[] = [];
  const warnings: ApiWarning[] = [];
  const prompts: Record<Side, string> = { positivePrompt: task.positivePrompt, negativePrompt: task.negativePrompt ?? '' };

  if (task.promptWeighting) {
    for (const side of ['positivePrompt', 'negativePrompt'] as const) {
      for (const problem of checkers[task.promptWeighting](prompts[side])) {
        errors.push(createError('invalidPromptSyntax', `${side} (promptWeighting "${task.promptWeighting}"): ${problem.message}`, { ...details, parameter: side }));
      }
    }
  }

  const mentions = new Map<number, string[]>();
  const mention = (index: number, word: string) => {
    const list = mentions.get(index) ?? [];
    if (list.length < MAX_MENTIONS && !list.includes(word)) list.push(word);
    mentions.set(index, list);
  };
  const sideOf = (weight: number): Side | undefined => (weight > 0 ? 'positivePrompt' : weight < 0 ? 'negativePrompt' : undefined);

  // Markers are explicit: one that cannot be honoured is an error, never text left in the prompt.
  for (const side of ['positivePrompt', 'negativePrompt'] as const) {
    for (const match of prompts[side].matchAll(EMBEDDING_MARKER)) {
      const air = parseAir(match[1] ?? '');
      const embedding = air && embeddings.find((entry) => entry.air.canonical === air.canonical);
      const at = { ...details, parameter: side };
      if (!embedding) {
        errors.push(createError('invalidEmbeddingMarker', `${side} holds ${match[0]}, but embeddings[] has no such embedding. Add it there (with its weight), or remove the marker.`, at));
        continue;
      }
      const own = sideOf(embedding.weight);
      if (own === side) mention(embedding.index, match[0]);
      else {
        const where = own ? `its weight ${embedding.weight} sends it to ${own}` : 'its weight 0 sends it to neither prompt';
        errors.push(createError('invalidEmbeddingMarker', `${side} holds ${match[0]}, but ${where} (embeddings[${embedding.index}]). Move the marker there, or change the weight's sign.`, at));
      }
    }
  }

  // Trigger words are ordinary words: on the other side they stay text, with a warning.
  for (const embedding of embeddings) {
    const own = sideOf(embedding.weight);
    const words = usableTriggerWords(embedding.record?.trainedWords);
    if (!own || words.length === 0) continue;
    for (const word of wordsNamedIn(prompts[own], words)) mention(embedding.index, word);
    const other: Side = own === 'positivePrompt' ? 'negativePrompt' : 'positivePrompt';
    const misplaced = wordsNamedIn(prompts[other], words);
    if (misplaced.length > 0) {
      warnings.push(
        createWarning(
          'triggerWordOnOtherSide',
          `${other} names embedding "${embedding.record?.air}" (${misplaced.map((word) => `"${word}"`).join(', ')}), but its weight ${embedding.weight} sends it to ${own}: there the words are plain text, and the embedding is applied in ${own}. Move the words, or change the weight's sign.`,
          { ...details, parameter: `embeddings[${embedding.index}].weight` },
        ),
      );
    }
  }

  const vectors = vectorsNeeded(embeddings);
  if (vectors > EMBEDDING_VECTORS_PER_TASK) {
    errors.push(
      createError(
        'tooManyEmbeddingVectors',
        `The embeddings of this task hold ${vectors} vectors together; a worker's text encoder has slots for ${EMBEDDING_VECTORS_PER_TASK} at once. Drop the longest embeddings, or split the work into several tasks.`,
        { ...details, parameter: 'embeddings', max: EMBEDDING_VECTORS_PER_TASK },
      ),
    );
  }

  if (baseFamily === 'sdxl' && task.clipSkip > 0) {
    warnings.push(
      createWarning(
        'parameterNotApplied',
        `clipSkip ${task.clipSkip} is not applied: SDXL's text encoders always give their penultimate layer, as in A1111 (which ignores clip skip on SDXL) and ComfyUI (where "clip skip 2" is SDXL's default), so the image is what those give for it.`,
        { ...details, parameter: 'clipSkip' },
      ),
    );
  }
  return { errors, warnings, mentions };
}

function hasMarker(task: PromptParts): boolean {
  return task.positivePrompt.includes('<embedding:') || (task.negativePrompt?.includes('<embedding:') ?? false);
}

/** Slots are per file: an embedding listed twice (refused elsewhere) or sharing a file is counted once. */
function vectorsNeeded(embeddings: readonly PromptEmbedding[]): number {
  const files = new Map<string, number>();
  for (const { weight, record } of embeddings) {
    if (weight !== 0 && record?.file) files.set(record.file.canonicalSha256, record.file.vectors);
  }
  let total = 0;
  for (const count of files.values()) total += count;
  return total;
}
