/**
 * Scheduler names a task may ask for: diffusers' class names (what Runware accepts) and the A1111 names
 * most users know. The worker maps each to a diffusers scheduler; `Default` keeps the model's own.
 */
export const schedulers = [
  'Default',
  'DDIMScheduler',
  'DDPMScheduler',
  'DEISMultistepScheduler',
  'DPMSolverMultistepScheduler',
  'DPMSolverSinglestepScheduler',
  'DPMSolverSDEScheduler',
  'EulerDiscreteScheduler',
  'EulerAncestralDiscreteScheduler',
  'HeunDiscreteScheduler',
  'KDPM2DiscreteScheduler',
  'KDPM2AncestralDiscreteScheduler',
  'LCMScheduler',
  'LMSDiscreteScheduler',
  'PNDMScheduler',
  'TCDScheduler',
  'UniPCMultistepScheduler',
  'DDIM',
  'DPM++ 2M',
  'DPM++ 2M Karras',
  'DPM++ 2M SDE',
  'DPM++ 2M SDE Karras',
  'DPM++ SDE',
  'DPM++ SDE Karras',
  'DPM2',
  'DPM2 Karras',
  'DPM2 a',
  'DPM2 a Karras',
  'Euler',
  'Euler a',
  'Heun',
  'LCM',
  'LMS',
  'LMS Karras',
  'PLMS',
  'UniPC',
] as const;

export type Scheduler = (typeof schedulers)[number];
