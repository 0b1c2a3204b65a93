"""Loaded generators, kept in a least-recently-used cache, and the images they draw for a request."""
from __future__ import annotations

import base64
import tempfile
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from ..engine.evaluate import load_variant
from ..visual import boxes_overlay, three_channels
from .runs import Run


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class ModelCache:
    """At most `size` loaded (run, checkpoint) generators; the least recently used one leaves first.
    Loading is serialised (one lock) so two requests never load the same weights twice."""

    def __init__(self, size: int, device: str, precision: str = "fp32"):
        self.size, self.device, self.precision = size, device, precision
        self._models: OrderedDict[tuple[str, str, float], tuple] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, run: Run, checkpoint: Path):
        key = (str(run.folder), str(checkpoint), checkpoint.stat().st_mtime)  # a rewritten file reloads
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            variant, path, state = load_variant(run.config(), str(checkpoint), self.device, self.precision)
            self._models[key] = (variant, state.get("step"))
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return self._models[key]

    def loaded(self) -> list[tuple[str, str]]:
        return [(Path(folder).name, Path(ckpt).name) for folder, ckpt, _ in self._models]


@dataclass
class Drawn:
    """One generated image: what it was drawn for, and its PNG."""
    checkpoint: str
    step: int | None
    input_index: int
    sample_index: int
    label: str
    png: bytes
    kind: str = "image"  # image | layout (boxes drawn over it) | attention


_GLOBAL_RNG = threading.Lock()


@contextmanager
def seeded(seed: int):
    """Drawing with torch's global RNG set from the request's seed (conditioning augmentation and
    test-time dropout draw from it), one request at a time so the same seed gives the same images."""
    with _GLOBAL_RNG:
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def draw_text(variant, captions: list[str], count: int, seed: int, truncation: float) -> list[list[torch.Tensor]]:
    """count images per caption; caption i's noise is seed + i, as `ganstack sample`."""
    conditions = variant.conditions_from_text(captions)
    out = []
    for i in range(len(captions)):
        noise = variant.noise(count, seed=seed + i, truncation=truncation)
        c = None if conditions is None else conditions[i:i + 1].expand(count, *conditions.shape[1:])
        out.append(list(variant.sample(c, noise)))
    return out


@torch.no_grad()
def draw_layouts(variant, layouts: list[dict], count: int, seed: int, truncation: float):
    """OP-GAN: count images per parsed layout, and each with its boxes and labels drawn over it."""
    captions, conditions = variant.conditions_from_layout_data(layouts)
    plain, boxed = [], []
    for i in range(len(captions)):
        noise = variant.noise(count, seed=seed + i, truncation=truncation)
        images = variant.sample(conditions[i:i + 1].expand(count, *conditions.shape[1:]), noise)
        boxes, names = variant.drawn_layout(conditions[i])
        plain.append(list(images))
        boxed.append([boxes_overlay(x.float().add(1).div(2), boxes, names) * 2 - 1 for x in images])
    return captions, plain, boxed


def read_upload(variant, data: bytes, suffix: str) -> torch.Tensor:
    """An uploaded image as the variant reads its input files (`sample --input`): its own reader."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        _, inputs = variant.conditions_from_files([str(path)])
    return inputs[0]


@torch.no_grad()
def draw_from_image(variant, data: bytes, suffix: str, count: int, seed: int) -> tuple[torch.Tensor, list]:
    """Image-to-image: the input as the variant reads it (its own file reader) and `count` outputs,
    output k drawn from seed + k as `ganstack sample --input`."""
    x = read_upload(variant, data, suffix)
    outputs = []
    for k in range(count):
        torch.manual_seed(seed + k)  # inside `seeded`: as `ganstack sample --input`
        outputs.append(variant.sample(x[None], variant.noise(1, seed=seed + k))[0])
    return three_channels(x), [three_channels(y) for y in outputs]


@torch.no_grad()
def draw_attention(variant, caption: str, seed: int, truncation: float) -> torch.Tensor:
    """AttnGAN: every stage's per-word attention maps for the caption's first image, (3, H, W) in [-1, 1]."""
    conditions = variant.conditions_from_text([caption])
    noise = variant.noise(1, seed=seed, truncation=truncation)
    return variant.attention_strip(caption, conditions[:1], noise[:1]) * 2 - 1


@torch.no_grad()
def draw_age_strip(variant, data: bytes, suffix: str, ages: list[int]) -> tuple[torch.Tensor, list]:
    """Face aging: the input face as the variant reads it, then the face at each age (`sample --ages`)."""
    x = read_upload(variant, data, suffix)
    return three_channels(x), [three_channels(y) for y in variant.age_strip(x, ages)]
