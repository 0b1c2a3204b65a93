"""Checkpoint files: atomic writes, the last K kept, safe loading.

A checkpoint is one torch file holding everything a run needs to continue
exactly: nets, EMA, optimizers, scalers, every RNG state, the position in the
data and the resolved config. Files are written to a temporary name and then
renamed, so a crash (even kill -9) mid-write leaves the previous one intact.
"""
from __future__ import annotations

import random
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import GanstackError
from ..io import atomic_path

_NAME = re.compile(r"^checkpoint_(\d{8})\.pth$")


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"checkpoint_{step:08d}.pth"


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints in `folder`, oldest first (temporary files are ignored)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def save_checkpoint(state: dict, folder: Path, step: int, keep: int) -> Path:
    path = checkpoint_path(folder, step)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def verify_checkpoint(path: Path) -> None:
    """Check every record of the file against the CRC-32 its zip directory holds: torch.load
    itself reads a flipped bit in a tensor (a failing disk, a bad copy) without complaint."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise GanstackError(f"{path}: not a loadable checkpoint (damaged or not a checkpoint: {e})") from None
    if bad is not None:
        raise GanstackError(f"{path}: damaged checkpoint (its record {bad} fails the CRC check)")


def net_weights(state: dict, name: str, averaged: bool = True) -> dict | None:
    """Network `name`'s weights in a checkpoint: its EMA copy when the run kept one (and `averaged`),
    else the net as trained."""
    kept = state.get("ema", {}).get(name) if averaged else None
    return kept or state.get("nets", {}).get(name)


def check_same_settings(state: dict, cfg, keys: tuple[str, ...], path) -> None:
    """Refuse a checkpoint whose saved config differs from `cfg` on `keys`: settings that change what a
    network computes but no weight shape (so loading would succeed and the images would be wrong)."""
    saved = state.get("config") if isinstance(state, dict) else None
    for key in keys if isinstance(saved, dict) else ():
        then, now = saved, cfg.get_path(key)
        for part in key.split("."):  # an older checkpoint may lack the key: then it is not checked
            then = then.get(part) if isinstance(then, dict) else None
        if then is not None and then != now:
            raise GanstackError(f"{path}: trained with {key}={then}, this config has {now}; set {key}={then} "
                                "(the same network)")


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise GanstackError(f"{path}: checkpoint not found")
    verify_checkpoint(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for damaged or foreign files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GanstackError(f"{path}: not a loadable checkpoint ({first})") from None


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_to_tuple(state["python"]))
    np.random.set_state(_numpy_state_from_plain(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state_to_plain(state: tuple) -> dict:
    # weights_only loading accepts tensors and plain containers, not ndarrays
    name, keys, pos, has_gauss, gauss = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _numpy_state_from_plain(d: dict) -> tuple:
    return (d["name"], d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"], d["gauss"])


def _to_tuple(x):
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
