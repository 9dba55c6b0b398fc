"""Reads a canonical clipgate embedding file: safetensors only, never a pickle.

The gateway inspected the original file and wrote this canonical copy: float32 tensors named by text
encoder (``clip_l`` [n, 768] for SD 1.x and SDXL, ``clip_g`` [n, 1280] for SDXL). Everything is checked again
here, because the worker trusts only what it can verify itself.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from .conditioning_types import Family, LoadedEmbedding
from .errors import EmbeddingFileInvalid

#: Width of each encoder's token embeddings, by tensor name.
ENCODER_WIDTHS = {"clip_l": 768, "clip_g": 1280}
#: The tensors each family's file must hold, no more and no fewer.
FAMILY_TENSORS: dict[Family, frozenset[str]] = {"sd1": frozenset({"clip_l"}), "sdxl": frozenset({"clip_l", "clip_g"})}
MAX_VECTORS = 75


def load_embedding_file(path: Path, sha256: str) -> LoadedEmbedding:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise EmbeddingFileInvalid(f"{path.name} is not a readable safetensors file: {error}") from error

    names = frozenset(tensors)
    family = _family_of(names, metadata.get("family"), path.name)
    counts = set()
    vectors: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        width = ENCODER_WIDTHS[name]
        if tensor.ndim != 2 or tensor.shape[1] != width:
            raise EmbeddingFileInvalid(f"{path.name}: tensor {name} must be [n, {width}]; found {list(tensor.shape)}")
        if not 1 <= tensor.shape[0] <= MAX_VECTORS:
            raise EmbeddingFileInvalid(f"{path.name}: tensor {name} must hold 1 to {MAX_VECTORS} vectors; found {tensor.shape[0]}")
        values = tensor.to(torch.float32)
        if not torch.isfinite(values).all():
            raise EmbeddingFileInvalid(f"{path.name}: tensor {name} holds NaN or infinite values")
        counts.add(int(tensor.shape[0]))
        vectors[name] = values.contiguous()
    if len(counts) != 1:
        raise EmbeddingFileInvalid(f"{path.name}: clip_l and clip_g must hold the same number of vectors; found {sorted(counts)}")
    return LoadedEmbedding(sha256=sha256, family=family, vectors=vectors)


def _family_of(names: frozenset[str], labelled: str | None, file_name: str) -> Family:
    for family, expected in FAMILY_TENSORS.items():
        if names == expected:
            if labelled is not None and labelled != family:
                raise EmbeddingFileInvalid(f"{file_name}: metadata says family {labelled!r} but the tensors are {sorted(names)} ({family})")
            return family
    raise EmbeddingFileInvalid(
        f"{file_name}: expected tensors {{clip_l}} (sd1) or {{clip_l, clip_g}} (sdxl); found {sorted(names)}"
    )
