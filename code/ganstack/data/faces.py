"""Face-aging data: UTKFace and CACD2000 file names (the age is in the name), the embedded faces set
(UTKFace names plus identities.csv), and Fast-AgingGAN's two folders (trainA/, trainB/).

    UTKFace    [age]_[gender]_[race]_[date&time].jpg (also the aligned set's *.jpg.chip.jpg)
    CACD2000   [age]_[Name_Parts]_[nnnn].jpg: the identity is the name
    faces      DATA_DIR/{train,test}/ of UTKFace names, DATA_DIR/identities.csv (`ganstack prepare faces`)

A folder with train/ and test/ splits is used as it is; a flat folder (UTKFace/, CACD2000/) is split
here, by identity when the names give one (CACD) and else by file, 1 in 10 to test, by a hash of the
name: the same split on every machine. Files whose names carry no age are skipped with one warning.
"""
from __future__ import annotations

import csv
import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import GanstackError
from .aligned import EXTENSIONS, Preprocess, UnalignedDataset, read_pixels, to_chw
from .sampler import unpack

UTKFACE = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d+)\.jpg(\.chip\.jpg)?$", re.I)
CACD = re.compile(r"^(\d{1,3})_(.+)_(\d{4})\.jpg$", re.I)


@dataclass(frozen=True)
class Face:
    path: Path
    age: int
    identity: str | None  # None when the set does not say who


def parse_name(name: str) -> tuple[int, str | None] | None:
    """(age, identity or None) from a UTKFace or CACD2000 file name; None when it has no age."""
    m = UTKFACE.match(name)
    if m:
        return int(m.group(1)), None
    m = CACD.match(name)
    if m:
        return int(m.group(1)), m.group(2)
    return None


def _identity_file(root: Path) -> dict[str, str]:
    """identities.csv (the faces set's side file): relative file -> identity."""
    path = root / "identities.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        return {row["file"]: row["identity"] for row in csv.DictReader(f)}


def _in_test(key: str) -> bool:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % 10 == 0


def read_faces(root: str | Path, split: str) -> list[Face]:
    """The faces of `split` (train | test) in name order."""
    root = Path(root)
    if not root.is_dir():
        raise GanstackError(f"DATA_DIR={root}: folder not found; point it at a UTKFace or CACD2000 folder, or run "
                            "`ganstack prepare faces`")
    folder = root / split if (root / "train").is_dir() else root
    if not folder.is_dir():
        raise GanstackError(f"{folder}: folder not found; {root} has train/ but no {split}/")
    identities = _identity_file(root)
    faces, nameless = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS):
        parsed = parse_name(path.name)
        if parsed is None:
            nameless.append(path.name)
            continue
        age, identity = parsed
        identity = identities.get(path.relative_to(root).as_posix(), identity)
        if folder == root and _in_test(identity or path.name) != (split == "test"):
            continue  # a flat folder: this file belongs to the other split
        faces.append(Face(path, age, identity))
    if nameless:
        warnings.warn(f"{folder}: {len(nameless)} file(s) without an age in the name skipped (e.g. {nameless[0]}); "
                      "UTKFace names are [age]_[gender]_[race]_[date].jpg, CACD2000's [age]_[name]_[nnnn].jpg",
                      stacklevel=2)
    if not faces:
        raise GanstackError(f"{folder}: no face images with an age in their names for the {split} split; "
                            "expected UTKFace ([age]_[gender]_[race]_[date].jpg) or CACD2000 ([age]_[name]_[nnnn].jpg) "
                            "names, or trainA/ and trainB/ folders")
    return faces


def in_range(age: int, bounds) -> bool:
    low, high = bounds
    return low <= age <= high


def age_group(age: int, groups) -> int | None:
    """The index of the AGE_GROUPS range holding `age`, or None."""
    for i, bounds in enumerate(groups):
        if in_range(age, bounds):
            return i
    return None


def domain_dataset(cfg, split: str, train: bool) -> UnalignedDataset:
    """Young (A) and old (B) faces for a two-domain model: Fast-AgingGAN's trainA/ and trainB/
    folders when DATA_DIR has them, else the ages of AGING.DOMAIN_A and DOMAIN_B from the names."""
    root, data, ages = Path(cfg.DATA_DIR), cfg.DATA, cfg.AGING
    common = dict(direction=data.DIRECTION, preprocess=data.PREPROCESS, load_size=data.LOAD_SIZE,
                  crop_size=data.CROP_SIZE, augment=train, flip=cfg.TRAIN.FLIP, input_nc=3, output_nc=3,
                  rotation=data.ROTATION)
    if (root / f"{split}A").is_dir() or (root / "trainA").is_dir():
        return UnalignedDataset(root, split, **common)
    faces = read_faces(root, split)
    sides = []
    for key in ("DOMAIN_A", "DOMAIN_B"):
        chosen = [f.path for f in faces if in_range(f.age, ages[key])]
        if not chosen:
            raise GanstackError(f"AGING.{key}={list(ages[key])}: no {split} face of {root} has an age in that "
                                f"range (ages there: {min(f.age for f in faces)}-{max(f.age for f in faces)})")
        sides.append(chosen)
    if data.DIRECTION == "BtoA":
        sides.reverse()
    return UnalignedDataset(root, split, files=(sides[0], sides[1]), **common)


class AgeGroupDataset(torch.utils.data.Dataset):
    """IPCGAN's batches: a source face of any age, a target age group drawn at random, a real face of
    that group (what D sees as real with the target group) and another group (D's mismatched
    condition). Item i takes source i; the draws come from the sample's seed, so resume is exact."""

    def __init__(self, root, split: str, groups, *, preprocess: str, load_size: int, crop_size: int,
                 augment: bool, flip: bool, rotation: float = 0.0):
        faces = read_faces(root, split)
        self.groups = [list(g) for g in groups]
        self.sources = [f for f in faces if age_group(f.age, self.groups) is not None]
        self.by_group = [[f.path for f in self.sources if age_group(f.age, self.groups) == g]
                         for g in range(len(self.groups))]
        empty = [self.groups[g] for g, files in enumerate(self.by_group) if not files]
        if empty or len(self.groups) < 2:
            raise GanstackError(f"AGING.AGE_GROUPS: no {split} face of {root} in the group(s) {empty}; every group "
                                "needs faces (ages there: "
                                f"{min(f.age for f in faces)}-{max(f.age for f in faces)})" if empty else
                                "AGING.AGE_GROUPS: give at least two groups")
        self.augment = augment
        self.pre = Preprocess(preprocess, load_size, crop_size, augment, flip, rotation)

    def __len__(self) -> int:
        return len(self.sources)

    def path(self, index: int) -> Path:
        return self.sources[index].path

    def group_of(self, index: int) -> int:
        return age_group(self.sources[index].age, self.groups)

    def _read(self, path: Path, rng) -> torch.Tensor | None:
        arr = read_pixels(path, {3})
        if arr is None:
            return None
        x = to_chw(arr[3])
        return self.pre.apply(x, self.pre.draw(x.shape[1], x.shape[2], rng))

    def __getitem__(self, item):
        index, seed = unpack(item)
        rng = np.random.default_rng(seed)
        count = len(self.groups)
        target = int(rng.integers(count)) if self.augment else (self.group_of(index) + 1) % count
        false = (target + 1 + int(rng.integers(count - 1))) % count
        files = self.by_group[target]
        real_path = files[int(rng.integers(len(files)))] if self.augment else files[index % len(files)]
        source, real = self._read(self.path(index), rng), self._read(real_path, rng)
        if source is None or real is None:
            return None
        return {"source": source, "real": real, "target": target, "false": false, "index": index}


def group_dataset(cfg, split: str, train: bool) -> AgeGroupDataset:
    data = cfg.DATA
    return AgeGroupDataset(cfg.DATA_DIR, split, cfg.AGING.AGE_GROUPS, preprocess=data.PREPROCESS,
                           load_size=data.LOAD_SIZE, crop_size=data.CROP_SIZE, augment=train, flip=cfg.TRAIN.FLIP,
                           rotation=data.ROTATION)
