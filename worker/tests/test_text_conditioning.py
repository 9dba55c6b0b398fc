"""CLIP injection: rows, emphasis, placement, SDXL's two encoders, eviction and a clean vocabulary."""

from __future__ import annotations

import copy
import hashlib

import pytest
import torch

from conditioning_reference import a1111_encode, with_textual_inversions
from worker_support import random_embedding

from clipgate_worker.conditioning_types import LoadedEmbedding, PlacedEmbedding
from clipgate_worker.errors import EmbeddingFileInvalid, EmbeddingShapeMismatch, EmbeddingSlotsExhausted
from clipgate_worker.text_conditioning import CHUNK_TOKENS, WINDOW, TextConditioner, apply_emphasis


embedding = random_embedding


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


# --- Conventions users know from A1111 and ComfyUI (issue 11). Each would fail on the worker before it. ---


def reference_side(reference, family: str, prompt: str, clip_skip: int = 0) -> torch.Tensor:
    """A side as A1111 encodes it: both SDXL encoders side by side, bigG padded with id 0 after the end token."""
    first, _ = a1111_encode(reference, prompt, clip_skip)
    if family != "sdxl":
        return first
    second, _ = a1111_encode(reference, prompt, clip_skip, pad_after_end=0, second=True)
    return torch.cat([first, second], dim=-1)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
@pytest.mark.parametrize(
    ("prompt", "reference_prompt"),
    [
        ("a (red:1.3) barn, [foggy] morning, ((old)) wood", None),
        ("portrait BREAK (soft light:0.8) BREAK \\(studio\\)", None),
        ("(easynegative:1.2), blurry, [low quality]", "(embref0:1.2), blurry, [low quality]"),
    ],
)
def test_sd_embeds_weighting_matches_a1111(family, prompt, reference_prompt, request):
    pipeline, conditioner = fresh(request.getfixturevalue(family), family)
    emb = embedding(family, 3, 21)
    reference = with_textual_inversions(pipeline, family, {"embref0": emb})
    placed = [PlacedEmbedding(emb, 1.0, "positive", ("easynegative",))] if reference_prompt else []
    conditioning = conditioner.encode(prompt, "", placed, 0, "sdEmbeds")
    expected = reference_side(reference, family, reference_prompt or prompt)
    assert conditioning.prompt_embeds.shape == expected.shape
    torch.testing.assert_close(conditioning.prompt_embeds, expected, rtol=0, atol=1e-5)
    # Not by accident: the same prompt read literally is another conditioning.
    literal = conditioner.encode(prompt, "", placed)
    assert (literal.prompt_embeds.shape != expected.shape) or (literal.prompt_embeds - expected).abs().max() > 1e-3


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_a_trigger_word_in_the_prompt_is_where_the_vectors_go_and_they_are_not_appended(family, request):
    pipeline, conditioner = fresh(request.getfixturevalue(family), family)
    emb = embedding(family, 2, 22)
    reference = with_textual_inversions(pipeline, family, {"embref0": emb})
    conditioning = conditioner.encode("a cat", "easynegative, blurry, watermark", [PlacedEmbedding(emb, 1.0, "negative", ("easynegative",))])
    expected = reference_side(reference, family, "embref0, blurry, watermark")
    torch.testing.assert_close(conditioning.negative_prompt_embeds, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_a_prompt_weight_and_the_embedding_weight_multiply(family, request):
    pipeline, conditioner = fresh(request.getfixturevalue(family), family)
    emb = embedding(family, 2, 23)
    reference = with_textual_inversions(pipeline, family, {"embref0": emb})
    weighted = conditioner.encode("(easynegative:1.2), blurry", "", [PlacedEmbedding(emb, 1.5, "positive", ("easynegative",))], 0, "sdEmbeds")
    torch.testing.assert_close(weighted.prompt_embeds, reference_side(reference, family, "(embref0:1.8), blurry"), rtol=0, atol=1e-5)
    literal = conditioner.encode("easynegative, blurry", "", [PlacedEmbedding(emb, 1.5, "positive", ("easynegative",))])
    torch.testing.assert_close(literal.prompt_embeds, reference_side(reference, family, "(embref0:1.5), blurry"), rtol=0, atol=1e-5)


def test_the_marker_places_an_embedding_and_one_not_named_follows_the_text(sd1):
    pipeline, conditioner = fresh(sd1, "sd1")
    named, other = embedding("sd1", 2, 24), embedding("sd1", 1, 25)
    reference = with_textual_inversions(pipeline, "sd1", {"embref0": named, "embrefb": other})
    marker = "<embedding:civitai:7808@9208>"
    conditioning = conditioner.encode(
        f"{marker} portrait, detailed", "", [PlacedEmbedding(named, 1.0, "positive", (marker,)), PlacedEmbedding(other, 1.0, "positive")]
    )
    torch.testing.assert_close(conditioning.prompt_embeds, reference_side(reference, "sd1", "embref0 portrait, detailed embrefb"), rtol=0, atol=1e-5)


@pytest.mark.parametrize("clip_skip", [0, 1, 2])
def test_sdxl_takes_the_penultimate_layer_whatever_clip_skip_says_as_diffusers_does_without_it(sdxl, clip_skip):
    pipeline, conditioner = fresh(sdxl, "sdxl")
    conditioning = conditioner.encode("a lighthouse at dusk", "", [], clip_skip)
    prompt_embeds, _, pooled, _ = pipeline.encode_prompt("a lighthouse at dusk", device="cpu", do_classifier_free_guidance=False, clip_skip=None)
    torch.testing.assert_close(conditioning.prompt_embeds, prompt_embeds, rtol=0, atol=1e-5)
    torch.testing.assert_close(conditioning.pooled_prompt_embeds, pooled, rtol=0, atol=1e-5)


def test_sd1_clip_skip_2_is_the_penultimate_layer_normalised_as_a1111(sd1):
    pipeline, conditioner = fresh(sd1, "sd1")
    reference = with_textual_inversions(pipeline, "sd1", {})
    conditioning = conditioner.encode("a lighthouse at dusk", "", [], 2)
    torch.testing.assert_close(conditioning.prompt_embeds, reference_side(reference, "sd1", "a lighthouse at dusk", clip_skip=2), rtol=0, atol=1e-5)


def noise_prediction(pipeline, conditioning: torch.Tensor) -> torch.Tensor:
    generator = torch.Generator().manual_seed(5)
    latents = torch.randn(1, 4, 16, 16, generator=generator)
    with torch.no_grad():
        return pipeline.unet(latents, 500, encoder_hidden_states=conditioning).sample


@pytest.mark.parametrize(("positive_words", "negative_words", "windows"), [(40, 3, 2), (40, 60, 6)])
def test_the_shorter_side_is_repeated_so_its_prediction_is_what_it_would_be_alone(sd1, positive_words, negative_words, windows):
    pipeline, conditioner = fresh(sd1, "sd1")
    positive = " ".join(f"word{index}" for index in range(positive_words))
    negative = " ".join(f"blurry{index}" for index in range(negative_words))
    together = conditioner.encode(positive, negative, [])
    alone = conditioner.encode(negative, negative, [])
    # 2 and 1 windows, then 2 and 3: both sides become the least common multiple of the two.
    assert together.negative_prompt_embeds.shape[1] == windows * WINDOW > alone.negative_prompt_embeds.shape[1]
    assert together.prompt_embeds.shape == together.negative_prompt_embeds.shape
    torch.testing.assert_close(
        noise_prediction(sd1, together.negative_prompt_embeds), noise_prediction(sd1, alone.negative_prompt_embeds), rtol=0, atol=1e-5
    )


def test_a_clip_g_window_closed_early_is_padded_with_id_0_after_its_end_token(sdxl):
    pipeline, conditioner = fresh(sdxl, "sdxl")
    words = []
    while len(sdxl.tokenizer(" ".join(words), add_special_tokens=False).input_ids) < CHUNK_TOKENS - 5:
        words.append(f"word{len(words)}")
    text = " ".join(words)
    emb = embedding("sdxl", 8, 26)
    reference = with_textual_inversions(pipeline, "sdxl", {"embref0": emb})
    conditioning = conditioner.encode(text, "", [PlacedEmbedding(emb, 1.0, "positive")])
    assert conditioning.prompt_embeds.shape[1] == 2 * WINDOW
    torch.testing.assert_close(conditioning.prompt_embeds, reference_side(reference, "sdxl", f"{text} embref0"), rtol=0, atol=1e-5)


def test_values_beyond_float16_are_refused_after_the_cast_not_turned_into_nan(sd1):
    pipeline = copy.copy(sd1)
    pipeline.text_encoder = copy.deepcopy(sd1.text_encoder).to(torch.float16)
    conditioner = TextConditioner(pipeline, "sd1", slots=16)
    vectors = torch.randn(2, 768, generator=torch.Generator().manual_seed(27))
    vectors[0, 5] = 7e4
    overflowing = LoadedEmbedding(sha256=hashlib.sha256(b"7e4").hexdigest(), family="sd1", vectors={"clip_l": vectors})
    with pytest.raises(EmbeddingFileInvalid, match=r"70000.*65504") as refused:
        conditioner.encode("a cat", "", [PlacedEmbedding(overflowing, 1.0, "positive")])
    assert refused.value.retryable is False
    # The same encoder in float16 still encodes what fits.
    assert torch.isfinite(conditioner.encode("a cat", "", []).prompt_embeds).all()


def test_more_vectors_than_slots_is_an_error_of_its_own_that_no_retry_can_fix(sd1):
    pipeline, conditioner = fresh(sd1, "sd1", slots=16)
    too_many = [PlacedEmbedding(embedding("sd1", 10, 28), 1.0, "positive"), PlacedEmbedding(embedding("sd1", 10, 29), 1.0, "negative")]
    with pytest.raises(EmbeddingSlotsExhausted) as exhausted:
        conditioner.encode("a cat", "", too_many)
    assert exhausted.value.code == "embeddingSlotsExhausted" and exhausted.value.retryable is False


def test_the_tiny_encoders_windows_have_a_mean_far_from_zero_so_emphasis_tests_mean_something(sd1, sdxl):
    for family, pipeline in (("sd1", sd1), ("sdxl", sdxl)):
        conditioning = fresh(pipeline, family)[1].encode("a lighthouse on a cliff", "", [])
        assert abs(float(conditioning.prompt_embeds.mean())) > 0.05
