import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { parseAir } from '../contracts/air.js';
import { familyOfBaseModel } from './base-models.js';
import { families } from '../contracts/families.js';
import { modelTypes, type ModelRecord } from '../contracts/model-record.js';

/**
 * The operator's catalogue file (MODEL_CATALOG_PATH): the models this fleet serves and the embeddings
 * and LoRAs the operator vouches for. Each entry names its family directly or through a Civitai
 * `baseModel` label.
 */
const entrySchema = z
  .strictObject({
    air: z.string(),
    name: z.string().min(1).max(200).optional(),
    type: z.enum(modelTypes),
    family: z.enum(families).optional(),
    baseModel: z.string().min(1).max(100).optional(),
  })
  .refine((entry) => entry.family !== undefined || entry.baseModel !== undefined, {
    message: 'give "family" or "baseModel"',
  });

const fileSchema = z.strictObject({ models: z.array(entrySchema) });

export class CatalogueFileError extends Error {
  override readonly name = 'CatalogueFileError';
}

export function parseOperatorCatalogue(text: string, path: string): ModelRecord[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new CatalogueFileError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw new CatalogueFileError(`${path} is not a valid model catalogue: ${problems.join('; ')}`);
  }
  return parsed.data.models.map((entry, index) => {
    const air = parseAir(entry.air);
    if (!air) throw new CatalogueFileError(`${path}: models.${index}.air "${entry.air}" is not an AIR`);
    return {
      air: air.canonical,
      name: entry.name ?? air.canonical,
      type: entry.type,
      // An explicit family wins over the label: the operator knows what the fleet actually runs.
      family: entry.family ?? familyOfBaseModel(entry.baseModel ?? ''),
      ...(entry.baseModel !== undefined && { baseModel: entry.baseModel }),
      source: 'operator',
    };
  });
}

export async function loadOperatorCatalogue(path: string): Promise<ModelRecord[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new CatalogueFileError(`cannot read ${path}: ${(error as Error).message}`);
  }
  return parseOperatorCatalogue(text, path);
}
