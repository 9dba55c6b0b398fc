import type { Family } from '../contracts/families.js';

/**
 * Which model a LoRA file is for, from its tensor names and shapes alone (DESIGN §5): the safetensors header
 * is enough, so a 300 MB file is never downloaded to find out.
 *
 * - kohya naming: `lora_unet_…`, text encoders `lora_te_…` (SD 1.x/2.x) or `lora_te1_…` + `lora_te2_…` (SDXL);
 * - PEFT / diffusers naming: `unet.….attn2.to_k.lora_A.weight` (older: `.lora.down.weight`,
 *   `_lora.down.weight`), text encoders `text_encoder.…` and, for SDXL, `text_encoder_2.…`;
 * - the UNet's cross-attention key projection reads the text encoder's width: 768 (SD 1.x), 1024 (SD 2.x),
 *   2048 (SDXL) — the same facts that decide an embedding's family;
 * - FLUX LoRAs name its double and single transformer blocks.
 */

export interface LoraLayout {
  /** Undefined when nothing in the file says (a LoRA of an architecture clipgate does not tell apart). */
  readonly family: Family | undefined;
  readonly naming: 'kohya' | 'peft';
  /** The evidence, for messages. */
  readonly evidence: string;
}

export interface HeaderTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

const crossAttentionWidths: ReadonlyMap<number, Family> = new Map([
  [768, 'sd1'],
  [1024, 'sd2'],
  [2048, 'sdxl'],
]);

/** The down (A) matrix of a cross-attention key projection, in any naming: its second dimension is the width. */
const CROSS_ATTENTION_DOWN = /attn2[._]to_k(?:\.lora_A\.weight|\.lora_down\.weight|\.lora\.down\.weight|_lora\.down\.weight)$/;
const TEXT_ENCODER_DOWN = /(?:q_proj|k_proj|v_proj)(?:\.lora_A\.weight|\.lora_down\.weight|\.lora\.down\.weight|_lora\.down\.weight)$/;
const FLUX_BLOCKS = /(?:double_blocks|single_blocks|single_transformer_blocks)/;

export function classifyLora(tensors: readonly HeaderTensor[]): LoraLayout {
  const names = tensors.map((tensor) => tensor.name);
  const naming = names.some((name) => name.startsWith('lora_')) ? 'kohya' : 'peft';
  const secondTextEncoder = names.some((name) => name.startsWith('lora_te2_') || name.startsWith('text_encoder_2.'));
  if (names.some((name) => FLUX_BLOCKS.test(name))) return { family: 'flux', naming, evidence: 'its keys name FLUX transformer blocks' };

  const crossAttention = tensors.find((tensor) => CROSS_ATTENTION_DOWN.test(tensor.name) && tensor.shape.length === 2);
  if (crossAttention) {
    const width = crossAttention.shape[1] ?? 0;
    const family = crossAttentionWidths.get(width);
    if (family) return { family, naming, evidence: `its UNet cross-attention reads ${width}-wide text (${crossAttention.name})` };
    return { family: undefined, naming, evidence: `its UNet cross-attention reads ${width}-wide text, which no served family has` };
  }
  if (secondTextEncoder) return { family: 'sdxl', naming, evidence: 'it has LoRA weights for a second text encoder (SDXL)' };
  const textEncoder = tensors.find((tensor) => TEXT_ENCODER_DOWN.test(tensor.name) && tensor.shape.length === 2);
  if (textEncoder) {
    const width = textEncoder.shape[1] ?? 0;
    const family = width === 768 ? 'sd1' : width === 1024 ? 'sd2' : undefined;
    return { family, naming, evidence: `its text-encoder weights are ${width} wide (${textEncoder.name})` };
  }
  return { family: undefined, naming, evidence: 'no UNet cross-attention or text-encoder weights were found in it' };
}
