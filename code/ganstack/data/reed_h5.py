"""Reed et al. text-to-image HDF5 files (the GAN-INT-CLS layout of CUB and Oxford flowers).

  <file>.h5
    train/ valid/ test/           groups (class-disjoint splits); a missing one is empty
      <image>_<c>/                one group per image-caption pair
        name        str           image name, without extension
        img         np.void       the raw JPEG (or PNG) bytes
        embeddings  float (D,)    the caption's text embedding, any size D
        class       str           class name, e.g. "001.Black_footed_Albatross"
        txt         vlen str      the caption

`write_reed_h5` writes any captioned dataset in that layout. When the embeddings
come from a ganstack DAMSM text encoder, it also records the encoder file and
the vocabulary as file attributes, so a model trained on the HDF5 can still
encode free text at sampling time.
"""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np
import torch
from PIL import Image

from ..errors import GanstackError
from ..io import atomic_path
from .attngan import fit_image, other_class_index, to_tensor
from .sampler import unpack

SPLITS = ("train", "valid", "test")


def _text(value) -> str:
    value = value[()] if isinstance(value, h5py.Dataset) else value
    if isinstance(value, np.ndarray):
        value = value.item() if value.shape == () else value.tolist()[0]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise GanstackError(f"DATA_DIR={path}: HDF5 file not found")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise GanstackError(f"DATA_DIR={path}: not a readable HDF5 file ({e})") from None


def read_attrs(path: str | Path) -> dict:
    """ganstack's own attributes: text_encoder (path) and vocabulary (list of words), if written."""
    with _open(Path(path)) as f:
        out = {}
        if "text_encoder" in f.attrs:
            out["text_encoder"] = _text(f.attrs["text_encoder"])
        if "vocabulary" in f.attrs:
            out["vocabulary"] = json.loads(_text(f.attrs["vocabulary"]))
        return out


class ReedH5Dataset(torch.utils.data.Dataset):
    """Image, its caption's embedding, and a wrong image (of another class) per item.

    Items are ``(index, seed)`` pairs from data.sampler, so the wrong image and
    the augmentation are the same whatever the worker count and after resuming.
    The file is opened lazily in each worker (h5py handles cannot cross fork).
    """

    def __init__(self, path: str | Path, split: str, *, image_size: int, augment: bool = False,
                 flip: bool = True, wrong_image: bool = True, crop: bool = True):
        self.path = Path(path)
        if split not in SPLITS:
            raise GanstackError(f"{self.path}: split {split!r} is not one of {', '.join(SPLITS)}")
        with _open(self.path) as f:
            if split not in f:
                raise GanstackError(f"{self.path}: has no group {split!r} (groups: {', '.join(f.keys()) or 'none'})")
            group = f[split]
            self.keys = sorted(group.keys())
            if not self.keys:
                raise GanstackError(f"{self.path}: group {split!r} is empty")
            first = group[self.keys[0]]
            missing = [k for k in ("img", "embeddings", "class", "txt") if k not in first]
            if missing:
                raise GanstackError(f"{self.path}: {split}/{self.keys[0]} lacks {', '.join(missing)}; "
                                    "not a Reed et al. text-to-image HDF5 file")
            self.embed_dim = int(np.asarray(first["embeddings"]).reshape(-1).shape[0])
            names = [_text(group[k]["class"]) for k in self.keys]
        self.class_names = sorted(set(names))
        self.class_ids = np.array([self.class_names.index(n) for n in names], dtype=np.int64)
        self.split, self.image_size = split, image_size
        self.augment, self.flip, self.wrong_image = augment, flip, wrong_image
        self.crop = crop  # with augment: 76/64 resize and random crop (TRAIN.CROP_JITTER); else resize only
        self._file: h5py.File | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def _group(self, index: int) -> h5py.Group:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file[self.split][self.keys[index]]

    def caption(self, index: int) -> str:
        return _text(self._group(index)["txt"]).strip()

    def embedding(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self._group(index)["embeddings"], dtype=np.float32).reshape(-1))

    def _image(self, index: int, rng: np.random.Generator) -> torch.Tensor:
        raw = bytes(np.asarray(self._group(index)["img"]).tobytes())
        img = Image.open(io.BytesIO(raw)).convert("RGB")  # grey-scale files become RGB
        return to_tensor(fit_image(img, self.image_size, augment=self.augment, flip=self.flip, rng=rng,
                                   crop=self.crop))

    def __getitem__(self, item):
        index, seed = unpack(item)
        rng = np.random.default_rng(seed)
        embedding = self.embedding(index)
        if not torch.isfinite(embedding).all():  # one bad vector would turn every loss to NaN
            warnings.warn(f"{self.path}:{self.split}/{self.keys[index]}: embedding holds NaN or inf; skipped",
                          stacklevel=2)
            return None
        try:
            image = self._image(index, rng)
            wrong = self._image(other_class_index(self.class_ids, index, rng), rng) if self.wrong_image else None
        except (OSError, ValueError, SyntaxError) as e:
            warnings.warn(f"{self.path}:{self.split}/{self.keys[index]}: unreadable image skipped ({e})",
                          stacklevel=2)
            return None
        sample = {"images": [image], "embedding": embedding,
                  "class_id": int(self.class_ids[index]), "index": index}
        if wrong is not None:
            sample["wrong_images"] = [wrong]  # one per image size, as "images"
        return sample


def write_reed_h5(path: str | Path, splits: dict[str, Iterable[dict]], *, attrs: dict | None = None) -> int:
    """Write examples {name, image_bytes, embedding, class, caption} per split; returns the count.

    Keys are '<name>_<c>' with c counting the captions of each image, as Reed's files.
    The file appears atomically: a crash leaves no half-written HDF5 behind.
    """
    text = h5py.special_dtype(vlen=str)
    count = 0
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in (attrs or {}).items():
                f.attrs[key] = value if isinstance(value, str) else json.dumps(value)
            for split in SPLITS:
                group = f.create_group(split)
                seen: dict[str, int] = {}
                for ex in splits.get(split, ()):
                    c = seen.get(ex["name"], 0)
                    seen[ex["name"]] = c + 1
                    g = group.create_group(f"{ex['name']}_{c}")
                    g.create_dataset("name", data=ex["name"])
                    g.create_dataset("img", data=np.void(ex["image_bytes"]))
                    g.create_dataset("embeddings", data=np.asarray(ex["embedding"], dtype=np.float32))
                    g.create_dataset("class", data=ex["class"])
                    g.create_dataset("txt", data=ex["caption"], dtype=text)
                    count += 1
    return count
