from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

from clipgate_worker.tiny_pipelines import CLIP_G_WIDTH, CLIP_L_WIDTH, PROJECTION_DIM, build_tiny_pipeline
from clipgate_worker.tiny_tokenizer import MERGES, build_tiny_tokenizer, byte_to_unicode, learn_merges, write_tokenizer_files


def test_the_tokenizer_files_have_clips_layout(tmp_path: Path) -> None:
    size = write_tokenizer_files(tmp_path)
    vocabulary = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    merges = (tmp_path / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0] == "#version: 0.2" and len(merges) - 1 == MERGES
    assert size == len(vocabulary) == 512 + MERGES + 2
    by_id = sorted(vocabulary, key=vocabulary.get)
    characters = list(byte_to_unicode().values())
    assert by_id[:256] == characters
    assert by_id[256:512] == [character + "</w>" for character in characters]
    assert by_id[-2:] == ["<|startoftext|>", "<|endoftext|>"]


def test_prompts_split_into_multi_letter_tokens() -> None:
    tokenizer = build_tiny_tokenizer()
    ids = tokenizer("a photo of a cat, masterpiece!").input_ids
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert (ids[0], ids[-1]) == (tokenizer.bos_token_id, tokenizer.eos_token_id) == (len(tokenizer) - 2, len(tokenizer) - 1)
    assert {"photo</w>", "cat</w>", "a</w>"} <= set(tokens)
    assert 6 <= len(ids) <= 14
    # Anything outside the built-in corpus still tokenizes: byte fallback, never an unknown token.
    assert tokenizer.unk_token_id not in tokenizer("zebra ünïcödé 🐱").input_ids[1:-1]
    assert tokenizer.model_max_length == 77 and tokenizer.pad_token == "<|endoftext|>"
    # SDXL's second tokenizer pads with "!", id 0, as the real one does.
    assert build_tiny_tokenizer(pad_token="!").pad_token_id == 0 == vocabulary_id("!")


def vocabulary_id(token: str) -> int:
    return int(build_tiny_tokenizer().convert_tokens_to_ids(token))


def test_merges_are_learned_deterministically() -> None:
    words = ["the", "the", "then", "hat"]
    assert learn_merges(words, 3) == learn_merges(list(reversed(words)), 3) == [("t", "h"), ("th", "e</w>"), ("a", "t</w>")]


def test_sd1_is_tiny_but_has_real_clip_widths() -> None:
    pipeline = build_tiny_pipeline("sd1")
    assert isinstance(pipeline, StableDiffusionPipeline)
    text = pipeline.text_encoder.config
    assert (text.hidden_size, text.max_position_embeddings, text.vocab_size) == (CLIP_L_WIDTH, 77, len(pipeline.tokenizer))
    assert (text.bos_token_id, text.eos_token_id) == (pipeline.tokenizer.bos_token_id, pipeline.tokenizer.eos_token_id)
    assert pipeline.unet.config.cross_attention_dim == CLIP_L_WIDTH
    assert pipeline.vae_scale_factor == 8
    assert pipeline.safety_checker is None
    assert sum(parameter.numel() for parameter in pipeline.components["unet"].parameters()) < 5_000_000


def test_sdxl_has_two_encoders_and_added_time_conditioning() -> None:
    pipeline = build_tiny_pipeline("sdxl")
    assert isinstance(pipeline, StableDiffusionXLPipeline)
    assert pipeline.text_encoder.config.hidden_size == CLIP_L_WIDTH
    assert pipeline.text_encoder_2.config.hidden_size == CLIP_G_WIDTH
    assert pipeline.text_encoder_2.config.projection_dim == PROJECTION_DIM
    assert pipeline.tokenizer_2.pad_token == "!"
    assert pipeline.unet.config.cross_attention_dim == CLIP_L_WIDTH + CLIP_G_WIDTH
    assert pipeline.unet.config.addition_embed_type == "text_time"
    assert pipeline.unet.add_embedding.linear_1.in_features == PROJECTION_DIM + 6 * 8


def test_builds_are_identical_and_leave_the_callers_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = build_tiny_pipeline("sd1")
    assert torch.equal(torch.rand(3), expected)
    second = build_tiny_pipeline("sd1")
    for (name, left), (_, right) in zip(first.unet.state_dict().items(), second.unet.state_dict().items()):
        assert torch.equal(left, right), name
    assert torch.equal(first.text_encoder.get_input_embeddings().weight, second.text_encoder.get_input_embeddings().weight)


def test_only_sd1_and_sdxl_exist() -> None:
    with pytest.raises(ValueError, match="found 'flux'"):
        build_tiny_pipeline("flux")  # type: ignore[arg-type]
