"""GPU benchmark of the reference worker's CLIP injection, next to diffusers' load_textual_inversion.

Builds full-size SD 1.5 and SDXL architectures with random weights (nothing is downloaded), then for each:
  * images/s at 512² (SD 1.5) and 1024² (SDXL), 20 steps, with 0, 1 and 3 embeddings, through the worker's
    Generator (embeddings resident after their first use);
  * the injection overhead when warm: prompt encoding with the embeddings minus without, in ms and as a share
    of the whole job;
  * cold vs warm cost of one embedding: reading its canonical file and writing its rows, vs finding it resident;
  * the baseline in the same run: plain diffusers, load_textual_inversion before each request and
    unload_textual_inversion after it.

    python -m bench.gpu_bench                 # on a GPU machine (fp16)
    python -m bench.gpu_bench --tiny          # end-to-end check on any CPU, tiny pipelines, tiny sizes

With --batching it measures batching instead: images/s when the Generator draws compatible jobs together, in
batches of 1 (one job at a time, as before batching), 2, 4 and 8, each job with its own prompt, seed and
embedding and all with the same LoRA (a batch shares one LoRA set), at 512² (SD 1.5) and 1024² (SDXL), 20 steps,
and the ratio of each to one job at a time:

    python -m bench.gpu_bench --batching          # on a GPU machine (fp16, random full-size weights)
    python -m bench.gpu_bench --batching --tiny   # the same on a CPU with tiny pipelines, to check the script

Run from worker/. Prints a table; with --json PATH also writes the numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from safetensors.torch import save_file

from clipgate_worker.conditioning_types import Family, PlacedEmbedding
from clipgate_worker.embedding_file import load_embedding_file
from clipgate_worker.generate import Generator, encode_image
from clipgate_worker.lora_adapters import PlacedLora
from clipgate_worker.models import BatchJob
from clipgate_worker.text_conditioning import TextConditioner

PROMPT = "a lighthouse on a cliff at dusk, dramatic clouds, oil painting, highly detailed"
NEGATIVE = "blurry, low quality"
VECTORS_PER_EMBEDDING = 4


# --------------------------------------------------------------------------- full-size random pipelines


def _text_config(tokenizer: Any, hidden: int, layers: int, heads: int, intermediate: int, act: str, projection: int) -> Any:
    from transformers import CLIPTextConfig

    # The real vocabulary size, so the embedding table is real-sized; the tokenizer is generated locally
    # (no downloads) and uses the first ids of it.
    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        hidden_act=act,
        projection_dim=projection,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def full_text_side(family: Family) -> dict[str, Any]:
    """The real text encoders of SD 1.5 (CLIP ViT-L) or SDXL (ViT-L + OpenCLIP bigG), random weights, fp32."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from clipgate_worker.tiny_tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    side: dict[str, Any] = {"tokenizer": tokenizer, "text_encoder": CLIPTextModel(_text_config(tokenizer, 768, 12, 12, 3072, "quick_gelu", 768))}
    if family == "sdxl":
        tokenizer_2 = build_tiny_tokenizer(pad_token="!")
        side["tokenizer_2"] = tokenizer_2
        side["text_encoder_2"] = CLIPTextModelWithProjection(_text_config(tokenizer_2, 1280, 32, 20, 5120, "gelu", 1280))
    return side


def full_pipeline(family: Family, device: torch.device, dtype: torch.dtype) -> Any:
    """SD 1.5 or SDXL with their real architectures and random weights, built on the device."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel

    vae_config = dict(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    )
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    with torch.device(device):
        text = full_text_side(family)
        tokenizer, text_encoder = text["tokenizer"], text["text_encoder"]
        vae = AutoencoderKL(**vae_config, sample_size=512 if family == "sd1" else 1024)
        if family == "sd1":
            unet = UNet2DConditionModel(
                sample_size=64,
                block_out_channels=(320, 640, 1280, 1280),
                layers_per_block=2,
                cross_attention_dim=768,
                attention_head_dim=8,
                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            )
            pipeline = StableDiffusionPipeline(
                vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                safety_checker=None, feature_extractor=None, requires_safety_checker=False,
            )
        else:
            tokenizer_2, text_encoder_2 = text["tokenizer_2"], text["text_encoder_2"]
            unet = UNet2DConditionModel(
                sample_size=128,
                block_out_channels=(320, 640, 1280),
                layers_per_block=2,
                transformer_layers_per_block=(1, 2, 10),
                attention_head_dim=(5, 10, 20),
                cross_attention_dim=2048,
                use_linear_projection=True,
                addition_embed_type="text_time",
                addition_time_embed_dim=256,
                projection_class_embeddings_input_dim=2816,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            )
            pipeline = StableDiffusionXLPipeline(
                vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
                tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler,
            )
    pipeline.to(device, dtype)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def tiny_pipeline(family: Family) -> Any:
    from clipgate_worker.tiny_pipelines import build_tiny_pipeline

    pipeline = build_tiny_pipeline(family)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


# --------------------------------------------------------------------------- embeddings and jobs


def write_embedding(directory: Path, family: Family, seed: int) -> tuple[Path, str]:
    """A canonical clipgate embedding file of random vectors; returns its path and SHA-256."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {"clip_l": torch.randn(VECTORS_PER_EMBEDDING, 768, generator=generator) * 0.01}
    if family == "sdxl":
        tensors["clip_g"] = torch.randn(VECTORS_PER_EMBEDDING, 1280, generator=generator) * 0.01
    path = directory / f"{family}-{seed}.safetensors"
    save_file(tensors, str(path), metadata={"format": "clipgate-embedding", "version": "1", "family": family, "vectors": str(VECTORS_PER_EMBEDDING)})
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def job(family: Family, size: int, steps: int, seed: int = 1234) -> SimpleNamespace:
    # The fields Generator.run reads, without JobSpec's pydantic parser (not on the GPU image).
    return SimpleNamespace(
        job_id="bench",
        positive_prompt=PROMPT,
        negative_prompt=NEGATIVE,
        width=size,
        height=size,
        steps=steps,
        cfg_scale=7.0,
        seed=seed,
        scheduler="Default",
        clip_skip=0,
        prompt_weighting=None,
        number_results=1,
        output_format="PNG",
        output_quality=95,
    )


def timed(device: torch.device, action: Callable[[], Any]) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    action()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def median_ms(device: torch.device, action: Callable[[], Any], repeats: int) -> float:
    return statistics.median(timed(device, action) for _ in range(repeats)) * 1000


# --------------------------------------------------------------------------- the benchmark


def bench_family(family: Family, device: torch.device, dtype: torch.dtype, tiny: bool, repeats: int) -> dict[str, Any]:
    size = (64 if family == "sd1" else 64) if tiny else (512 if family == "sd1" else 1024)
    steps = 2 if tiny else 20
    build_started = time.perf_counter()
    pipeline = tiny_pipeline(family) if tiny else full_pipeline(family, device, dtype)
    if tiny:
        pipeline.to(device)
    build_seconds = time.perf_counter() - build_started
    directory = Path(tempfile.mkdtemp(prefix="clipgate-bench-"))
    files = [write_embedding(directory, family, seed) for seed in range(1, 4)]
    loaded = [load_embedding_file(path, sha) for path, sha in files]
    placed = [PlacedEmbedding(embedding, 1.0 if index != 1 else 0.8, "positive" if index != 1 else "negative") for index, embedding in enumerate(loaded)]

    generator = Generator(pipeline, family, device)
    spec = job(family, size, steps)
    # Untimed jobs first: kernels compiled and cached, GPU clocks up.
    for _ in range(2 if tiny else 3):
        generator.run(spec, [], lambda _step, _steps: None)
    results: dict[str, Any] = {"family": family, "size": size, "steps": steps, "build_seconds": round(build_seconds, 1)}

    # Ours: images/s with 0, 1 and 3 embeddings (warm: the first run of each makes them resident). The
    # variants alternate round by round, so clock ramps and thermal drift hit all of them alike.
    variants = {count: placed[:count] for count in (0, 1, 3)}
    for chosen in variants.values():
        generator.run(spec, chosen, lambda _step, _steps: None)
    seconds: dict[int, list[float]] = {count: [] for count in variants}
    for _ in range(repeats):
        for count, chosen in variants.items():
            seconds[count].append(timed(device, lambda chosen=chosen: generator.run(spec, chosen, lambda _step, _steps: None)))
    for count in variants:
        results[f"ours_{count}_images_per_s"] = round(1 / statistics.median(seconds[count]), 3)
        results[f"ours_{count}_job_ms"] = round(statistics.median(seconds[count]) * 1000, 1)

    # Injection overhead when warm: encoding with embeddings minus without.
    conditioner: TextConditioner = generator.conditioner
    plain_ms = median_ms(device, lambda: conditioner.encode(PROMPT, NEGATIVE, []), 21)
    for count in (1, 3):
        chosen = placed[:count]
        with_ms = median_ms(device, lambda: conditioner.encode(PROMPT, NEGATIVE, chosen), 21)
        overhead = max(0.0, with_ms - plain_ms)
        results[f"injection_{count}_overhead_ms"] = round(overhead, 3)
        results[f"injection_{count}_share_of_job"] = round(overhead / results[f"ours_{count}_job_ms"], 5)
    results["encode_without_embeddings_ms"] = round(plain_ms, 3)

    # Cold vs warm cost of one embedding: read the file and write its rows, vs find it resident.
    cold = []
    for seed in range(100, 100 + max(3, repeats)):
        path, sha = write_embedding(directory, family, seed)

        def first_use(path: Path = path, sha: str = sha) -> None:
            conditioner.token_ids(load_embedding_file(path, sha), set())

        cold.append(timed(device, first_use) * 1000)
    warm_ms = median_ms(device, lambda: conditioner.token_ids(loaded[0], set()), 51)
    results["embedding_cold_ms"] = round(statistics.median(cold), 3)
    results["embedding_warm_ms"] = round(warm_ms, 4)

    # Baseline: diffusers, load_textual_inversion per request, unload after.
    baseline_pipeline = pipeline
    baseline_pipeline.scheduler = generator._default_scheduler
    for count in (1, 3):
        chosen = files[:count]

        def load(chosen: list[tuple[Path, str]] = chosen) -> list[str]:
            """diffusers' way, per request: each embedding's vectors become tokens added to the tokenizer(s)."""
            tokens = []
            for index, (path, _sha) in enumerate(chosen):
                token = f"<baseline-{index}>"
                tensors = load_safetensors(path)
                if family == "sd1":
                    baseline_pipeline.load_textual_inversion(tensors["clip_l"], token=token)
                else:
                    baseline_pipeline.load_textual_inversion(tensors["clip_l"], token=token, text_encoder=baseline_pipeline.text_encoder, tokenizer=baseline_pipeline.tokenizer)
                    baseline_pipeline.load_textual_inversion(tensors["clip_g"], token=token, text_encoder=baseline_pipeline.text_encoder_2, tokenizer=baseline_pipeline.tokenizer_2)
                tokens.append(token)
            return tokens

        def unload(tokens: list[str]) -> None:
            if family == "sd1":
                baseline_pipeline.unload_textual_inversion()
                return
            # diffusers names a multi-vector token's extra vectors token_1, token_2, …; unloading needs them all.
            every = [f"{token}_{index}" if index else token for token in tokens for index in range(VECTORS_PER_EMBEDDING)]
            baseline_pipeline.unload_textual_inversion(tokens=every, text_encoder=baseline_pipeline.text_encoder, tokenizer=baseline_pipeline.tokenizer)
            baseline_pipeline.unload_textual_inversion(tokens=every, text_encoder=baseline_pipeline.text_encoder_2, tokenizer=baseline_pipeline.tokenizer_2)

        def request(chosen: list[tuple[Path, str]] = chosen) -> None:
            tokens = load(chosen)
            images = baseline_pipeline(
                prompt=f"{PROMPT} {' '.join(tokens)}",
                negative_prompt=NEGATIVE,
                num_inference_steps=steps,
                guidance_scale=7.0,
                width=size,
                height=size,
                generator=torch.Generator("cpu").manual_seed(1234),
                output_type="pil",
            ).images
            # Encoded like the worker's images, so both sides pay for the same output.
            encode_image(images[0], "PNG")
            unload(tokens)

        def load_only(chosen: list[tuple[Path, str]] = chosen) -> None:
            unload(load(chosen))

        try:
            request()
            seconds = [timed(device, request) for _ in range(repeats)]
            results[f"baseline_{count}_images_per_s"] = round(1 / statistics.median(seconds), 3)
            results[f"baseline_{count}_job_ms"] = round(statistics.median(seconds) * 1000, 1)
            results[f"baseline_{count}_load_unload_ms"] = round(median_ms(device, load_only, max(3, repeats)), 3)
        except Exception as error:  # noqa: BLE001 — the baseline is reported as failed, the bench goes on
            results[f"baseline_{count}_error"] = f"{type(error).__name__}: {error}"[:300]
    del pipeline, generator, baseline_pipeline
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return results


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def report(rows: list[dict[str, Any]], device: str, tiny: bool) -> str:
    weights = "tiny random pipelines (a check of the script, not a measurement)" if tiny else "random full-size weights"
    lines = [f"clipgate worker GPU benchmark on {device}: {weights}, 1 image per job, batch 1", ""]
    for row in rows:
        lines.append(f"{row['family']} at {row['size']}², {row['steps']} steps (built in {row['build_seconds']} s)")
        lines.append(f"  {'':34}{'images/s':>10}{'job ms':>10}")
        for count in (0, 1, 3):
            lines.append(f"  {'clipgate, ' + str(count) + ' embeddings':34}{row[f'ours_{count}_images_per_s']:>10}{row[f'ours_{count}_job_ms']:>10}")
        for count in (1, 3):
            if f"baseline_{count}_error" in row:
                lines.append(f"  {'diffusers TI per request, ' + str(count):34}  failed: {row[f'baseline_{count}_error']}")
            else:
                lines.append(f"  {'diffusers TI per request, ' + str(count):34}{row[f'baseline_{count}_images_per_s']:>10}{row[f'baseline_{count}_job_ms']:>10}")
        for count in (1, 3):
            share = row[f"injection_{count}_share_of_job"] * 100
            baseline = row.get(f"baseline_{count}_load_unload_ms")
            against = f"; diffusers load+unload per request: {baseline} ms" if baseline is not None else ""
            lines.append(f"  injection overhead, {count} warm embeddings: {row[f'injection_{count}_overhead_ms']} ms = {share:.3f}% of the job{against}")
        lines.append(f"  one embedding: cold (read file + write rows) {row['embedding_cold_ms']} ms, warm (resident) {row['embedding_warm_ms']} ms")
        lines.append("")
    sd1 = next((row for row in rows if row["family"] == "sd1"), None)
    if sd1:
        share = sd1["injection_1_share_of_job"] * 100
        lines.append(f"target: warm injection overhead < 1% of a 20-step SD 1.5 job: {share:.3f}% → {'MET' if share < 1 else 'MISSED'}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- batching


LORA_RANK = 4
LORA_PROJECTIONS = {"unet": ("to_q", "to_k", "to_v", "to_out.0"), "text": ("q_proj", "k_proj", "v_proj", "out_proj")}


def write_lora(directory: Path, pipeline: Any, family: Family, seed: int = 7) -> PlacedLora:
    """A random rank-4 LoRA in PEFT naming on every attention projection of the UNet and the text encoder(s).
    Small values: random weights already make noise, and the LoRA must not push fp16 activations to infinity."""
    generator = torch.Generator().manual_seed(seed)
    parts = [("unet", pipeline.unet, LORA_PROJECTIONS["unet"]), ("text_encoder", pipeline.text_encoder, LORA_PROJECTIONS["text"])]
    if family == "sdxl":
        parts.append(("text_encoder_2", pipeline.text_encoder_2, LORA_PROJECTIONS["text"]))
    tensors: dict[str, torch.Tensor] = {}
    for part, module, suffixes in parts:
        for name, linear in module.named_modules():
            if not (isinstance(linear, torch.nn.Linear) and name.endswith(suffixes)):
                continue
            if part != "unet" and not name.startswith("text_model."):
                name = f"text_model.{name}"  # the checkpoint naming of transformers 4, which diffusers expects
            tensors[f"{part}.{name}.lora_A.weight"] = torch.randn(LORA_RANK, linear.in_features, generator=generator) * 0.01
            tensors[f"{part}.{name}.lora_B.weight"] = torch.randn(linear.out_features, LORA_RANK, generator=generator) * 0.01
    path = directory / f"lora-{family}-{seed}.safetensors"
    save_file(tensors, str(path))
    return PlacedLora(sha256=hashlib.sha256(path.read_bytes()).hexdigest(), path=path, size_bytes=path.stat().st_size, weight=0.8)


class _NoControl:
    """A job's control in the bench: no progress to stream, never cancelled."""

    def on_step(self, _step: int, _steps: int) -> None:
        return None

    def raise_if_cancelled(self) -> None:
        return None


class _FallbackCounter(logging.Handler):
    """Counts the generator's "running each alone" warnings: a batch that fell back measured nothing batched."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "running each alone" in record.getMessage():
            self.count += 1


def bench_batching(family: Family, device: torch.device, dtype: torch.dtype, tiny: bool, repeats: int, sizes: list[int]) -> dict[str, Any]:
    """Images/s for the same jobs drawn in batches of each size; size 1 is one job at a time."""
    size = 64 if tiny else (512 if family == "sd1" else 1024)
    steps = 2 if tiny else 20
    build_started = time.perf_counter()
    pipeline = tiny_pipeline(family).to(device) if tiny else full_pipeline(family, device, dtype)
    build_seconds = time.perf_counter() - build_started
    directory = Path(tempfile.mkdtemp(prefix="clipgate-bench-batching-"))
    generator = Generator(pipeline, family, device)
    lora = write_lora(directory, pipeline, family)
    count = max(sizes)
    jobs = []
    for index in range(count):
        path, sha = write_embedding(directory, family, 500 + index)
        embedding = PlacedEmbedding(load_embedding_file(path, sha), 1.0, "positive")
        spec = job(family, size, steps, seed=1000 + index)
        spec.positive_prompt = f"{PROMPT}, variation {index}"
        jobs.append(BatchJob(spec, [embedding], _NoControl()))  # type: ignore[arg-type]
    fallbacks = _FallbackCounter()
    logging.getLogger("clipgate_worker.generate").addHandler(fallbacks)

    def draw_all(batch_size: int) -> None:
        """Every job once, in batches of batch_size; a failed job fails the bench (nothing would be measured)."""
        for start in range(0, count, batch_size):
            for outcome in generator.run_batch(jobs[start : start + batch_size], [lora]):
                if isinstance(outcome, Exception):
                    raise outcome

    results: dict[str, Any] = {"family": family, "size": size, "steps": steps, "jobs": count, "build_seconds": round(build_seconds, 1)}
    # Untimed rounds first, one per batch size: kernels for each shape chosen and cached, the LoRA loaded, GPU clocks up.
    for batch_size in sizes:
        draw_all(batch_size)
    seconds: dict[int, list[float]] = {batch_size: [] for batch_size in sizes}
    peak: dict[int, float] = {}
    for _ in range(repeats):
        # Sizes alternate round by round, so clock ramps and thermal drift hit all of them alike.
        for batch_size in sizes:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds[batch_size].append(timed(device, lambda batch_size=batch_size: draw_all(batch_size)))
            if device.type == "cuda":
                peak[batch_size] = max(peak.get(batch_size, 0.0), torch.cuda.max_memory_allocated(device) / 2**30)
    logging.getLogger("clipgate_worker.generate").removeHandler(fallbacks)
    one_at_a_time = count / statistics.median(seconds[sizes[0]])
    for batch_size in sizes:
        median_s = statistics.median(seconds[batch_size])
        images_per_s = count / median_s
        results[f"batch_{batch_size}"] = {
            "images_per_s": round(images_per_s, 3),
            "ms_per_batch": round(median_s * 1000 / math.ceil(count / batch_size), 1),
            "ratio": round(images_per_s / one_at_a_time, 3),
            "peak_gib": round(peak[batch_size], 2) if batch_size in peak else None,
        }
    results["fallbacks"] = fallbacks.count
    del pipeline, generator
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return results


def batching_report(rows: list[dict[str, Any]], device: str, tiny: bool) -> str:
    weights = "tiny random pipelines (a check of the script, not a measurement)" if tiny else "random full-size weights"
    lines = [f"clipgate worker batching benchmark on {device}: {weights}; each job 1 image, its own embedding, one shared LoRA", ""]
    for row in rows:
        lines.append(f"{row['family']} at {row['size']}², {row['steps']} steps, {row['jobs']} jobs (built in {row['build_seconds']} s)")
        lines.append(f"  {'batch':<24}{'images/s':>10}{'ms/batch':>11}{'× one at a time':>17}{'peak GiB':>10}")
        for key in [key for key in row if key.startswith("batch_")]:
            numbers = row[key]
            batch_size = key.removeprefix("batch_")
            label = batch_size + (" (one job at a time)" if batch_size == "1" else "")
            peak = "" if numbers["peak_gib"] is None else numbers["peak_gib"]
            lines.append(f"  {label:<24}{numbers['images_per_s']:>10}{numbers['ms_per_batch']:>11}{numbers['ratio']:>17}{peak:>10}")
        if row["fallbacks"]:
            lines.append(f"  WARNING: {row['fallbacks']} batch(es) failed and ran job by job; their sizes measured nothing batched")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny pipelines at tiny sizes, to check the script on a CPU")
    parser.add_argument("--families", default="sd1,sdxl")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batching", action="store_true", help="measure batched generation against one job at a time")
    parser.add_argument("--batch-sizes", default="1,2,4,8", help="with --batching: the batch sizes (1 is one job at a time)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    arguments = parser.parse_args(argv)

    import diffusers

    diffusers.utils.logging.set_verbosity_error()
    device = torch.device("cuda" if torch.cuda.is_available() and not arguments.tiny else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    families = arguments.families.split(",")
    if arguments.batching:
        sizes = [int(size) for size in arguments.batch_sizes.split(",")]
        rows = [bench_batching(family, device, dtype, arguments.tiny, arguments.repeats, sizes) for family in families]  # type: ignore[arg-type]
        text = batching_report(rows, name, arguments.tiny)
    else:
        rows = [bench_family(family, device, dtype, arguments.tiny, arguments.repeats) for family in families]  # type: ignore[arg-type]
        text = report(rows, name, arguments.tiny)
    print(text)
    if arguments.json:
        arguments.json.write_text(json.dumps({"device": name, "torch": torch.__version__, "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
