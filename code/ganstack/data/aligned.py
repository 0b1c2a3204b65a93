"""Readers of pix2pix's image-to-image layouts (junyanz/pytorch-CycleGAN-and-pix2pix).

Aligned (DATA.DATASET_MODE aligned; facades, cityscapes, maps, shapes_aligned):

    DATA_DIR/{train,val,test}/<name>.<ext>   A|B side by side in one file: A is the left
                                             floor(w/2) columns, B the next floor(w/2)

  When `test/` is missing the test split reads `val/` (facades ships test/, cityscapes
  only val/).

Unaligned (DATA.DATASET_MODE unaligned; CycleGAN's horse2zebra...):

    DATA_DIR/{train,test}A/<name>.<ext>      one plain image per file, the two folders
    DATA_DIR/{train,test}B/<name>.<ext>      unpaired and of any lengths

Files are taken in name order; extensions jpg, jpeg, png, bmp, tif, tiff, webp and npy.
A sample is ``{"A": input, "B": target, "index": i}`` AFTER applying DATA.DIRECTION:
"A" is always the network's input and "B" its target (BtoA swaps the halves, or the
folders), each a float tensor (C, H, W) in [-1, 1].

Channels: INPUT_NC / OUTPUT_NC of 1 read an image as grey, 3 as RGB, 4 as RGBA.
16-bit images (PIL modes I;16, I) keep their precision (scaled by 65535). A `.npy`
file is an (H, W, C) array (A|B along the width for aligned data) of any C, which
both INPUT_NC and OUTPUT_NC must equal; uint8 is scaled by 255, uint16 by 65535,
floats are taken as already in [0, 1]. Resizing works on float tensors, so no
data goes through 8 bits. An unreadable file gives a warning and None, which
data.attngan.collate (the collate function of these datasets too) drops and counts.

DATA.PREPROCESS, as the original's get_transform (our generators take any size,
so `none` does no power-of-two rounding):
    resize_and_crop        bicubic resize to LOAD_SIZE x LOAD_SIZE, random CROP_SIZE crop
    crop                   random CROP_SIZE crop
    scale_width[_and_crop] width to LOAD_SIZE keeping the aspect (height at least
                           CROP_SIZE)[, random CROP_SIZE crop]
    none                   unchanged
and a horizontal flip with p 0.5 when TRAIN.FLIP is on. The two images of an
aligned pair get the same resize, crop and flip. Without augmentation (evaluation,
sampling) nothing is random: resize_and_crop resizes straight to CROP_SIZE, the
crops are centred and nothing is flipped. Every random choice comes from the seed
data.sampler passes with the index, as in data.attngan.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from ..errors import GanstackError
from .sampler import unpack

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".npy")
PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
NUMERIC_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # converting these to L/RGB loses bits
PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
DIRECTIONS = ("AtoB", "BtoA")
UNREADABLE = (OSError, ValueError, SyntaxError, EOFError)  # what a damaged image or array raises


# ------------------------------------------------------------------ files
def split_folder(root: str | Path, split: str, side: str = "") -> Path:
    """root/<split><side>; the test split falls back to val when test is missing (cityscapes)."""
    root = Path(root)
    folder = root / f"{split}{side}"
    if split == "test" and not folder.is_dir() and (root / f"val{side}").is_dir():
        return root / f"val{side}"
    return folder


def list_images(folder: Path, layout: str) -> list[Path]:
    """The images of `folder` in name order; a missing or empty folder is an error naming `layout`."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS) \
        if folder.is_dir() else []
    if not files:
        problem = "holds no images" if folder.is_dir() else "folder not found"
        raise GanstackError(f"{folder}: {problem}; expected {layout} "
                            f"({', '.join(e[1:] for e in EXTENSIONS)} files)")
    return files


def check_channels(files: list[Path], *channels: int) -> None:
    """Fail at once, in one line, on channel counts the files cannot give (an error raised in a
    DataLoader worker would come wrapped in a traceback)."""
    images = [p for p in files if p.suffix.lower() != ".npy"]
    bad = [c for c in channels if c not in PIL_MODES]
    if images and bad:
        raise GanstackError(f"{images[0]}: image files give 1 (grey), 3 (RGB) or 4 (RGBA) channels, not {bad[0]}; "
                            "set DATA.INPUT_NC / DATA.OUTPUT_NC accordingly (only .npy files carry other counts)")
    arrays = [p for p in files if p.suffix.lower() == ".npy"]
    if arrays:
        try:
            shape = np.load(arrays[0], mmap_mode="r").shape
        except UNREADABLE:
            return  # a damaged file is skipped with a warning when it is read
        for c in channels:
            check_array_shape(shape, c, arrays[0])


def check_array_shape(shape: tuple, channels: int, path: Path) -> None:
    if len(shape) != 3:
        raise GanstackError(f"{path}: array of shape {tuple(shape)}; .npy files must be (H, W, C)")
    if shape[-1] != channels:
        raise GanstackError(f"{path}: .npy holds {shape[-1]} channels but DATA.INPUT_NC / DATA.OUTPUT_NC "
                            f"ask {channels}; set both to {shape[-1]}")


# ------------------------------------------------------------------ pixels
def decode(path: Path) -> Image.Image | np.ndarray:
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    img = Image.open(path)
    img.load()  # decode now, so a damaged file fails here
    return img


def unit_float(arr: np.ndarray, path: Path) -> np.ndarray:
    """float32 in [0, 1]: uint8 / 255, 16-bit integers (and PIL's 32-bit 'I' mode that holds them)
    / 65535, floats as they are."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255
    if arr.dtype.kind in "ui":
        return np.clip(arr.astype(np.float32) / 65535, 0, 1)
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    raise GanstackError(f"{path}: dtype {arr.dtype} is not supported; use uint8, uint16 or floats in [0, 1]")


def pixels(image: Image.Image | np.ndarray, channels: int, path: Path) -> np.ndarray:
    """float32 (H, W, channels) in [0, 1]."""
    if isinstance(image, np.ndarray):
        check_array_shape(image.shape, channels, path)
        return unit_float(image, path)
    if image.mode in NUMERIC_GREY_MODES:  # PIL would squash these to 8 bits: replicate the grey instead
        grey = unit_float(np.asarray(image), path)[..., None]
        arr = np.repeat(grey, min(channels, 3), axis=-1)
        return np.concatenate([arr, np.ones_like(grey)], axis=-1) if channels == 4 else arr
    arr = unit_float(np.asarray(image.convert(PIL_MODES[channels])), path)
    return arr.reshape(arr.shape[0], arr.shape[1], channels)  # L gives (H, W)


def read_pixels(path: Path, channels: set[int]) -> dict[int, np.ndarray] | None:
    """The file at each channel count asked; None, with a warning, when it cannot be read."""
    try:
        image = decode(path)
        return {c: pixels(image, c, path) for c in channels}
    except UNREADABLE as e:
        # A damaged file must not kill an epoch: collate drops it and counts it.
        warnings.warn(f"{path}: unreadable image skipped ({e})", stacklevel=3)
        return None


def to_chw(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


# ------------------------------------------------------------------ preprocessing
@dataclass(frozen=True)
class Preprocess:
    """DATA.PREPROCESS on float tensors (C, H, W) in [0, 1]; `draw` picks the parameters once,
    so both images of a pair get the same ones. `rotation` (DATA.ROTATION) > 0 adds a random
    rotation when augmenting."""
    mode: str
    load_size: int
    crop_size: int
    augment: bool
    flip: bool
    rotation: float = 0.0

    def resized(self, h: int, w: int) -> tuple[int, int]:
        if self.mode == "resize_and_crop":
            side = self.load_size if self.augment else self.crop_size
            return side, side
        if self.mode.startswith("scale_width") and not (w == self.load_size and h >= self.crop_size):
            return max(int(self.load_size * h / w), self.crop_size), self.load_size  # int(): the original's rounding
        return h, w

    def draw(self, h: int, w: int, rng: np.random.Generator
             ) -> tuple[tuple[int, int], tuple[int, int] | None, bool, float]:
        """(size after resizing, top-left corner of the crop or None, flip, rotation in degrees)."""
        size = self.resized(h, w)
        corner = None
        if self.mode.endswith("crop"):
            spare = (size[0] - self.crop_size, size[1] - self.crop_size)
            if min(spare) < 0:
                raise GanstackError(f"image of {size[0]}x{size[1]} (after {self.mode}) is smaller than DATA.CROP_SIZE="
                                    f"{self.crop_size}; lower CROP_SIZE or use PREPROCESS resize_and_crop")
            corner = tuple(int(rng.integers(s + 1)) if self.augment else s // 2 for s in spare)
        flip = bool(self.augment and self.flip and rng.random() < 0.5)
        # drawn only when on: the other settings keep their random streams
        angle = float(rng.uniform(0, self.rotation)) if self.augment and self.rotation > 0 else 0.0
        return size, corner, flip, angle

    def apply(self, x: torch.Tensor, plan) -> torch.Tensor:
        size, corner, flip, angle = plan
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x[None], size=size, mode="bicubic", antialias=True, align_corners=False)[0]
            x = x.clamp_(0, 1)  # bicubic overshoots
        if corner is not None:
            top, left = corner
            x = x[:, top:top + self.crop_size, left:left + self.crop_size]
        if flip:
            x = x.flip(-1)
        if angle:  # counter-clockwise, nearest pixel, black corners: torchvision's RandomRotation defaults
            x = TF.rotate(x, angle)
        return x.mul(2).sub_(1).contiguous()


def check_options(direction: str, preprocess: str, load_size: int, crop_size: int) -> None:
    if direction not in DIRECTIONS:
        raise GanstackError(f"DATA.DIRECTION={direction!r} is not one of {', '.join(DIRECTIONS)}")
    if preprocess not in PREPROCESS:
        raise GanstackError(f"DATA.PREPROCESS={preprocess!r} is not one of {', '.join(PREPROCESS)}")
    if preprocess in ("resize_and_crop", "scale_width_and_crop") and load_size < crop_size:
        raise GanstackError(f"DATA.LOAD_SIZE={load_size} is smaller than DATA.CROP_SIZE={crop_size}; "
                            "the crop must fit in the resized image")


# ------------------------------------------------------------------ datasets
class AlignedDataset(torch.utils.data.Dataset):
    """A|B pairs side by side in one file: root/<split>/*; see the module docstring."""

    def __init__(self, root: str | Path, split: str, *, direction: str = "AtoB",
                 preprocess: str = "resize_and_crop", load_size: int = 286, crop_size: int = 256,
                 augment: bool = True, flip: bool = True, input_nc: int = 3, output_nc: int = 3,
                 rotation: float = 0.0):
        check_options(direction, preprocess, load_size, crop_size)
        self.folder = split_folder(root, split)
        self.files = list_images(self.folder, f"{Path(root)}/{split}/ holding A|B pairs side by side "
                                 "(pix2pix's aligned layout)")
        check_channels(self.files, input_nc, output_nc)
        self.a_to_b = direction == "AtoB"
        # channels of the file's left (A) and right (B) halves
        self.left_nc, self.right_nc = (input_nc, output_nc) if self.a_to_b else (output_nc, input_nc)
        self.pre = Preprocess(preprocess, load_size, crop_size, augment, flip, rotation)

    def __len__(self) -> int:
        return len(self.files)

    def path(self, index: int) -> Path:
        return self.files[index]

    def __getitem__(self, item):
        index, seed = unpack(item)
        arrays = read_pixels(self.files[index], {self.left_nc, self.right_nc})
        if arrays is None:
            return None
        half = arrays[self.left_nc].shape[1] // 2  # an odd last column belongs to neither half
        left = to_chw(arrays[self.left_nc][:, :half])
        right = to_chw(arrays[self.right_nc][:, half:2 * half])
        plan = self.pre.draw(left.shape[1], half, np.random.default_rng(seed))
        left, right = self.pre.apply(left, plan), self.pre.apply(right, plan)
        a, b = (left, right) if self.a_to_b else (right, left)
        return {"A": a, "B": b, "index": index}


class UnalignedDataset(torch.utils.data.Dataset):
    """Unpaired images in root/<split>A and root/<split>B (BtoA makes <split>B the input A).

    `files` (A's, B's) replaces the two folders (face aging: two age ranges of one folder).
    Its length is the longer side's; item i takes A[i % len A] and, when augmenting, a B
    drawn from the sample's seed (CycleGAN without serial_batches), else B[i % len B].
    A and B get their own crop and flip."""

    def __init__(self, root: str | Path, split: str, *, direction: str = "AtoB",
                 preprocess: str = "resize_and_crop", load_size: int = 286, crop_size: int = 256,
                 augment: bool = True, flip: bool = True, input_nc: int = 3, output_nc: int = 3,
                 files: tuple[list[Path], list[Path]] | None = None, rotation: float = 0.0):
        check_options(direction, preprocess, load_size, crop_size)
        sides = ("A", "B") if direction == "AtoB" else ("B", "A")
        if files is None:
            files = tuple(list_images(split_folder(root, split, side),
                                      f"{Path(root)}/{split}A/ and {split}B/ holding images (CycleGAN's unaligned layout)")
                          for side in sides)
        self.files_a, self.files_b = files
        check_channels(self.files_a, input_nc)
        check_channels(self.files_b, output_nc)
        self.input_nc, self.output_nc = input_nc, output_nc
        self.augment = augment
        self.pre = Preprocess(preprocess, load_size, crop_size, augment, flip, rotation)

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def path(self, index: int) -> Path:
        """The input (A) image of item `index`."""
        return self.files_a[index % len(self.files_a)]

    def __getitem__(self, item):
        index, seed = unpack(item)
        rng = np.random.default_rng(seed)
        b_index = int(rng.integers(len(self.files_b))) if self.augment else index % len(self.files_b)
        a = read_pixels(self.path(index), {self.input_nc})
        b = read_pixels(self.files_b[b_index], {self.output_nc}) if a is not None else None
        if b is None:
            return None
        a, b = to_chw(a[self.input_nc]), to_chw(b[self.output_nc])
        a = self.pre.apply(a, self.pre.draw(a.shape[1], a.shape[2], rng))
        b = self.pre.apply(b, self.pre.draw(b.shape[1], b.shape[2], rng))
        return {"A": a, "B": b, "index": index}


def image_dataset(cfg, split: str, train: bool) -> AlignedDataset | UnalignedDataset:
    """The dataset cfg.DATA describes, in cfg.DATA_DIR; `train` turns augmentation on.
    Batch it with data.attngan.collate, which drops unreadable files (None) and counts them."""
    root = Path(cfg.DATA_DIR)
    if not root.is_dir():
        raise GanstackError(f"DATA_DIR={root}: folder not found; point DATA_DIR at a pix2pix dataset "
                            "(or run `ganstack prepare shapes --aligned`)")
    data = cfg.DATA
    cls = AlignedDataset if data.DATASET_MODE == "aligned" else UnalignedDataset
    return cls(root, split, direction=data.DIRECTION, preprocess=data.PREPROCESS, load_size=data.LOAD_SIZE,
               crop_size=data.CROP_SIZE, augment=train, flip=cfg.TRAIN.FLIP, input_nc=data.INPUT_NC,
               output_nc=data.OUTPUT_NC, rotation=data.ROTATION)


def label_palette(cfg) -> np.ndarray:
    """(DATA.LABEL_NC, 3) colours of a label-map input, class 0 first: the JSON list in
    DATA.LABEL_PALETTE, else the "palette" of DATA_DIR/meta.json (an exported shapes pair set)."""
    d = cfg.DATA
    path = Path(d.LABEL_PALETTE) if d.LABEL_PALETTE else Path(cfg.DATA_DIR) / "meta.json"
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise GanstackError(f"{path}: cannot read the label palette DATA.LABEL_NC={d.LABEL_NC} needs ({e}); "
                            "set DATA.LABEL_PALETTE to a JSON list of [r, g, b] or DATA.LABEL_NC: 0") from None
    colours = found.get("palette") if isinstance(found, dict) else found
    arr = np.asarray(colours if colours is not None else [], dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 3 or not ((0 <= arr) & (arr <= 255)).all():
        raise GanstackError(f"{path}: the label palette must be a list of [r, g, b] in 0..255 "
                            + ("(it has none)" if colours is None else f"(found shape {arr.shape})"))
    if len(arr) != d.LABEL_NC:
        raise GanstackError(f"{path}: the palette holds {len(arr)} colours but DATA.LABEL_NC={d.LABEL_NC}; "
                            "set LABEL_NC to the number of classes")
    return arr


def load_inputs(paths: list[str], cfg) -> tuple[list[str], list[torch.Tensor]]:
    """Input images given by the user (files, or folders of them, in name order) for `ganstack sample`:
    (file names, tensors (INPUT_NC, H, W) in [-1, 1]) with the evaluation preprocessing. Any size."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += list_images(p, "input images")
        elif p.is_file():
            files.append(p)
        else:
            raise GanstackError(f"--input {p}: no such file or folder")
    d = cfg.DATA
    prep = Preprocess(d.PREPROCESS, d.LOAD_SIZE, d.CROP_SIZE, augment=False, flip=False)
    images = []
    for path in files:
        try:
            x = to_chw(pixels(decode(path), d.INPUT_NC, path))
        except UNREADABLE as e:
            raise GanstackError(f"--input {path}: unreadable image ({e})") from None
        images.append(prep.apply(x, prep.draw(*x.shape[-2:], np.random.default_rng(0))))
    return [p.name for p in files], images
