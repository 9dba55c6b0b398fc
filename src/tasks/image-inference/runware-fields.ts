/**
 * Every documented Runware `imageInference` field that clipgate does not take as a task parameter, with its
 * deliberate answer (DESIGN §2): refused, naming the feature clipgate's workers do not have, or accepted with
 * a warning that says it was not applied. The lists come from the published clients' own field sets
 * (@runware/sdk-js's IRequestImage, runware-sdk's task map, runware's IImageInference); no documented field
 * gets `unknownParameter`. The README's table of them is checked against this file by a test.
 */

export interface FeatureRefusal {
  /** What the field asks for, in a user's words. */
  readonly feature: string;
  /** What to do instead, when there is something. */
  readonly instead?: string;
}

const textToImageOnly = 'clipgate generates images from text (with embeddings and LoRAs); send the task without it';

export const unsupportedFeatures: Readonly<Record<string, FeatureRefusal>> = {
  seedImage: { feature: 'image-to-image (a seed image)', instead: textToImageOnly },
  maskImage: { feature: 'inpainting (a mask image)', instead: textToImageOnly },
  maskMargin: { feature: 'inpainting (a mask margin)', instead: textToImageOnly },
  strength: { feature: 'image-to-image strength', instead: textToImageOnly },
  referenceImages: { feature: 'reference images', instead: textToImageOnly },
  inputs: { feature: 'input images (inputs)', instead: textToImageOnly },
  outpaint: { feature: 'outpainting', instead: textToImageOnly },
  controlNet: { feature: 'ControlNet', instead: textToImageOnly },
  ipAdapters: { feature: 'IP-Adapters', instead: 'describe the reference in the prompt, or use an embedding or a LoRA trained on it' },
  instantID: { feature: 'InstantID', instead: 'use an embedding or a LoRA trained on the subject' },
  puLID: { feature: 'PuLID', instead: 'use an embedding or a LoRA trained on the subject' },
  pulid: { feature: 'PuLID', instead: 'use an embedding or a LoRA trained on the subject' },
  photoMaker: { feature: 'PhotoMaker', instead: 'use an embedding or a LoRA trained on the subject' },
  acePlusPlus: { feature: 'ACE++ editing', instead: textToImageOnly },
  refiner: { feature: 'a refiner model', instead: 'send the task without it; the base model generates the whole image' },
  hiresFix: { feature: 'the high-resolution fix', instead: 'ask for the final width and height directly' },
  upscaleFactor: { feature: 'upscaling', instead: 'ask for the final width and height directly' },
  resolution: { feature: 'named resolutions', instead: 'give width and height in pixels' },
  vae: { feature: 'a custom VAE', instead: "send the task without it; each model is served with its own VAE" },
  lycoris: { feature: 'LyCORIS networks', instead: 'send LoRAs in lora[]' },
  trueCFGScale: { feature: 'true CFG (a FLUX setting)', instead: 'use CFGScale' },
  structuredPrompt: { feature: 'structured prompts', instead: 'write the prompt in positivePrompt' },
  settings: { feature: "a provider's model settings (settings)", instead: 'use the task fields clipgate documents' },
  providerSettings: { feature: 'third-party provider settings', instead: 'use the task fields clipgate documents' },
  ultralytics: { feature: 'face and hand detailing (ultralytics)', instead: 'send the task without it' },
  advancedFeatures: { feature: 'advanced features (layer diffusion, regional prompting, watermarks, …)', instead: 'send the task without it' },
  uploadEndpoint: { feature: 'uploading results to your own endpoint', instead: 'take the images from imageURL, or ask for base64Data' },
};

/** Documented fields that change nothing about which image is made: taken, with a parameterNotApplied warning. */
export const fieldsNotApplied: Readonly<Record<string, string>> = {
  acceleration: 'clipgate does not trade quality for speed: every image is generated in full',
  acceleratorOptions: 'clipgate does not trade quality for speed: every image is generated in full',
  useCache: 'clipgate does not serve images from a cache of earlier tasks: every image is generated',
  routing: 'clipgate routes each task to the GPU workers that serve its model; routing preferences are not read',
  ttl: 'stored images are kept for the operator\'s IMAGE_TTL_SECONDS, whatever a task asks',
};

/** `usePromptWeighting` (deprecated by Runware, from before sdEmbeds existed): false asks for nothing; true is promptWeighting "compel". */
export const PROMPT_WEIGHTING_SWITCH = 'usePromptWeighting';

/** Runware's newer spelling of checkNSFW lives in `safety`; only `checkContent` is taken from it. */
export const SAFETY_FIELD = 'safety';
