"""Verified files on local disk, addressed by SHA-256, fetched on first use: canonical embedding files from
the gateway, and LoRA files from the registry (a second store, with its own directory, caps and errors).

- A file is ``{sha256}.safetensors`` in the cache directory. It is downloaded once (httpx, with a timeout
  and a size cap), hashed while it streams, and only renamed into place when the hash matches: a reader
  never sees a partial or unverified file, and a crash leaves only a ``.part`` file, removed at start-up.
- Two requests for the same SHA-256 at once download it once: the second waits on a per-SHA lock and then
  finds the file in place.
- The directory is kept under a byte budget by evicting the least recently used files (use time is the
  file's mtime, so the order survives a restart).
- Files already present at start-up (a previous run's) are hashed again on first use, once: a file that
  was damaged on disk is replaced, not served.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from .errors import (
    EmbeddingChecksumMismatch,
    EmbeddingFileInvalid,
    EmbeddingUnavailable,
    JobError,
    LoraChecksumMismatch,
    LoraFileInvalid,
    LoraUnavailable,
)

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
MAX_FILE_BYTES = 64 * MIB
#: httpx's timeout bounds each wait (connect, each read); the deadline bounds a whole download, so a server
#: that trickles bytes cannot hold the job thread for ever.
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_DEADLINE_S = 120.0
SUFFIX = ".safetensors"
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class FileKind:
    """What a store holds: the word its messages use, and the protocol error of each way a fetch fails."""

    noun: str
    unavailable: type[JobError]
    checksum_mismatch: type[JobError]
    invalid: type[JobError]


EMBEDDING_FILES = FileKind("embedding", EmbeddingUnavailable, EmbeddingChecksumMismatch, EmbeddingFileInvalid)
LORA_FILES = FileKind("LoRA", LoraUnavailable, LoraChecksumMismatch, LoraFileInvalid)

#: Headers to send with a download, by URL (a registry token for the registry's own host, nothing elsewhere).
HeadersFor = Callable[[str], Mapping[str, str]]


class EmbeddingStore:
    def __init__(
        self,
        directory: Path,
        budget_bytes: int,
        client: httpx.Client | None = None,
        max_file_bytes: int = MAX_FILE_BYTES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        deadline_s: float = DEFAULT_DEADLINE_S,
        kind: FileKind = EMBEDDING_FILES,
        headers_for: HeadersFor | None = None,
    ) -> None:
        self.kind = kind
        self._headers_for = headers_for or (lambda _url: {})
        self.directory = directory
        self.budget_bytes = budget_bytes
        self.max_file_bytes = max_file_bytes
        self.deadline_s = deadline_s
        self._client = client or httpx.Client(timeout=timeout_s, follow_redirects=True)
        self._lock = threading.Lock()
        self._per_sha: dict[str, threading.Lock] = {}
        #: Files this process has downloaded or hashed: trusted without hashing again.
        self._verified: set[str] = set()
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob("*.part"):
            leftover.unlink(missing_ok=True)

    def path_of(self, sha256: str) -> Path:
        return self.directory / f"{sha256}{SUFFIX}"

    def get(self, url: str, sha256: str) -> Path:
        """The local path of the verified file, downloading it from ``url`` if needed.

        Raises EmbeddingUnavailable (network, HTTP status), EmbeddingChecksumMismatch (the bytes are not
        ``sha256``) or EmbeddingFileInvalid (larger than the cap)."""
        with self._sha_lock(sha256):
            path = self.path_of(sha256)
            if path.exists() and self._trusted(path, sha256):
                _touch(path)
                return path
            self._download(url, sha256, path)
            self._verified.add(sha256)
        self._evict(keep=sha256)
        return path

    def total_bytes(self) -> int:
        return sum(size for _, _, size in self._files())

    def _sha_lock(self, sha256: str) -> threading.Lock:
        with self._lock:
            return self._per_sha.setdefault(sha256, threading.Lock())

    def _trusted(self, path: Path, sha256: str) -> bool:
        if sha256 in self._verified:
            return True
        if _file_sha256(path) == sha256:
            self._verified.add(sha256)
            return True
        logger.warning("cached %s %s does not match its name; downloading it again", self.kind.noun, path.name)
        path.unlink(missing_ok=True)
        return False

    def _download(self, url: str, sha256: str, path: Path) -> None:
        partial = path.with_name(f"{sha256}.{uuid.uuid4().hex}.part")
        digest = hashlib.sha256()
        size = 0
        deadline = time.monotonic() + self.deadline_s
        try:
            # httpx drops an Authorization header on a redirect to another host (a registry's signed storage URL).
            with self._client.stream("GET", url, headers=dict(self._headers_for(url))) as response:
                if response.status_code != 200:
                    raise self.kind.unavailable(
                        f"{self.kind.noun} {sha256[:12]}: GET {url} answered {response.status_code}; expected 200"
                    )
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > self.max_file_bytes:
                    raise self._too_large(sha256, int(declared))
                with partial.open("wb") as file:
                    for chunk in response.iter_bytes(_CHUNK):
                        size += len(chunk)
                        if size > self.max_file_bytes:
                            raise self._too_large(sha256, size)
                        if time.monotonic() > deadline:
                            raise self.kind.unavailable(
                                f"{self.kind.noun} {sha256[:12]}: GET {url} took longer than {self.deadline_s:g} s ({size} bytes so far)"
                            )
                        digest.update(chunk)
                        file.write(chunk)
            found = digest.hexdigest()
            if found != sha256:
                raise self.kind.checksum_mismatch(
                    f"{self.kind.noun} from {url}: expected SHA-256 {sha256}; the {size} bytes received hash to {found}"
                )
            os.replace(partial, path)
            logger.info("fetched %s %s (%d bytes)", self.kind.noun, sha256[:12], size)
        except httpx.HTTPError as error:
            raise self.kind.unavailable(f"{self.kind.noun} {sha256[:12]}: GET {url} failed: {type(error).__name__}: {error}") from None
        finally:
            partial.unlink(missing_ok=True)

    def _too_large(self, sha256: str, size: int) -> JobError:
        return self.kind.invalid(f"{self.kind.noun} {sha256[:12]}: expected at most {self.max_file_bytes} bytes; found {size} or more")

    def _files(self) -> list[tuple[float, Path, int]]:
        """(last use, path, size) of every cached file, oldest first."""
        entries = []
        for path in self.directory.glob(f"*{SUFFIX}"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            entries.append((stat.st_mtime, path, stat.st_size))
        return sorted(entries)

    def _evict(self, keep: str) -> None:
        """Removes least recently used files until the directory fits the budget; ``keep`` (the file just
        fetched, about to be read) stays even if it alone is over budget."""
        with self._lock:
            files = self._files()
            total = sum(size for _, _, size in files)
            for _, path, size in files:
                if total <= self.budget_bytes:
                    break
                if path.name == f"{keep}{SUFFIX}":
                    continue
                path.unlink(missing_ok=True)
                self._verified.discard(path.name.removesuffix(SUFFIX))
                total -= size
                logger.info("evicted %s %s (%d bytes) to stay within %d bytes", self.kind.noun, path.name, size, self.budget_bytes)

    def close(self) -> None:
        self._client.close()


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except FileNotFoundError:
        pass


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
