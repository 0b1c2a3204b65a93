"""Features of the real images of a split, cached on disk.

An entry's file name hashes what the features depend on (dataset folder, split,
resolution, extractor and its weights); inside, a fingerprint of the dataset's
files (names, sizes, modification times) detects a dataset changed in place:
such a stale entry is recomputed, with a message, never silently reused.
Entries hold tensors only and are read with torch.load(weights_only=True), so a statistics
file copied from elsewhere cannot run code; one that does not read is recomputed, with a message.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from ..io import atomic_path
from . import distribution as dist

CACHE_VERSION = 2  # 2: tensors only (float64 statistics as tensors), read with weights_only=True
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
        on_disk = path.is_file()
        entry = _read_entry(path) if on_disk else None
        if entry is not None and entry.get("fingerprint") == self.fingerprint():
            self.events.append("hit")
            self._loaded[path] = _from_file(entry["features"])
            return self._loaded[path]
        if entry is not None:
            print(f"reference statistics {path}: stale (files under {self.data_dir} changed); recomputing",
                  file=sys.stderr, flush=True)
            self.events.append("stale")
        elif on_disk:
            self.events.append("unreadable")
        else:
            self.events.append("computed")
        features = extract({extractor.name: extractor}, reference())[extractor.name]
        if "pool" in features:  # distribution extractors; probes (DAMSM codes) need no statistics
            features["stats"] = dist.statistics(features["pool"])
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save({"fingerprint": self.fingerprint(), "features": _to_file(features), "version": CACHE_VERSION},
                       tmp)
        self._loaded[path] = features
        return features


def _read_entry(path: Path) -> dict | None:
    """A cache entry, read without unpickling code; None (with a message) when it cannot be read so."""
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(entry, dict) or not isinstance(entry.get("features"), dict):
            raise ValueError("not a statistics entry")
        return entry
    except pickle.UnpicklingError:  # weights_only refused an object: it would run code to load
        reason = "it holds objects other than tensors"
    except Exception as e:  # noqa: BLE001 - any unreadable file is recomputed, never trusted
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
    print(f"reference statistics {path}: unreadable as plain tensors ({reason}); recomputing",
          file=sys.stderr, flush=True)
    return None


def _to_file(value):
    """numpy arrays (the float64 statistics) as tensors, so the entry loads with weights_only=True."""
    if isinstance(value, dict):
        return {k: _to_file(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {"__numpy__": torch.from_numpy(np.ascontiguousarray(value))}
    return value


def _from_file(value):
    if isinstance(value, dict):
        if set(value) == {"__numpy__"}:
            return value["__numpy__"].numpy()
        return {k: _from_file(v) for k, v in value.items()}
    return value
