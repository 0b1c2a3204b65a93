"""Features of the real images of a split, cached on disk.

An entry's file name hashes what the features depend on (dataset folder, split,
resolution, extractor and its weights); inside, a fingerprint of the dataset's
files (names, sizes, modification times) detects a dataset changed in place:
such a stale entry is recomputed, with a message, never silently reused.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterable

import torch

from ..io import atomic_path
from . import distribution as dist

CACHE_VERSION = 1
_file_digests: dict[tuple, str] = {}


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (memoised per path, size and mtime): identifies weights files."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _file_digests:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _file_digests[key] = h.hexdigest()
    return _file_digests[key]


def dataset_fingerprint(data_dir: str | Path) -> str:
    """Hash of every file's relative name, size and mtime under data_dir (or of the file itself)."""
    root = Path(data_dir)
    h = hashlib.sha256()
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for p in paths:
        st = p.stat()
        h.update(f"{p.relative_to(root) if p != root else p.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def extractor_identity(extractor) -> str:
    weights = getattr(extractor, "weights_path", None)
    return f"{extractor.name}:{file_digest(weights)}" if weights else f"{extractor.name}:{extractor.identity}"


class ReferenceCache:
    def __init__(self, cache_dir: str | Path, data_dir: str | Path, split: str, resolution: int):
        self.cache_dir, self.data_dir = Path(cache_dir), Path(data_dir)
        self.split, self.resolution = split, resolution
        self._fingerprint: str | None = None
        self._loaded: dict[Path, dict] = {}  # entries already read or computed in this run
        self.events: list[str] = []  # "hit" / "computed" / "stale" per lookup, for reports and tests

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = dataset_fingerprint(self.data_dir)
        return self._fingerprint

    def path_for(self, extractor) -> Path:
        key = json.dumps({"data": str(self.data_dir.resolve()), "split": self.split, "resolution": self.resolution,
                          "extractor": extractor_identity(extractor), "version": CACHE_VERSION}, sort_keys=True)
        return self.cache_dir / f"{extractor.name}_{self.split}_{self.resolution}px_" \
                                f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"

    def features(self, extractor, reference: Callable[[], Iterable[torch.Tensor]]) -> dict:
        """{"pool", "logits", ..., "stats"} of the real split under `extractor` (each entry read once per run)."""
        from .suite import extract  # the suite imports this module

        path = self.path_for(extractor)
        if path in self._loaded:
            self.events.append("hit")
            return self._loaded[path]
        if path.is_file():
            entry = torch.load(path, map_location="cpu", weights_only=False)
            if entry.get("fingerprint") == self.fingerprint():
                self.events.append("hit")
                self._loaded[path] = entry["features"]
                return entry["features"]
            print(f"reference statistics {path}: stale (files under {self.data_dir} changed); recomputing",
                  flush=True)
            self.events.append("stale")
        else:
            self.events.append("computed")
        features = extract({extractor.name: extractor}, reference())[extractor.name]
        if "pool" in features:  # distribution extractors; probes (DAMSM codes) need no statistics
            features["stats"] = dist.statistics(features["pool"])
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save({"fingerprint": self.fingerprint(), "features": features, "version": CACHE_VERSION}, tmp)
        self._loaded[path] = features
        return features
