"""The shapes set as pix2pix pairs: label map -> photo, in the aligned A|B format.

    out_dir/{train,test}/<key>.png   A|B side by side (as facades, cityscapes...): A is the
                                     scene's label map drawn in PALETTE colours, B the photo
    out_dir/meta.json                palette, class names and the source set; written last

Pairs are PNG, so A decodes back to exact class ids (`decode_labelmap` takes the
nearest palette colour, which also survives a JPEG re-encode). The pairs come from a
shapes set (images/ and labelmaps/ of data/shapes), so the photos are byte for byte
the ones the text-to-image variants train on.
"""
from __future__ import annotations

import colorsys
import json
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import GanstackError
from ...io import atomic_path, write_text_atomic
from ..attngan import load_keys
from .shapes import NUM_CLASSES, class_name, level_of, load_meta

ALIGNED_VERSION = 1
NUM_LABELS = NUM_CLASSES + 1  # 0 is the background


def palette() -> np.ndarray:
    """(NUM_LABELS, 3) uint8: black background, then 36 hues 10 degrees apart in three brightnesses.

    The hue of class c is unrelated to the colour it names, so G must learn the mapping."""
    colours = [(0, 0, 0)]
    for c in range(NUM_CLASSES):
        hue = (c * 7 % NUM_CLASSES) / NUM_CLASSES  # 7 is coprime with 36: every hue used once
        value = (0.6, 0.8, 1.0)[c % 3]
        colours.append(tuple(round(255 * v) for v in colorsys.hsv_to_rgb(hue, 0.85, value)))
    return np.asarray(colours, dtype=np.uint8)


def colourise(labelmap: np.ndarray) -> np.ndarray:
    """(H, W) class ids (0 background, class + 1 per object) -> (H, W, 3) uint8 palette image."""
    return palette()[labelmap]


def decode_labelmap(rgb: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 palette image -> (..., H, W) int64 ids of the nearest palette colour.

    Distances are taken for the distinct colours only (a label map has a handful), then spread back."""
    packed = (rgb.astype(np.int32) << np.array([16, 8, 0], np.int32)).sum(-1)
    colours, index = np.unique(packed.ravel(), return_inverse=True)
    distinct = (colours[:, None] >> np.array([16, 8, 0])) & 255
    dist = ((distinct[:, None, :] - palette().astype(np.int64)) ** 2).sum(-1)
    return dist.argmin(-1)[index].reshape(packed.shape).astype(np.int64)


def export_aligned(shapes_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the pairs of a complete shapes set into `out_dir` (nothing to do when present)."""
    src, out = Path(shapes_dir), Path(out_dir)
    meta = load_meta(src)
    params = {"dataset": "shapes_aligned", "version": ALIGNED_VERSION,
              "source": {**{k: meta[k] for k in ("version", "size", "num_train", "num_test", "seed")},
                         "level": level_of(meta)}}
    if (out / "meta.json").is_file():
        have = load_meta(out)
        have = {k: have.get(k) for k in params}
        if isinstance(have["source"], dict):
            have["source"] = {"level": "scenes", **have["source"]}  # pairs exported before levels existed
        if have == params:
            return out
        raise GanstackError(f"{out}: holds aligned pairs of another shapes set; delete it or choose another --out")
    counts = {}
    for split in ("train", "test"):
        keys = load_keys(src, split)
        for key in keys:
            photo = np.asarray(Image.open(src / "images" / f"{key}.jpg").convert("RGB"))
            labels = np.asarray(Image.open(src / "labelmaps" / f"{key}.png"))
            if labels.shape != photo.shape[:2]:
                raise GanstackError(f"{src / 'labelmaps' / key}.png: size {labels.shape} differs from its photo")
            with atomic_path(out / split / f"{key}.png") as tmp:
                Image.fromarray(np.concatenate([colourise(labels), photo], axis=1)).save(tmp, format="PNG")
        counts[split] = len(keys)
    info = {**params, "size": meta["size"], "num_train": counts["train"], "num_test": counts["test"],
            "num_labels": NUM_LABELS, "labels": ["background"] + [class_name(c) for c in range(NUM_CLASSES)],
            "palette": palette().tolist(), "direction": "AtoB: A label map, B photo"}
    write_text_atomic(out / "meta.json", json.dumps(info, indent=1) + "\n")
    return out


def load_aligned_meta(data_dir: str | Path) -> dict:
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise GanstackError(f"{path}: not found; {data_dir} is not an exported shapes pair set "
                            f"(run `ganstack prepare shapes --aligned --out {data_dir}`)")
    meta = load_meta(data_dir)
    if meta.get("dataset") != "shapes_aligned":
        raise GanstackError(f"{path}: not a shapes pair set (dataset {meta.get('dataset')!r})")
    return meta
