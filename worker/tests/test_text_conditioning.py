"""CLIP injection: rows, emphasis, placement, SDXL's two encoders, eviction and a clean vocabulary."""

from __future__ import annotations

import copy
import hashlib

import pytest
import torch

from clipgate_worker.conditioning_types import LoadedEmbedding, PlacedEmbedding
from clipgate_worker.errors import EmbeddingShapeMismatch
from clipgate_worker.text_conditioning import CHUNK_TOKENS, WINDOW, TextConditioner, apply_emphasis
from clipgate_worker.tiny_pipelines import build_tiny_pipeline


def embedding(family: str, count: int, seed: int) -> LoadedEmbedding:
    generator = torch.Generator().manual_seed(seed)
    vectors = {"clip_l": torch.randn(count, 768, generator=generator)}
    if family == "sdxl":
        vectors["clip_g"] = torch.randn(count, 1280, generator=generator)
    sha256 = hashlib.sha256(f"{family}-{count}-{seed}".encode()).hexdigest()
    return LoadedEmbedding(sha256=sha256, family=family, vectors=vectors)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sd1():
    return build_tiny_pipeline("sd1")


@pytest.fixture(scope="module")
def sdxl():
    return build_tiny_pipeline("sdxl")


def fresh(pipeline, family, slots=64):
    """A conditioner over a private copy of the pipeline's text side, so tests do not share slots."""
    copied = copy.copy(pipeline)
    copied.text_encoder = copy.deepcopy(pipeline.text_encoder)
    if family == "sdxl":
        copied.text_encoder_2 = copy.deepcopy(pipeline.text_encoder_2)
    return copied, TextConditioner(copied, family, slots=slots)


def test_injected_rows_equal_the_files_vectors(sd1):
    pipeline, conditioner = fresh(sd1, "sd1")
    emb = embedding("sd1", 4, 1)
    slots = conditioner.token_ids(emb, {emb.sha256})
    encoder = conditioner.encoders[0]
    rows = encoder.table.weight[[encoder.vocabulary_rows + slot for slot in slots]]
    torch.testing.assert_close(rows, emb.vectors["clip_l"], rtol=0, atol=0)


def test_sdxl_writes_clip_l_to_encoder_1_and_clip_g_to_encoder_2(sdxl):
    pipeline, conditioner = fresh(sdxl, "sdxl")
    emb = embedding("sdxl", 3, 2)
    slots = conditioner.token_ids(emb, {emb.sha256})
    first, second = conditioner.encoders
    assert first.table.weight.shape[1] == 768 and second.table.weight.shape[1] == 1280
    torch.testing.assert_close(first.table.weight[[first.vocabulary_rows + s for s in slots]], emb.vectors["clip_l"], rtol=0, atol=0)
    torch.testing.assert_close(second.table.weight[[second.vocabulary_rows + s for s in slots]], emb.vectors["clip_g"], rtol=0, atol=0)


def independent_encoding(pipeline, tokenizer, encoder_model, emb: LoadedEmbedding, tensor: str, text: str, weight: float) -> torch.Tensor:
    """The classic textual-inversion path, separately: add named tokens to a copied tokenizer and encoder,
    tokenize the prompt with the names in it, then apply A1111's emphasis by hand."""
    tokenizer = copy.deepcopy(tokenizer)
    model = copy.deepcopy(encoder_model)
    names = emb.token_names
    tokenizer.add_tokens(names)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    ids = tokenizer.convert_tokens_to_ids(names)
    with torch.no_grad():
        model.get_input_embeddings().weight[ids] = emb.vectors[tensor]
    for module in model.modules():
        if hasattr(module, "eos_token_id"):
            module.eos_token_id = tokenizer.eos_token_id
    prompt = f"{text} {' '.join(names)}"
    tokens = tokenizer(prompt, padding="max_length", max_length=WINDOW, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(tokens.input_ids).last_hidden_state
    multipliers = torch.tensor([weight if int(t) in ids else 1.0 for t in tokens.input_ids[0]])
    mean = hidden.mean()
    scaled = hidden * multipliers.reshape(1, -1, 1)
    return scaled * (mean / scaled.mean())


@pytest.mark.parametrize("weight", [1.0, 0.6, 1.7])
def test_encoding_with_emphasis_matches_an_independent_computation(sd1, weight):
    pipeline, conditioner = fresh(sd1, "sd1")
    emb = embedding("sd1", 3, 3)
    text = "a lighthouse on a cliff at dusk"
    expected = independent_encoding(sd1, sd1.tokenizer, sd1.text_encoder, emb, "clip_l", text, weight)
    conditioning = conditioner.encode(text, "", [PlacedEmbedding(emb, weight, "positive")])
    torch.testing.assert_close(conditioning.prompt_embeds, expected, rtol=0, atol=1e-5)


def test_negative_weights_land_in_the_negative_prompt_only(sd1):
    pipeline, conditioner = fresh(sd1, "sd1")
    emb = embedding("sd1", 2, 4)
    plain = conditioner.encode("a cat", "blurry", [])
    negative = conditioner.encode("a cat", "blurry", [PlacedEmbedding(emb, 1.5, "negative")])
    torch.testing.assert_close(negative.prompt_embeds, plain.prompt_embeds, rtol=0, atol=0)
    assert not torch.allclose(negative.negative_prompt_embeds, plain.negative_prompt_embeds)
    expected = independent_encoding(sd1, sd1.tokenizer, sd1.text_encoder, emb, "clip_l", "blurry", 1.5)
    torch.testing.assert_close(negative.negative_prompt_embeds, expected, rtol=0, atol=1e-5)


def test_sdxl_pooled_embedding_is_taken_at_the_end_token_despite_higher_slot_ids(sdxl):
    pipeline, conditioner = fresh(sdxl, "sdxl")
    emb = embedding("sdxl", 2, 5)
    conditioning = conditioner.encode("a red barn", "", [PlacedEmbedding(emb, 1.0, "positive")])
    second = conditioner.encoders[1]
    slots = conditioner.slots.lookup(emb.sha256)
    text_ids = sdxl.tokenizer_2("a red barn", add_special_tokens=False).input_ids
    ids = [second.bos, *text_ids, *[second.vocabulary_rows + s for s in slots], second.eos]
    window = ids + [second.pad] * (WINDOW - len(ids))
    with torch.no_grad():
        output = second.model(torch.tensor([window]), output_hidden_states=True)
        eos_position = len(ids) - 1
        expected = second.model.text_projection(output.last_hidden_state[:, eos_position])
    torch.testing.assert_close(conditioning.pooled_prompt_embeds, expected, rtol=0, atol=1e-5)
    assert conditioning.prompt_embeds.shape == (1, WINDOW, 768 + 1280)


def test_sdxl_zero_negative_for_an_empty_negative_prompt_but_not_with_a_negative_embedding(sdxl):
    pipeline, conditioner = fresh(sdxl, "sdxl")
    emb = embedding("sdxl", 1, 6)
    empty = conditioner.encode("a red barn", "", [])
    assert torch.count_nonzero(empty.negative_prompt_embeds) == 0
    with_negative = conditioner.encode("a red barn", "", [PlacedEmbedding(emb, 1.0, "negative")])
    assert torch.count_nonzero(with_negative.negative_prompt_embeds) > 0


def test_an_sd15_file_on_sdxl_is_refused_saying_both_shapes(sdxl):
    pipeline, conditioner = fresh(sdxl, "sdxl")
    with pytest.raises(EmbeddingShapeMismatch, match=r"sd1.*sdxl"):
        conditioner.check_compatible(embedding("sd1", 2, 7))
    with pytest.raises(EmbeddingShapeMismatch):
        conditioner.encode("a cat", "", [PlacedEmbedding(embedding("sd1", 2, 7), 1.0, "positive")])


def test_long_prompts_are_chunked_not_truncated(sd1):
    pipeline, conditioner = fresh(sd1, "sd1")
    words = " ".join(f"word{index}" for index in range(120))
    token_count = len(sd1.tokenizer(words, add_special_tokens=False).input_ids)
    assert token_count > 2 * CHUNK_TOKENS
    conditioning = conditioner.encode(words, "short", [])
    chunks = -(-token_count // CHUNK_TOKENS)
    assert conditioning.prompt_embeds.shape[1] == chunks * WINDOW
    # The negative side gets as many windows, so the two can be batched.
    assert conditioning.negative_prompt_embeds.shape == conditioning.prompt_embeds.shape
    # The last chunk differs from a prompt cut at 75 tokens: nothing was dropped.
    truncated = conditioner.encode(" ".join(words.split()[:20]), "short", [])
    assert truncated.prompt_embeds.shape[1] == WINDOW


def test_eviction_and_reload_keep_outputs_identical(sd1):
    pipeline, conditioner = fresh(sd1, "sd1", slots=4)
    first, second = embedding("sd1", 3, 8), embedding("sd1", 3, 9)
    before = conditioner.encode("a harbour", "", [PlacedEmbedding(first, 1.2, "positive")])
    conditioner.encode("a harbour", "", [PlacedEmbedding(second, 1.2, "positive")])
    assert conditioner.slots.resident() == [second.sha256]
    after = conditioner.encode("a harbour", "", [PlacedEmbedding(first, 1.2, "positive")])
    torch.testing.assert_close(after.prompt_embeds, before.prompt_embeds, rtol=0, atol=0)


def test_a_job_after_a_failed_job_sees_a_clean_vocabulary(sd1):
    pipeline, conditioner = fresh(sd1, "sd1", slots=4)
    encoder = conditioner.encoders[0]
    vocabulary = encoder.table.weight[: encoder.vocabulary_rows].clone()
    tokenizer_length = len(pipeline.tokenizer)
    plain = conditioner.encode("a quiet street", "", [])
    too_many = [PlacedEmbedding(embedding("sd1", 3, 10), 1.0, "positive"), PlacedEmbedding(embedding("sd1", 3, 11), 1.0, "positive")]
    with pytest.raises(Exception):
        conditioner.encode("a quiet street", "", too_many)
    with pytest.raises(EmbeddingShapeMismatch):
        conditioner.encode("a quiet street", "", [PlacedEmbedding(embedding("sdxl", 1, 12), 1.0, "positive")])
    again = conditioner.encode("a quiet street", "", [])
    torch.testing.assert_close(again.prompt_embeds, plain.prompt_embeds, rtol=0, atol=0)
    torch.testing.assert_close(encoder.table.weight[: encoder.vocabulary_rows], vocabulary, rtol=0, atol=0)
    assert len(pipeline.tokenizer) == tokenizer_length


def test_emphasis_restores_the_mean():
    hidden = torch.randn(1, WINDOW, 8) + 0.5
    multipliers = torch.ones(WINDOW)
    multipliers[3:5] = 2.0
    emphasised = apply_emphasis(hidden, multipliers)
    torch.testing.assert_close(emphasised.mean(), hidden.mean())
    torch.testing.assert_close(apply_emphasis(hidden, torch.ones(WINDOW)), hidden)


def test_an_embedding_never_straddles_two_windows(sd1):
    pipeline, conditioner = fresh(sd1, "sd1")
    words = []
    while len(sd1.tokenizer(" ".join(words), add_special_tokens=False).input_ids) < CHUNK_TOKENS - 7:
        words.append(f"word{len(words)}")
    text = " ".join(words)
    assert CHUNK_TOKENS - 7 <= len(sd1.tokenizer(text, add_special_tokens=False).input_ids) < CHUNK_TOKENS
    emb = embedding("sd1", 8, 13)
    conditioning = conditioner.encode(text, "", [PlacedEmbedding(emb, 1.0, "positive")])
    assert conditioning.prompt_embeds.shape[1] == 2 * WINDOW
    # The second window holds the whole embedding, exactly as a window of the embedding alone would.
    alone = conditioner.encode("", "", [PlacedEmbedding(emb, 1.0, "positive")])
    torch.testing.assert_close(conditioning.prompt_embeds[:, WINDOW:], alone.prompt_embeds, rtol=0, atol=1e-5)
