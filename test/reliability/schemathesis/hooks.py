"""Schemathesis hooks for clipgate's reliability suite: generated requests name the models the test registry
and the built-in catalogue know (SD 1.5, SDXL, FLUX, an SD 1.5 embedding, an SD 1.5 LoRA), so that the
fuzzing reaches resolution, the family rules and dispatch instead of stopping at unknownModel.

CLIPGATE_AIRS (JSON: {"models": [...], "embeddings": [...], "loras": [...]}) names them and CLIPGATE_AIR_PATTERN
is the document's AIR pattern; the test sets both. Only a generated AIR that matches the pattern is replaced:
one that does not is a negative case, and must stay one.
"""

import json
import os
import random
import re
from urllib.parse import quote, unquote

import schemathesis

AIRS = json.loads(os.environ.get("CLIPGATE_AIRS", '{"models": [], "embeddings": [], "loras": []}'))
_random = random.Random(int(os.environ.get("CLIPGATE_HOOK_SEED", "7")))
_air = re.compile(os.environ.get("CLIPGATE_AIR_PATTERN", "^$"))


def _pick(kind: str, current: object) -> object:
    # Keep some generated AIRs as they are: unknown and malformed ones must be answered well too.
    if not isinstance(current, str) or not _air.search(current) or not AIRS.get(kind) or _random.random() < 0.2:
        return current
    return _random.choice(AIRS[kind])


@schemathesis.hook
def map_body(ctx, body):
    if not isinstance(body, list):
        return body
    for task in body:
        if not isinstance(task, dict) or task.get("taskType") != "imageInference":
            continue
        if "model" in task:
            task["model"] = _pick("models", task["model"])
        for field, kind in (("embeddings", "embeddings"), ("lora", "loras")):
            entries = task.get(field)
            if isinstance(entries, list):
                for entry in entries:
                    if isinstance(entry, dict) and "model" in entry:
                        entry["model"] = _pick(kind, entry["model"])
    return body


@schemathesis.hook
def map_path_parameters(ctx, parameters):
    # Path parameters arrive percent-encoded.
    if parameters and "air" in parameters:
        kind = "models" if _random.random() < 0.5 else "embeddings"
        parameters["air"] = quote(str(_pick(kind, unquote(parameters["air"]))), safe="")
    return parameters
