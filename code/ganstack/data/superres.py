"""Readers of super-resolution data: HR photographs and their LR versions.

Layouts, found in DATA_DIR (or SR.TEST_DIR for the test split) in this order:

  DIV2K      <prefix>_train_HR/*.png, <prefix>_valid_HR/*.png (the test split reads valid, as
             the papers); LR given in <prefix>_{train,valid}_LR_bicubic/X<s>/<name>x<s>.png
             when that folder exists (DIV2K_train_HR, data/photos' photos_train_HR...)
  benchmark  HR/*.png with LR in LR_bicubic/X<s>/<name>x<s>.png when present (Set5, Set14,
             BSD100, Urban100 as EDSR's benchmark archive); every split reads HR/
  folders    <split>/ (test falls back to val/) holding HR images

HR images must be 8-bit RGB (grey-scale ones too when SR.CHANNELS is y); anything else is a
one-line error naming the file. An HR image whose sides are not multiples of the scale loses
its bottom rows and right columns beyond the last multiple (MATLAB's modcrop, as the benchmark
scripts). A given LR image must be exactly that size / scale.

Without given LR images the LR side is made from the HR crop (training) or the whole HR image
(evaluation) by MATLAB's bicubic imresize (ganstack.imaging: antialiased, mirrored borders,
rounded to 8 bits as MATLAB writes them), or PIL's bicubic with SR.DOWNSAMPLE pil.

Training items are random SR.HR_CROP crops (SR.CROPS_PER_IMAGE per image and epoch) with
random flips and 90-degree rotations (SR.AUGMENT); evaluation items are whole images. An item is
{"lr": (3, h, w), "hr": (3, h*s, w*s), "index": i}, both RGB in [-1, 1]; every random choice
comes from the seed data.sampler passes with the index.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import GanstackError
from ..imaging import imresize, modcrop
from .aligned import EXTENSIONS, UNREADABLE, list_images, read_pixels, split_folder, to_chw
from .sampler import unpack

GREY_MODES = ("L", "LA")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def find_folders(root: str | Path, split: str, scale: int) -> tuple[Path, Path | None, str]:
    """(HR folder, LR folder or None, layout name) of `split` under `root`."""
    root = Path(root)
    if not root.is_dir():
        raise GanstackError(f"DATA_DIR={root}: folder not found; point it at a DIV2K-style folder "
                            "(*_train_HR/, *_valid_HR/), a benchmark folder (HR/) or split folders "
                            "(or run `ganstack prepare photos`)")
    if (root / "HR").is_dir():
        lr = root / "LR_bicubic" / f"X{scale}"
        return root / "HR", lr if lr.is_dir() else None, "benchmark"
    prefixes = sorted(p.name[:-len("_train_HR")] for p in root.glob("*_train_HR") if p.is_dir())
    if len(prefixes) > 1:
        raise GanstackError(f"{root}: holds several DIV2K-style sets ({', '.join(prefixes)}); "
                            "point DATA_DIR at a folder with one")
    if prefixes:
        side = "train" if split == "train" else "valid"
        lr = root / f"{prefixes[0]}_{side}_LR_bicubic" / f"X{scale}"
        return root / f"{prefixes[0]}_{side}_HR", lr if lr.is_dir() else None, "DIV2K"
    return split_folder(root, split), None, "folders"


def lr_name(hr: Path, scale: int) -> str:
    """DIV2K's and EDSR's LR file name: 0001.png -> 0001x4.png."""
    return f"{hr.stem}x{scale}{hr.suffix}"


def _open_checked(path: Path, channels: str) -> Image.Image:
    """The image at `path`, refusing what SR cannot use (16-bit, grey-scale for RGB)."""
    image = Image.open(path)
    if image.mode in SIXTEEN_BIT_MODES:
        raise GanstackError(f"{path}: {image.mode} (16-bit or float) image; super-resolution data and its "
                            "PSNR are 8-bit: convert it to 8-bit RGB PNG")
    if image.mode in GREY_MODES and channels == "rgb":
        raise GanstackError(f"{path}: grey-scale image, but SR.CHANNELS is rgb; convert it to RGB or "
                            "train on the Y channel (SR.CHANNELS: y)")
    return image


def read_rgb(path: Path) -> torch.Tensor | None:
    """(3, H, W) float32 RGB in [0, 1] (on 1/255 steps), or None with a warning when the file is damaged."""
    arrays = read_pixels(path, {3})
    return None if arrays is None else to_chw(arrays[3])


def to_unit(arr: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float().div_(255)


def downsample(hr: torch.Tensor, scale: int, method: str) -> torch.Tensor:
    """(3, H, W) in [0, 1] (H, W multiples of scale) -> (3, H/s, W/s) in [0, 1], on 1/255 steps."""
    if method == "matlab":
        return imresize(hr, 1 / scale, quantize=True)
    image = Image.fromarray(hr.mul(255).round().byte().permute(1, 2, 0).numpy())
    small = image.resize((hr.shape[2] // scale, hr.shape[1] // scale), Image.Resampling.BICUBIC)
    return to_unit(np.asarray(small))


class SRDataset(torch.utils.data.Dataset):
    """HR images (and given LR ones) of one split; see the module docstring."""

    def __init__(self, root: str | Path, split: str, *, scale: int, crop: int, augment: bool, flips: bool = True,
                 crops_per_image: int = 1, downsample: str = "matlab", channels: str = "rgb",
                 cache: bool = False):
        self.hr_dir, self.lr_dir, self.layout = find_folders(root, split, scale)
        self.files = [p for p in list_images(self.hr_dir, f"HR images ({self.layout} layout)")
                      if p.suffix.lower() != ".npy"]
        self.scale, self.crop, self.augment, self.flips = scale, crop, augment, flips
        self.repeat = crops_per_image if augment else 1
        self.method, self.channels = downsample, channels
        self.cache: dict[int, tuple] | None = {} if cache else None
        self._check_files()

    def _check_files(self) -> None:
        """Modes and LR sizes from the headers (cheap): fail before training, in one line."""
        s = self.scale
        for path in self.files:
            try:
                with _open_checked(path, self.channels) as image:
                    w, h = image.size
            except UNREADABLE:
                continue  # damaged: skipped with a warning when read
            if h < s or w < s:
                raise GanstackError(f"{path}: {w}x{h} is smaller than the scale {s}")
            if self.augment and (h // s * s < self.crop or w // s * s < self.crop):
                raise GanstackError(f"{path}: {w}x{h} is smaller than SR.HR_CROP={self.crop}; lower it")
            if self.lr_dir is None:
                continue
            lr = self.lr_dir / lr_name(path, s)
            if not lr.is_file():
                raise GanstackError(f"{lr}: missing; {self.lr_dir} must hold an LR image for every HR image "
                                    f"(or remove the folder to make LR images on the fly)")
            try:
                with _open_checked(lr, self.channels) as image:
                    lw, lh = image.size
            except UNREADABLE:
                continue
            if (lh, lw) != (h // s, w // s):
                raise GanstackError(f"{lr}: LR image is {lw}x{lh} but its HR image {path.name} is {w}x{h}: "
                                    f"x{s} needs {w // s}x{h // s}")

    def __len__(self) -> int:
        return len(self.files) * self.repeat

    def path(self, index: int) -> Path:
        return self.files[index % len(self.files)]

    def _pixels(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """(HR in [0, 1] modcropped, given LR or None), through the cache when on."""
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        hr = read_rgb(self.files[i])
        if hr is None:
            return None
        lr = None
        if self.lr_dir is not None:
            lr = read_rgb(self.lr_dir / lr_name(self.files[i], self.scale))
            if lr is None:
                return None
        pair = (modcrop(hr, self.scale), lr)
        if self.cache is not None:
            self.cache[i] = pair
        return pair

    def __getitem__(self, item):
        index, seed = unpack(item)
        i = index % len(self.files)
        pair = self._pixels(i)
        if pair is None:
            return None
        hr, lr = pair
        s = self.scale
        if self.augment:
            rng = np.random.default_rng(seed)
            size = self.crop // s
            top = int(rng.integers(hr.shape[1] // s - size + 1))
            left = int(rng.integers(hr.shape[2] // s - size + 1))
            hr = hr[:, top * s:(top + size) * s, left * s:(left + size) * s]
            lr = lr[:, top:top + size, left:left + size] if lr is not None else None
            hr, lr = self._flip_rotate(hr, lr, rng)
        if lr is None:
            lr = downsample(hr, s, self.method)
        return {"lr": lr.mul(2).sub(1).contiguous(), "hr": hr.mul(2).sub(1).contiguous(), "index": i}

    def _flip_rotate(self, hr, lr, rng):
        """The same random horizontal/vertical flip and 90-degree rotation of both sides."""
        if not self.flips:
            return hr, lr
        h_flip, v_flip, rotate = (bool(b) for b in rng.random(3) < 0.5)
        for on, op in ((h_flip, lambda x: x.flip(-1)), (v_flip, lambda x: x.flip(-2)),
                       (rotate, lambda x: x.transpose(-1, -2))):
            if on:
                hr = op(hr)
                lr = op(lr) if lr is not None else None
        return hr, lr


def sr_dataset(cfg, split: str, train: bool) -> SRDataset:
    """The split cfg describes (SR.TEST_DIR, when set, holds the test split); `train` turns on crops
    and augmentation. Batch it with data.attngan.collate (drops unreadable files and counts them)."""
    sr = cfg.SR
    root = sr.TEST_DIR if split != "train" and sr.TEST_DIR else cfg.DATA_DIR
    return SRDataset(root, split, scale=sr.SCALE, crop=sr.HR_CROP, augment=train, flips=sr.AUGMENT,
                     crops_per_image=sr.CROPS_PER_IMAGE, downsample=sr.DOWNSAMPLE, channels=sr.CHANNELS,
                     cache=sr.CACHE_IMAGES)


def load_lr_inputs(paths: list[str]) -> tuple[list[str], list[torch.Tensor]]:
    """Low-resolution images given by the user (`ganstack sample --input`, files or folders): names and
    (3, h, w) tensors in [-1, 1], any size."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += [f for f in list_images(p, "input images") if f.suffix.lower() in EXTENSIONS[:-1]]
        elif p.is_file():
            files.append(p)
        else:
            raise GanstackError(f"--input {p}: no such file or folder")
    images = []
    for path in files:
        image = read_rgb(path)
        if image is None:
            raise GanstackError(f"--input {path}: unreadable image")
        images.append(image.mul(2).sub(1))
    return [p.name for p in files], images
