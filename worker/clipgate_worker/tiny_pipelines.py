"""Tiny, randomly initialised Stable Diffusion pipelines, built in process without any download.

They are architecturally faithful where embeddings touch them — real CLIP text-encoder widths (768 for
``clip_l``, 1280 for ``clip_g``), real special tokens, a 77-token window, SDXL's two encoders and its
"text_time" added conditioning — and tiny everywhere else, so a whole job runs on a CPU in a fraction of a
second. They exist for tests and for running the worker without a GPU (``WORKER_TINY=1``): their images
are noise. Weights are drawn from a fixed torch seed, so every build is identical.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from .conditioning_types import Family
from .tiny_tokenizer import MODEL_MAX_LENGTH, build_tiny_tokenizer

SEED = 0xC11B
TextEncoder = TypeVar("TextEncoder", CLIPTextModel, CLIPTextModelWithProjection)
CLIP_L_WIDTH = 768
CLIP_G_WIDTH = 1280
#: SDXL's pooled projection, shrunk (the real one is 1280); only the UNet's added embedding reads it.
PROJECTION_DIM = 32
TIME_EMBED_DIM = 8
#: SDXL's added time ids: original size, crop offset, target size (two numbers each).
TIME_IDS = 6


def build_tiny_pipeline(family: Family) -> DiffusionPipeline:
    """A tiny pipeline of the family, on the CPU in float32, identical on every call."""
    # A private RNG stream: building a pipeline must not disturb (or depend on) the caller's torch seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        if family == "sd1":
            pipeline = _sd1()
        elif family == "sdxl":
            pipeline = _sdxl()
        else:
            raise ValueError(f"tiny pipelines exist for families 'sd1' and 'sdxl'; found {family!r}")
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _sd1() -> StableDiffusionPipeline:
    tokenizer = build_tiny_tokenizer()
    return StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=with_trained_statistics(CLIPTextModel(_text_config(tokenizer, CLIP_L_WIDTH))),
        tokenizer=tokenizer,
        unet=_unet(cross_attention_dim=CLIP_L_WIDTH),
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _sdxl() -> StableDiffusionXLPipeline:
    tokenizer = build_tiny_tokenizer()
    tokenizer_2 = build_tiny_tokenizer(pad_token="!")
    return StableDiffusionXLPipeline(
        vae=_vae(),
        text_encoder=with_trained_statistics(CLIPTextModel(_text_config(tokenizer, CLIP_L_WIDTH))),
        text_encoder_2=with_trained_statistics(CLIPTextModelWithProjection(_text_config(tokenizer_2, CLIP_G_WIDTH, PROJECTION_DIM))),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=_unet(
            cross_attention_dim=CLIP_L_WIDTH + CLIP_G_WIDTH,
            addition_embed_type="text_time",
            addition_time_embed_dim=TIME_EMBED_DIM,
            projection_class_embeddings_input_dim=PROJECTION_DIM + TIME_IDS * TIME_EMBED_DIM,
        ),
        scheduler=_scheduler(),
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )


def with_trained_statistics(encoder: TextEncoder) -> TextEncoder:
    """LayerNorms and position embeddings as training leaves them, not as initialisation does.

    With LayerNorm's identity affine every normalised position has mean 0, and zero-mean position embeddings
    keep the residual stream's mean near 0 too, so a window's mean is rounding noise and A1111's mean restore
    divides noise by noise: emphasis tests would pass whatever the code did. Drawn LayerNorm weights, a bias
    with a mean of its own and offset position embeddings give every layer's windows a mean far from zero."""
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(1 + 0.3 * torch.randn_like(module.weight))
                module.bias.copy_(0.2 + 0.3 * torch.randn_like(module.bias))
        # CLIPTextModel has it at embeddings.…, CLIPTextModelWithProjection at text_model.embeddings.…
        positions = next(module for name, module in encoder.named_modules() if name.endswith("position_embedding")).weight
        positions.add_(0.3 + 0.1 * torch.randn_like(positions))
    return encoder


def _text_config(tokenizer: CLIPTokenizer, width: int, projection_dim: int = PROJECTION_DIM) -> CLIPTextConfig:
    # Two layers: enough for clip skip (SDXL reads the penultimate layer, clipSkip 2 the one before it)
    # while the real widths keep the token-embedding table the shape real embeddings need.
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MODEL_MAX_LENGTH,
        projection_dim=projection_dim,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _unet(cross_attention_dim: int, **added_conditioning: object) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=8,
        norm_num_groups=8,
        cross_attention_dim=cross_attention_dim,
        **added_conditioning,
    )


def _vae() -> AutoencoderKL:
    # Four blocks give the real 8x downscale, so a 128x128 image is a 16x16 latent, as on the real model.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=128,
    )


def _scheduler() -> EulerDiscreteScheduler:
    # Stable Diffusion's own noise schedule, so scheduler swaps from this config behave as on real models.
    return EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )
