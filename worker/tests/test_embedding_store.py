from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
from worker_support import FileServer, free_port

from clipgate_worker.embedding_store import EmbeddingStore
from clipgate_worker.errors import EmbeddingChecksumMismatch, EmbeddingFileInvalid, EmbeddingUnavailable


def test_downloads_once_then_serves_from_disk(store: EmbeddingStore, file_server: FileServer) -> None:
    url, sha256 = file_server.add(b"embedding bytes")
    first = store.get(url, sha256)
    second = store.get(url, sha256)
    assert first == second == store.directory / f"{sha256}.safetensors"
    assert first.read_bytes() == b"embedding bytes"
    assert file_server.hits[f"{sha256}.safetensors"] == 1
    assert list(store.directory.iterdir()) == [first]


def test_checksum_mismatch_is_refused_and_nothing_is_kept(store: EmbeddingStore, file_server: FileServer) -> None:
    url, _ = file_server.add(b"what the gateway serves")
    claimed = hashlib.sha256(b"what the registry promised").hexdigest()
    with pytest.raises(EmbeddingChecksumMismatch) as caught:
        store.get(url, claimed)
    assert claimed in caught.value.message and hashlib.sha256(b"what the gateway serves").hexdigest() in caught.value.message
    assert caught.value.retryable
    assert list(store.directory.iterdir()) == []


def test_http_errors_and_unreachable_hosts_are_unavailable(store: EmbeddingStore, file_server: FileServer) -> None:
    sha256 = "a" * 64
    with pytest.raises(EmbeddingUnavailable, match="answered 404; expected 200"):
        store.get(f"{file_server.base}/files/missing", sha256)
    with pytest.raises(EmbeddingUnavailable, match="ConnectError"):
        store.get(f"http://127.0.0.1:{free_port()}/files/x", sha256)
    assert list(store.directory.iterdir()) == []


def test_files_over_the_cap_are_refused(tmp_path: Path, file_server: FileServer) -> None:
    capped = EmbeddingStore(tmp_path, budget_bytes=1 << 20, max_file_bytes=1000)
    url, sha256 = file_server.add(os.urandom(1001))
    with pytest.raises(EmbeddingFileInvalid, match="expected at most 1000 bytes; found 1001"):
        capped.get(url, sha256)
    assert list(tmp_path.iterdir()) == []
    capped.close()


def test_least_recently_used_files_are_evicted_beyond_the_budget(tmp_path: Path, file_server: FileServer) -> None:
    store = EmbeddingStore(tmp_path, budget_bytes=2500)
    files = {name: file_server.add(os.urandom(1000), f"{name}.safetensors") for name in "abc"}
    path_a = store.get(*files["a"])
    path_b = store.get(*files["b"])
    # Last use is the file's mtime: make a older than b, then use a again, so b is the least recently used
    # when c pushes the total past the budget.
    os.utime(path_a, (1, 1))
    os.utime(path_b, (2, 2))
    assert store.get(*files["a"]) == path_a
    path_c = store.get(*files["c"])
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([path_a.name, path_c.name])
    assert store.total_bytes() == 2000
    # An evicted file comes back by downloading it again.
    assert store.get(*files["b"]).exists()
    assert file_server.hits["b.safetensors"] == 2
    store.close()


def test_a_file_bigger_than_the_whole_budget_is_still_served(tmp_path: Path, file_server: FileServer) -> None:
    store = EmbeddingStore(tmp_path, budget_bytes=10)
    url, sha256 = file_server.add(os.urandom(100))
    assert store.get(url, sha256).stat().st_size == 100
    store.close()


def test_concurrent_requests_for_one_sha_download_once(store: EmbeddingStore, file_server: FileServer) -> None:
    url, sha256 = file_server.add(os.urandom(4096))
    file_server.delay_s = 0.2
    results: list[Path] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def fetch() -> None:
        start.wait()
        try:
            results.append(store.get(url, sha256))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert len(results) == 4 and len(set(results)) == 1
    assert file_server.hits[f"{sha256}.safetensors"] == 1


def test_a_restart_keeps_verified_files_and_replaces_damaged_ones(tmp_path: Path, file_server: FileServer) -> None:
    url, sha256 = file_server.add(b"good bytes")
    first = EmbeddingStore(tmp_path, budget_bytes=1 << 20)
    path = first.get(url, sha256)
    first.close()
    (tmp_path / f"{sha256}.1234.part").write_bytes(b"half a download")

    second = EmbeddingStore(tmp_path, budget_bytes=1 << 20)
    assert not list(tmp_path.glob("*.part"))
    assert second.get(url, sha256) == path
    assert file_server.hits[f"{sha256}.safetensors"] == 1

    path.write_bytes(b"bit rot")
    third = EmbeddingStore(tmp_path, budget_bytes=1 << 20)
    assert third.get(url, sha256).read_bytes() == b"good bytes"
    assert file_server.hits[f"{sha256}.safetensors"] == 2
    second.close()
    third.close()


def test_a_download_that_outlasts_its_deadline_is_unavailable(tmp_path: Path, file_server: FileServer) -> None:
    impatient = EmbeddingStore(tmp_path, budget_bytes=1 << 20, deadline_s=0.0)
    url, sha256 = file_server.add(os.urandom(100))
    with pytest.raises(EmbeddingUnavailable, match="took longer than 0 s"):
        impatient.get(url, sha256)
    assert list(tmp_path.iterdir()) == []
    impatient.close()
