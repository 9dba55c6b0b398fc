import { z } from 'zod';
import { familyOfBaseModel } from './base-models.js';
import type { Family } from '../contracts/families.js';
import type { ModelType } from '../contracts/model-record.js';
import type { RegistryFile } from '../contracts/registry-file.js';

export type { RegistryFile };

/**
 * A Civitai-compatible registry's model-version answer (DESIGN §4) → what clipgate uses of it. Only the
 * fields we read are declared; extra fields are ignored, so the registry can grow without breaking us.
 */

export interface RegistryModelVersion {
  readonly modelId: string;
  readonly versionId: string;
  /** The model's name, plus the version's name in parentheses. */
  readonly name: string;
  readonly type: ModelType;
  /** Civitai's `model.type` as sent: `TextualInversion`, `LORA`, `Checkpoint`, … */
  readonly rawType: string;
  /** Empty when the registry sent none (its family is then `unknown`). */
  readonly baseModel: string;
  readonly family: Family;
  readonly trainedWords: readonly string[];
  readonly files: readonly RegistryFile[];
  /** The file to use (see chooseFile); undefined when the version has none. */
  readonly file: RegistryFile | undefined;
}

const identifier = z.union([z.number().int(), z.string().min(1)]).transform(String);

const fileSchema = z.object({
  name: z.string(),
  sizeKB: z.number().nonnegative().nullish(),
  type: z.string().nullish(),
  primary: z.boolean().nullish(),
  metadata: z.object({ format: z.string().nullish() }).nullish(),
  pickleScanResult: z.string().nullish(),
  virusScanResult: z.string().nullish(),
  hashes: z.object({ SHA256: z.string().nullish() }).nullish(),
  downloadUrl: z.string().min(1),
});

export const modelVersionSchema = z.object({
  id: identifier.nullish(),
  modelId: identifier,
  name: z.string().nullish(),
  baseModel: z.string().nullish(),
  trainedWords: z.array(z.string()).nullish(),
  model: z.object({ name: z.string().nullish(), type: z.string().min(1) }),
  files: z.array(fileSchema),
});

type ModelVersionAnswer = z.infer<typeof modelVersionSchema>;
type FileAnswer = z.infer<typeof fileSchema>;

/** LoCon and DoRA are LoRA variants that load through the same `lora[]` path. */
const modelTypesByRawType: ReadonlyMap<string, ModelType> = new Map([
  ['checkpoint', 'checkpoint'],
  ['textualinversion', 'textualInversion'],
  ['lora', 'lora'],
  ['locon', 'lora'],
  ['dora', 'lora'],
]);

/** Case-insensitive: compatible registries do not all spell `LORA` the way Civitai does. */
export function modelTypeOfRawType(rawType: string): ModelType {
  return modelTypesByRawType.get(rawType.toLowerCase()) ?? 'other';
}

const sha256Pattern = /^[0-9a-f]{64}$/;

function toRegistryFile(file: FileAnswer): RegistryFile {
  const sha256 = file.hashes?.SHA256?.trim().toLowerCase();
  return {
    name: file.name,
    // Civitai's sizeKB is in KiB and fractional (24.6): the byte count it stands for.
    sizeBytes: Math.round((file.sizeKB ?? 0) * 1024),
    format: file.metadata?.format ?? 'Other',
    sha256: sha256 !== undefined && sha256Pattern.test(sha256) ? sha256 : undefined,
    downloadUrl: file.downloadUrl,
    primary: file.primary === true,
    pickleScan: file.pickleScanResult ?? 'Pending',
    virusScan: file.virusScanResult ?? 'Pending',
  };
}

/**
 * File types that hold the model itself, as Civitai's own code counts them: `Model`, `Pruned Model`, and
 * `Negative` (a TextualInversion published as a negative embedding) — as opposed to `Training Data`,
 * `Config`, `VAE`, `Archive`, …, which are never chosen.
 */
const modelFileTypes: ReadonlySet<string> = new Set(['model', 'pruned model', 'negative']);
/** An archive is never a model file, whatever type it was given. */
const ARCHIVE_NAME = /\.(?:zip|7z|rar|tar|gz|tgz)$/i;

/**
 * The file clipgate downloads for a version: among its model files (files without a type count as model
 * files; archives never do), a SafeTensor whose pickle and virus scans both say Success — the primary one
 * if it is such a file, so a SafeTensor is taken over a PickleTensor — otherwise the primary file as it is,
 * otherwise the first. "As it is" matters: a primary file
 * flagged Danger is returned, not skipped for a lesser file, so the caller can reject it with a specific
 * error instead of silently serving a file the publisher did not mean.
 */
function chooseFile(files: readonly { readonly raw: FileAnswer; readonly file: RegistryFile }[]): RegistryFile | undefined {
  const candidates = files
    .filter(({ raw }) => (raw.type == null || modelFileTypes.has(raw.type.toLowerCase())) && !ARCHIVE_NAME.test(raw.name))
    .map(({ file }) => file);
  const clean = candidates.filter(
    (file) => file.format.toLowerCase() === 'safetensor' && file.pickleScan === 'Success' && file.virusScan === 'Success',
  );
  return clean.find((file) => file.primary) ?? clean[0] ?? candidates.find((file) => file.primary) ?? candidates[0];
}

function displayName(answer: ModelVersionAnswer, modelId: string, versionId: string): string {
  const modelName = answer.model.name?.trim();
  const versionName = answer.name?.trim();
  if (modelName && versionName) return `${modelName} (${versionName})`;
  return modelName || versionName || `${modelId}@${versionId}`;
}

/** `requestedVersionId` stands in for the answer's `id` when a registry leaves it out. */
export function toRegistryModelVersion(answer: ModelVersionAnswer, requestedVersionId: string): RegistryModelVersion {
  const modelId = answer.modelId;
  const versionId = answer.id ?? requestedVersionId;
  const files = answer.files.map((raw) => ({ raw, file: toRegistryFile(raw) }));
  const baseModel = answer.baseModel ?? '';
  return {
    modelId,
    versionId,
    name: displayName(answer, modelId, versionId),
    type: modelTypeOfRawType(answer.model.type),
    rawType: answer.model.type,
    baseModel,
    family: familyOfBaseModel(baseModel),
    trainedWords: answer.trainedWords ?? [],
    files: files.map(({ file }) => file),
    file: chooseFile(files),
  };
}
