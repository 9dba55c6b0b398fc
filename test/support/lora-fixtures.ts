import { safetensorsFile, type FixtureTensor } from './embedding-fixtures.js';

/**
 * LoRA files as Civitai serves them, small but with real key names and shapes: the tensors the gateway reads
 * from the header (the UNet's cross-attention key projection, the text encoders' projections) at rank 2.
 */

export type LoraFamily = 'sd1' | 'sdxl' | 'sd2' | 'flux';
export type LoraNaming = 'kohya' | 'peft';

const widths: Record<Exclude<LoraFamily, 'flux'>, number> = { sd1: 768, sd2: 1024, sdxl: 2048 };
const RANK = 2;

function matrix(rows: number, columns: number): FixtureTensor {
  return { shape: [rows, columns], values: new Float32Array(rows * columns).fill(0.01), dtype: 'F16' };
}

export function loraFile(family: LoraFamily, naming: LoraNaming, options: { textEncoderOnly?: boolean; metadata?: Record<string, string> } = {}): Uint8Array {
  const tensors: Record<string, FixtureTensor> = {};
  const add = (kohya: string, peft: string, columns: number, rows = 320) => {
    if (naming === 'kohya') {
      tensors[`${kohya}.lora_down.weight`] = matrix(RANK, columns);
      tensors[`${kohya}.lora_up.weight`] = matrix(rows, RANK);
      tensors[`${kohya}.alpha`] = { shape: [], values: new Float32Array([RANK]) };
    } else {
      tensors[`${peft}.lora_A.weight`] = matrix(RANK, columns);
      tensors[`${peft}.lora_B.weight`] = matrix(rows, RANK);
    }
  };
  if (family === 'flux') {
    add('lora_unet_double_blocks_0_img_attn_qkv', 'transformer.transformer_blocks.0.attn.to_k', 3072, 9216);
    add('lora_unet_single_blocks_0_linear1', 'transformer.single_transformer_blocks.0.attn.to_k', 3072, 3072);
    return safetensorsFile(tensors, options.metadata);
  }
  const width = widths[family];
  const textWidth = family === 'sdxl' ? 768 : width;
  if (!options.textEncoderOnly) {
    add('lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k', 'unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k', width);
    add('lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q', 'unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q', 320);
  }
  const firstEncoder = family === 'sdxl' ? 'lora_te1' : 'lora_te';
  add(`${firstEncoder}_text_model_encoder_layers_0_self_attn_q_proj`, 'text_encoder.text_model.encoder.layers.0.self_attn.q_proj', textWidth, textWidth);
  if (family === 'sdxl') add('lora_te2_text_model_encoder_layers_0_self_attn_q_proj', 'text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj', 1280, 1280);
  return safetensorsFile(tensors, options.metadata);
}
