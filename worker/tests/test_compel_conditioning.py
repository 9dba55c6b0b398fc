"""promptWeighting compel: the worker's slots give what compel gives with diffusers' own textual inversion.

The reference is compel itself over a copied pipeline into which diffusers' ``load_textual_inversion`` loaded
the embedding under a name, with ``maybe_convert_prompt`` expanding the name: no slot, no placeholder, none of
the worker's tokenizer in front of compel.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from compel import Compel, ReturnedEmbeddingsType
from conditioning_reference import final_layer_norm, with_textual_inversions
from worker_support import random_embedding

from clipgate_worker.conditioning_types import PlacedEmbedding
from clipgate_worker.text_conditioning import WINDOW, TextConditioner


embedding = random_embedding


def conditioner_for(pipeline, family):
    copied = copy.copy(pipeline)
    copied.text_encoder = copy.deepcopy(pipeline.text_encoder)
    if family == "sdxl":
        copied.text_encoder_2 = copy.deepcopy(pipeline.text_encoder_2)
    return TextConditioner(copied, family, slots=64)


class Normalisable:
    """compel 2.5 reads ``text_model.final_layer_norm``, which transformers 5's CLIPTextModel lacks."""

    def __init__(self, model):
        self.model = model
        self.text_model = SimpleNamespace(final_layer_norm=final_layer_norm(model))
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype

    def __call__(self, *arguments, **options):
        return self.model(*arguments, **options)


def compel_reference(pipeline, family: str, prompt: str, clip_skip: int = 0, pooled_prompt: str | None = None):
    """compel's hidden states for ``prompt``; SDXL's pooled output for ``pooled_prompt`` (compel pools the text
    as written, syntax and all, without weights: there the prompt as the user wrote it)."""
    text = pipeline.maybe_convert_prompt(prompt, pipeline.tokenizer)
    if family == "sd1":
        returned = ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NORMALIZED if clip_skip >= 2 else ReturnedEmbeddingsType.LAST_HIDDEN_STATES_NORMALIZED
        compel = Compel(tokenizer=pipeline.tokenizer, text_encoder=Normalisable(pipeline.text_encoder), truncate_long_prompts=False, returned_embeddings_type=returned)
        return compel.build_conditioning_tensor(text), None
    penultimate = ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
    first = Compel(tokenizer=pipeline.tokenizer, text_encoder=pipeline.text_encoder, truncate_long_prompts=False, returned_embeddings_type=penultimate)
    second = Compel(tokenizer=pipeline.tokenizer_2, text_encoder=pipeline.text_encoder_2, truncate_long_prompts=False, returned_embeddings_type=penultimate, requires_pooled=True)
    hidden_2 = second.build_conditioning_tensor(text)[0]
    pooled = second.conditioning_provider.get_pooled_embeddings([pipeline.maybe_convert_prompt(pooled_prompt or prompt, pipeline.tokenizer)])
    return torch.cat([first.build_conditioning_tensor(text), hidden_2], dim=-1), pooled


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
@pytest.mark.parametrize(
    ("prompt", "reference_prompt", "weight"),
    [
        ("a red++ barn, (foggy morning)0.8, easynegative", "a red++ barn, (foggy morning)0.8, embref0", 1.0),
        ("(easynegative)1.2 portrait", "(embref0)1.8 portrait", 1.5),
        ('("a cat easynegative", "a dog").blend(0.7, 0.3)', '("a cat embref0", "a dog").blend(0.7, 0.3)', 1.0),
        ('("a castle", "easynegative at night").and()', '("a castle", "embref0 at night").and()', 1.0),
    ],
)
def test_compel_with_the_embedding_named_matches_compel_with_diffusers_textual_inversion(family, prompt, reference_prompt, weight, request):
    pipeline = request.getfixturevalue(family)
    emb = embedding(family, 3, 31)
    conditioner = conditioner_for(pipeline, family)
    conditioning = conditioner.encode(prompt, "", [PlacedEmbedding(emb, weight, "positive", ("easynegative",))], 0, "compel")
    reference = with_textual_inversions(pipeline, family, {"embref0": emb}).pipeline
    expected, pooled = compel_reference(reference, family, reference_prompt, pooled_prompt=prompt.replace("easynegative", "embref0"))
    assert conditioning.prompt_embeds.shape == expected.shape
    torch.testing.assert_close(conditioning.prompt_embeds, expected, rtol=0, atol=1e-5)
    if pooled is not None:
        torch.testing.assert_close(conditioning.pooled_prompt_embeds, pooled, rtol=0, atol=1e-5)


def test_an_embedding_the_prompt_does_not_name_ends_every_prompt_of_a_blend(sd1):
    emb = embedding("sd1", 2, 32)
    conditioner = conditioner_for(sd1, "sd1")
    conditioning = conditioner.encode('("a cat", "a dog").blend(0.5, 0.5)', "", [PlacedEmbedding(emb, 1.3, "positive")], 0, "compel")
    expected, _ = compel_reference(with_textual_inversions(sd1, "sd1", {"embref0": emb}).pipeline, "sd1", '("a cat (embref0)1.3", "a dog (embref0)1.3").blend(0.5, 0.5)')
    torch.testing.assert_close(conditioning.prompt_embeds, expected, rtol=0, atol=1e-5)


def test_clip_skip_2_on_sd1_is_compels_normalised_penultimate_layer(sd1):
    conditioner = conditioner_for(sd1, "sd1")
    conditioning = conditioner.encode("a (lighthouse)1.3 at dusk", "", [], 2, "compel")
    expected, _ = compel_reference(sd1, "sd1", "a (lighthouse)1.3 at dusk", clip_skip=2)
    torch.testing.assert_close(conditioning.prompt_embeds, expected, rtol=0, atol=1e-5)


def test_a_long_compel_side_and_a_short_one_are_repeated_to_one_length_not_padded_with_empty_prompts(sd1):
    conditioner = conditioner_for(sd1, "sd1")
    long_prompt = ", ".join(f"word{index}" for index in range(40))
    conditioning = conditioner.encode(long_prompt, "blurry--", [], 0, "compel")
    short, _ = compel_reference(sd1, "sd1", "blurry--")
    windows = conditioning.prompt_embeds.shape[1] // WINDOW
    assert windows > 1 and conditioning.negative_prompt_embeds.shape == conditioning.prompt_embeds.shape
    torch.testing.assert_close(conditioning.negative_prompt_embeds, short.repeat(1, windows, 1), rtol=0, atol=1e-5)
