"""LoRA files that fit the tiny pipelines, written in the two namings found on Civitai.

- **PEFT / diffusers naming**: ``unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight``
  and ``text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight`` (SDXL: ``text_encoder_2.``).
- **kohya naming**: ``lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight``,
  ``….lora_up.weight`` and ``….alpha``; text encoders ``lora_te_`` (SD 1.x) or ``lora_te1_`` / ``lora_te2_`` (SDXL).

Weights are drawn from a seed, rank 4, on every attention projection of the UNet and the text encoder(s):
large enough that an image with the LoRA differs from one without.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import save_file

RANK = 4
UNET_PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


def _linear_modules(module: torch.nn.Module, suffixes: tuple[str, ...]) -> list[tuple[str, torch.nn.Linear]]:
    return [(name, child) for name, child in module.named_modules() if isinstance(child, torch.nn.Linear) and name.endswith(suffixes)]


def lora_tensors(pipeline, family: str, seed: int, naming: str) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    parts = [("unet", pipeline.unet, UNET_PROJECTIONS), ("text_encoder", pipeline.text_encoder, TEXT_PROJECTIONS)]
    if family == "sdxl":
        parts.append(("text_encoder_2", pipeline.text_encoder_2, TEXT_PROJECTIONS))
    for part, module, suffixes in parts:
        for name, linear in _linear_modules(module, suffixes):
            down = torch.randn(RANK, linear.in_features, generator=generator) * 0.2
            up = torch.randn(linear.out_features, RANK, generator=generator) * 0.2
            if part != "unet":
                # Checkpoints made with transformers 4 name the CLIP modules under text_model.; the
                # in-memory models of transformers 5 (CLIPTextModel) no longer have that level.
                name = name if name.startswith("text_model.") else f"text_model.{name}"
            if naming == "peft":
                tensors[f"{part}.{name}.lora_A.weight"] = down
                tensors[f"{part}.{name}.lora_B.weight"] = up
            else:
                prefix = {"unet": "lora_unet", "text_encoder": "lora_te" if family == "sd1" else "lora_te1", "text_encoder_2": "lora_te2"}[part]
                key = f"{prefix}_{name.replace('.', '_')}"
                tensors[f"{key}.lora_down.weight"] = down
                tensors[f"{key}.lora_up.weight"] = up
                tensors[f"{key}.alpha"] = torch.tensor(float(RANK))
    return tensors


def write_lora(directory: Path, pipeline, family: str, seed: int, naming: str = "peft") -> tuple[Path, str]:
    """A LoRA file for the pipeline; returns its path and SHA-256."""
    path = directory / f"lora-{family}-{naming}-{seed}.safetensors"
    save_file(lora_tensors(pipeline, family, seed, naming), str(path))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()
