"""The texture judge of super-resolution: an offline stand-in for Inception features when judging
whether super-resolved images look like real photographs.

Inception FID needs weights that cannot be downloaded here, and ImageNet classes say little
about fine texture. So, as the shapes judge stands in for SOA's detector, a small CNN is trained
once per HR training set (cached under models/judges/) to tell real 32 px HR patches from the
same patches degraded the ways SR outputs fail: bicubic down-up by 4 and by 2 (the blur of
MSE-trained networks), additive noise, and JPEG blocking. Its pooled features then give a
patch-level FID/KID between super-resolved and real HR images (every non-overlapping 32 px patch
of the border-cropped images), and its "real" class gives the share of output patches it takes
for real HR texture, beside the real HR patches' own share. Lower FID / higher share: sharper,
more photo-like texture, which is where SRGAN should beat SRResNet (its PSNR being lower).
"""
from __future__ import annotations

import hashlib
import io
import math
import pickle
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..errors import GanstackError
from ..imaging import imresize
from ..io import atomic_path
from . import distribution as dist
from .shapes_judge import _deterministic

JUDGE_VERSION = 1
PATCH = 32
CLASSES = ("real", "bicubic_x4", "bicubic_x2", "noise", "jpeg")
MAX_IMAGES = 100         # HR training images the judge samples patches from (DIV2K has 800)
STEPS, BATCH = 1500, 64


class TextureJudge(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        layers, cin = [], 3
        for cout, stride in ((w, 1), (w, 2), (2 * w, 1), (2 * w, 2), (4 * w, 1), (4 * w, 2)):
            layers += [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cin, len(CLASSES))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Patches in [-1, 1] -> pooled (N, 4 * width) features."""
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# ------------------------------------------------------------------ training data
def _degrade(patch: torch.Tensor, kind: int, rng: np.random.Generator) -> torch.Tensor:
    """(3, 32, 32) in [0, 1] -> its degraded version of class `kind` (on 1/255 steps)."""
    if kind in (1, 2):
        factor = 4 if kind == 1 else 2
        return imresize(imresize(patch, 1 / factor, quantize=True), factor, quantize=True)
    if kind == 3:
        noise = torch.from_numpy(rng.normal(0, rng.uniform(0.01, 0.05), patch.shape)).float()
        return (patch + noise).mul(255).round().clamp(0, 255).div(255)
    if kind == 4:
        buffer = io.BytesIO()
        Image.fromarray(patch.mul(255).round().byte().permute(1, 2, 0).numpy()).save(
            buffer, format="JPEG", quality=int(rng.integers(10, 40)))
        return torch.from_numpy(np.asarray(Image.open(buffer).convert("RGB")).copy()).permute(2, 0, 1).float() / 255
    return patch


def _patch_set(images: list[torch.Tensor], count: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` random patches of random images, each degraded by a random class: (x in [-1, 1], labels)."""
    xs, ys = [], []
    for _ in range(count):
        image = images[int(rng.integers(len(images)))]
        top = int(rng.integers(image.shape[1] - PATCH + 1))
        left = int(rng.integers(image.shape[2] - PATCH + 1))
        kind = int(rng.integers(len(CLASSES)))
        xs.append(_degrade(image[:, top:top + PATCH, left:left + PATCH], kind, rng))
        ys.append(kind)
    return torch.stack(xs).mul(2).sub(1), torch.tensor(ys)


def train_judge(images: list[torch.Tensor], *, seed: int = 0, steps: int = STEPS, device: str = "cpu") -> TextureJudge:
    """Train on fresh random patches (a pool of 20 batches, redrawn every 20 steps)."""
    device = torch.device(device)
    rng = np.random.default_rng(seed)
    with _deterministic(device, seed), torch.enable_grad():
        judge = TextureJudge().to(device)
        opt = torch.optim.AdamW(judge.parameters(), lr=2e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        judge.train()
        for step in range(steps):
            if step % 20 == 0:
                pool_x, pool_y = _patch_set(images, 20 * BATCH, rng)
            k = step % 20
            x, y = pool_x[k * BATCH:(k + 1) * BATCH].to(device), pool_y[k * BATCH:(k + 1) * BATCH].to(device)
            loss = F.cross_entropy(judge(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return judge.eval().requires_grad_(False)


def judge_file(hr_files: list[Path], cache_dir: str | Path, seed: int, steps: int) -> Path:
    """cache_dir/sr_texture_<hash>.pt: the hash covers the HR files (names, sizes) and the settings."""
    digest = hashlib.sha256(f"v{JUDGE_VERSION}|seed{seed}|steps{steps}".encode())
    for path in hr_files[:MAX_IMAGES]:
        digest.update(f"|{path.name}:{path.stat().st_size}".encode())
    return Path(cache_dir) / f"sr_texture_{digest.hexdigest()[:16]}.pt"


def load_or_train_judge(train_set, cache_dir: str | Path = "models/judges", device: str = "cpu", seed: int = 0,
                        steps: int = STEPS) -> TextureJudge:
    """The judge of an SR training set (an SRDataset), trained once on its first MAX_IMAGES HR images."""
    path = judge_file(train_set.files, cache_dir, seed, steps)
    if path.is_file():
        try:
            judge = TextureJudge()
            judge.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["judge"])
        except (RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as e:
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise GanstackError(f"{path}: unreadable texture judge ({reason}); delete it to train it again") from None
        return judge.to(device).eval().requires_grad_(False)
    print(f"SR texture judge: training on {train_set.hr_dir} (once; cached as {path})", file=sys.stderr, flush=True)
    from ..data.superres import read_rgb
    images = [x for x in (read_rgb(p) for p in train_set.files[:MAX_IMAGES]) if x is not None]
    images = [x for x in images if min(x.shape[1:]) >= PATCH]
    if not images:
        raise GanstackError(f"{train_set.hr_dir}: no readable HR image of at least {PATCH} px for the texture judge")
    judge = train_judge(images, seed=seed, steps=steps, device=device)
    with atomic_path(path) as tmp:
        torch.save({"judge": judge.state_dict(), "version": JUDGE_VERSION, "classes": list(CLASSES)}, tmp)
    return judge.to(device)


# ------------------------------------------------------------------ scoring
def patches(image_u8: torch.Tensor, border: int, size: int = PATCH) -> torch.Tensor:
    """Every non-overlapping size x size patch of a (3, H, W) uint8 image after the border crop, as uint8."""
    x = image_u8[:, border:image_u8.shape[1] - border, border:image_u8.shape[2] - border]
    rows, cols = x.shape[1] // size, x.shape[2] // size
    x = x[:, :rows * size, :cols * size].reshape(3, rows, size, cols, size)
    return x.permute(1, 3, 0, 2, 4).reshape(rows * cols, 3, size, size)


@torch.no_grad()
def judge_patches(judge: TextureJudge, x: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(pooled features, P(real)) of patches."""
    device = next(judge.parameters()).device
    feats, real = [], []
    for chunk in x.split(batch):
        f = judge.features(chunk.to(device))
        feats.append(f.cpu())
        real.append(judge.head(f).softmax(1)[:, 0].cpu())
    return torch.cat(feats), torch.cat(real)


class PatchTally:
    """Features of every patch of a stream of images, one image at a time (whole DIV2K images never pile
    up), and their FID/KID against a reference tally (the real HR images)."""

    what = "patch"
    size = PATCH

    def __init__(self, border: int):
        self.border = border
        self.features: list[torch.Tensor] = []

    def add(self, image_u8: torch.Tensor) -> None:
        self.features.append(self.featurise(patches(image_u8, self.border, self.size)))

    def featurise(self, patches_u8: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scores(self, reference: "PatchTally", kid_subsets: int = 100) -> dict:
        out_f, ref_f = torch.cat(self.features), torch.cat(reference.features)
        n = min(len(out_f), len(ref_f))
        return {
            "fid": dist.frechet_distance(dist.statistics(out_f), dist.statistics(ref_f), num_a=len(out_f),
                                         num_b=len(ref_f), what=f"SR {self.what} FID"),
            "kid": dist.kernel_distance(out_f, ref_f, subsets=kid_subsets, subset_size=min(n, 1000),
                                        what=f"SR {self.what} KID"),
            "patches": len(out_f), "patch_size": self.size,
        }


class TextureTally(PatchTally):
    """The texture judge's features and P(real) of 32 px patches."""

    what = "texture judge"

    def __init__(self, judge: TextureJudge, border: int):
        super().__init__(border)
        self.judge = judge
        self.real: list[torch.Tensor] = []

    def featurise(self, patches_u8: torch.Tensor) -> torch.Tensor:
        f, r = judge_patches(self.judge, patches_u8.float() / 127.5 - 1)
        self.real.append(r)
        return f

    def scores(self, reference: "TextureTally", kid_subsets: int = 100) -> dict:
        """Patch FID/KID against `reference` and the share of patches taken for real."""
        return {**super().scores(reference, kid_subsets),
                "real_share": float((torch.cat(self.real) > 0.5).float().mean()),
                "real_share_of_targets": float((torch.cat(reference.real) > 0.5).float().mean())}
