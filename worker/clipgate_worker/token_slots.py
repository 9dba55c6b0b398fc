"""Where resident embeddings live in a text encoder's token-embedding table.

Each text encoder gets a fixed block of extra rows ("slots") after its vocabulary, once, at load. An
embedding's content-named tokens (``<emb-1a2b3c4d>``, ``<emb-1a2b3c4d_1>``, …) are mapped to free slots and
their vectors written into those rows. Slots are kept in LRU order, so a hot embedding costs nothing on the
next job, and evicted ones are reused — the tokenizer itself is never modified, because a Hugging Face
tokenizer cannot forget an added token and its vocabulary would grow with every embedding ever seen. The
original vocabulary's rows are never written.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from .errors import EmbeddingSlotsExhausted


class SlotTable:
    """LRU allocation of ``capacity`` slots to embeddings, by SHA-256. Pure bookkeeping, no tensors."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._resident: OrderedDict[str, list[int]] = OrderedDict()
        self._free = list(range(capacity - 1, -1, -1))

    def lookup(self, sha256: str) -> list[int] | None:
        """Slots of a resident embedding, marking it most recently used."""
        slots = self._resident.get(sha256)
        if slots is not None:
            self._resident.move_to_end(sha256)
        return slots

    def allocate(self, sha256: str, count: int, pinned: Iterable[str]) -> list[int]:
        """Slots for a new embedding, evicting the least recently used ones not in ``pinned``."""
        if count > self.capacity:
            raise EmbeddingSlotsExhausted(f"an embedding of {count} vectors does not fit in {self.capacity} slots")
        keep = set(pinned)
        for victim in list(self._resident):
            if len(self._free) >= count:
                break
            if victim not in keep:
                self._free.extend(self._resident.pop(victim))
        if len(self._free) < count:
            raise EmbeddingSlotsExhausted(f"{count} more slots are needed but only {len(self._free)} are free while this job's embeddings stay resident")
        slots = [self._free.pop() for _ in range(count)]
        return slots

    def commit(self, sha256: str, slots: list[int]) -> None:
        """Records the embedding as resident, once its rows are written."""
        self._resident[sha256] = slots
        self._resident.move_to_end(sha256)

    def release(self, slots: list[int]) -> None:
        """Returns slots allocated for an embedding whose rows could not be written."""
        self._free.extend(slots)

    def resident(self) -> list[str]:
        return list(self._resident)
