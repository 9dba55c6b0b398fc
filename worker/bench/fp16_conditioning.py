"""float16 conditioning against float32, on full-size text encoders with random weights.

GPU workers run CLIP in float16; the worker's tests run it in float32. This measures what the cast costs, on
the real architectures (SD 1.5: CLIP ViT-L, 12 layers; SDXL: ViT-L + OpenCLIP bigG, 32 layers) with the
LayerNorm and position statistics of a trained model (tiny_pipelines.with_trained_statistics), for the
prompts users send: plain, A1111-weighted, compel-weighted, long (three windows), with embeddings in place
and appended, and an embedding whose values reach the top of float16's range.

    python -m bench.fp16_conditioning              # CUDA when there is one, else the CPU (a few minutes)
    python -m bench.fp16_conditioning --json out.json

Needs diffusers and compel (with pyparsing) beside PyTorch and transformers: on a machine without internet,
carry their wheels (all three are pure Python).

Run from worker/. Prints, per family and prompt, the worst absolute difference and the worst difference
relative to the largest float32 value, and that no value is NaN or infinite.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import time
from types import SimpleNamespace
from typing import Any

import torch

from bench.gpu_bench import full_text_side
from clipgate_worker.conditioning_types import Family, LoadedEmbedding, PlacedEmbedding
from clipgate_worker.prompt_weighting import PromptWeighting
from clipgate_worker.text_conditioning import TextConditioner
from clipgate_worker.tiny_pipelines import with_trained_statistics

LONG = ", ".join(f"detail{index}" for index in range(60))
#: (name, positive, negative, promptWeighting, the embedding's mentions)
PROMPTS: list[tuple[str, str, str, PromptWeighting | None, tuple[str, ...]]] = [
    ("plain", "a lighthouse on a cliff at dusk, oil painting", "blurry, low quality", None, ()),
    ("sdEmbeds", "a (lighthouse:1.3) on a [cliff] at dusk BREAK ((oil painting))", "(blurry:1.4), low quality", "sdEmbeds", ()),
    ("compel", "a lighthouse++ on a (cliff at dusk)0.8, oil painting", "blurry--, low quality", "compel", ()),
    ("long", LONG, "blurry", None, ()),
    ("in place", "a lighthouse, trigword, at dusk", "blurry", None, ("trigword",)),
    ("sdEmbeds in place", "a lighthouse, (trigword:1.3), at dusk", "blurry", "sdEmbeds", ("trigword",)),
]


def embedding(family: Family, seed: int, scale: float) -> LoadedEmbedding:
    """Random vectors at a trained embedding's scale (token-embedding rows have a norm near 0.4-1)."""
    generator = torch.Generator().manual_seed(seed)
    vectors = {"clip_l": torch.randn(4, 768, generator=generator) * scale}
    if family == "sdxl":
        vectors["clip_g"] = torch.randn(4, 1280, generator=generator) * scale
    return LoadedEmbedding(sha256=hashlib.sha256(f"fp16-{family}-{seed}-{scale}".encode()).hexdigest(), family=family, vectors=vectors)


def conditioner(side: dict[str, Any], family: Family, device: torch.device, dtype: torch.dtype) -> TextConditioner:
    copied = {name: (copy.deepcopy(part).to(device, dtype) if isinstance(part, torch.nn.Module) else part) for name, part in side.items()}
    pipeline = SimpleNamespace(**copied, config=SimpleNamespace(force_zeros_for_empty_prompt=True))
    return TextConditioner(pipeline, family, slots=64)


def compare(family: Family, device: torch.device) -> list[dict[str, Any]]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        side = full_text_side(family)
        for name in ("text_encoder", "text_encoder_2"):
            if name in side:
                with_trained_statistics(side[name])
    full = conditioner(side, family, device, torch.float32)
    half = conditioner(side, family, device, torch.float16)
    rows = []
    for scale, label in ((0.02, "embedding at token scale"), (3000.0, "embedding near float16's top")):
        emb = embedding(family, 7, scale)
        for name, positive, negative, weighting, mentions in PROMPTS:
            placed = [PlacedEmbedding(emb, 1.2, "positive", mentions)]
            started = time.perf_counter()
            reference = full.encode(positive, negative, placed, 0, weighting)
            try:
                cast = half.encode(positive, negative, placed, 0, weighting)
            except Exception as error:  # the worker refuses rather than returning NaN: record which way it ended
                rows.append({"family": family, "embedding": label, "prompt": name, "outcome": f"{type(error).__name__}: {error}"})
                continue
            worst_abs = 0.0
            worst_rel = 0.0
            finite = True
            for field in ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"):
                ours, theirs = getattr(cast, field), getattr(reference, field)
                if ours is None or theirs is None:
                    continue
                finite = finite and bool(torch.isfinite(ours).all())
                difference = (ours.float() - theirs).abs().max().item()
                worst_abs = max(worst_abs, difference)
                worst_rel = max(worst_rel, difference / max(theirs.abs().max().item(), 1e-12))
            rows.append(
                {
                    "family": family,
                    "embedding": label,
                    "prompt": name,
                    "outcome": "finite" if finite else "NaN or infinite",
                    "worst_abs": worst_abs,
                    "worst_rel": worst_rel,
                    "seconds": time.perf_counter() - started,
                }
            )
    return rows


def report(rows: list[dict[str, Any]], device: str) -> str:
    lines = [f"float16 vs float32 conditioning on {device}", "", "| family | embedding | prompt | outcome | worst abs | worst / max |f32| |", "|---|---|---|---|---|---|"]
    for row in rows:
        if "worst_abs" in row:
            lines.append(f"| {row['family']} | {row['embedding']} | {row['prompt']} | {row['outcome']} | {row['worst_abs']:.2e} | {row['worst_rel']:.2e} |")
        else:
            lines.append(f"| {row['family']} | {row['embedding']} | {row['prompt']} | {row['outcome']} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--family", choices=["sd1", "sdxl"], action="append", help="only these families (default both)")
    arguments = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = [row for family in arguments.family or ["sd1", "sdxl"] for row in compare(family, device)]  # type: ignore[arg-type]
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    print(report(rows, name))
    if arguments.json:
        with open(arguments.json, "w", encoding="utf-8") as handle:
            json.dump({"device": name, "rows": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
