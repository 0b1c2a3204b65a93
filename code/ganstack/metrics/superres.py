"""PSNR and SSIM of super-resolved images, with the protocol of the SR papers stated in the report.

  channel     Y of ITU-R BT.601 (MATLAB's rgb2ycbcr: Y in [16, 235], computed in float from the
              8-bit RGB, not rounded), as SRCNN, SRGAN and the benchmark tables; and RGB
  border      SR.EVAL_BORDER pixels cut from every side before scoring (-1: the scale, as SRGAN
              and EDSR); the report states it
  PSNR        10 log10(255^2 / MSE) per image over the cropped pixels, averaged over the images
  SSIM        scikit-image's structural_similarity with the settings of Wang et al. 2004 that the
              papers' MATLAB code uses: Gaussian window sigma 1.5 (11 x 11), K1 0.01, K2 0.03,
              population (not sample) covariance, data range 255; RGB: the mean over channels
  images      outputs and targets as 8-bit images (rounded), as they are saved and as the papers
              score them
The bicubic row upscales the same LR inputs with MATLAB's imresize (ganstack.imaging).
With SR.TEXTURE_JUDGE the report adds the texture judge's patch FID/KID and real share
(metrics/sr_judge.py) for the model and for bicubic: the perceptual side PSNR misses. With
EVAL.INCEPTION_WEIGHTS it adds the Inception FID/KID of every non-overlapping SR.INCEPTION_PATCH
patch (border-cropped; torch-fidelity's Inception resizes each to 299 px) against the HR images'
patches: a handful of test images gives hundreds of patches, where whole-image FID would need
thousands of images.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import GanstackError
from ..imaging import bicubic_upscale, rgb_to_y
from .distribution import to_uint8


def _crop(x: np.ndarray, border: int) -> np.ndarray:
    return x[..., border:x.shape[-2] - border, border:x.shape[-1] - border] if border else x


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of (H, W) or (C, H, W) images in 0..255 (float)."""
    from skimage.metrics import structural_similarity
    kwargs = dict(data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    if a.ndim == 3:
        return float(structural_similarity(a.transpose(1, 2, 0), b.transpose(1, 2, 0), channel_axis=-1, **kwargs))
    return float(structural_similarity(a, b, **kwargs))


def luma(rgb_u8: torch.Tensor) -> np.ndarray:
    """(3, H, W) uint8 -> (H, W) float64 BT.601 Y in [16, 235]."""
    return rgb_to_y(rgb_u8.double() / 255)[0].mul(255).numpy()


def image_scores(output_u8: torch.Tensor, target_u8: torch.Tensor, border: int) -> dict[str, float]:
    """PSNR and SSIM on Y and on RGB of one (3, H, W) uint8 image against its target."""
    y_out, y_ref = _crop(luma(output_u8), border), _crop(luma(target_u8), border)
    rgb_out = _crop(output_u8.numpy().astype(np.float64), border)
    rgb_ref = _crop(target_u8.numpy().astype(np.float64), border)
    return {"psnr_y": psnr(y_out, y_ref), "ssim_y": ssim(y_out, y_ref),
            "psnr_rgb": psnr(rgb_out, rgb_ref), "ssim_rgb": ssim(rgb_out, rgb_ref)}


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}


def _texture_judge(cfg, variant, not_run: dict):
    """The texture judge of the config's HR training set (trained once), or None with the reason."""
    if not cfg.SR.TEXTURE_JUDGE:
        not_run["texture_judge"] = "SR.TEXTURE_JUDGE is off"
        return None
    from ..data.superres import sr_dataset
    from .sr_judge import load_or_train_judge
    try:
        train_set = sr_dataset(cfg, "train", train=False)
    except GanstackError as e:
        not_run["texture_judge"] = f"it trains on the HR training images, which are not readable here ({e})"
        return None
    return load_or_train_judge(train_set, device=str(variant.device), steps=cfg.SR.TEXTURE_JUDGE_STEPS)


def _inception_tallies(cfg, variant, border: int, not_run: dict) -> dict:
    """model / bicubic / target tallies of Inception patch features, or {} with the reason."""
    if not cfg.EVAL.INCEPTION_WEIGHTS:
        not_run["inception"] = "EVAL.INCEPTION_WEIGHTS is empty: no Inception FID/KID (the texture judge stands in)"
        return {}
    from .inception import InceptionFeatures
    from .sr_judge import PatchTally
    extractor = InceptionFeatures(cfg.EVAL.INCEPTION_WEIGHTS, variant.device)
    batch = cfg.EVAL.BATCH_SIZE if cfg.EVAL.BATCH_SIZE > 1 else 32  # SR eval batches whole images one by one

    class Inception(PatchTally):
        what, size = "Inception", cfg.SR.INCEPTION_PATCH

        def featurise(self, patches_u8):
            return torch.cat([extractor(chunk)["pool"].cpu() for chunk in patches_u8.split(batch)]) \
                if len(patches_u8) else torch.zeros(0, 2048)

    return {k: Inception(border) for k in ("model", "bicubic", "target")}


def sr_metrics(cfg, variant, split: str) -> dict:
    """The model's and bicubic's PSNR/SSIM (and texture-judge scores) over every image of `split`, whole
    images one at a time."""
    from .sr_judge import TextureTally
    dataset = variant.dataset(split, train=False)
    scale = cfg.SR.SCALE
    border = scale if cfg.SR.EVAL_BORDER < 0 else cfg.SR.EVAL_BORDER
    not_run = {}
    judge = _texture_judge(cfg, variant, not_run)
    tallies = {k: TextureTally(judge, border) for k in ("model", "bicubic", "target")} if judge else {}
    inception = _inception_tallies(cfg, variant, border, not_run)
    model, bicubic, per_image, skipped = [], [], [], 0
    for i in range(len(dataset)):
        item = dataset[i]
        if item is None:
            skipped += 1
            continue
        target = to_uint8(item["hr"])
        output = to_uint8(variant.sample(item["lr"][None])[0].cpu())
        baseline = to_uint8(bicubic_upscale(item["lr"], scale))
        model.append(image_scores(output, target, border))
        bicubic.append(image_scores(baseline, target, border))
        per_image.append({"image": dataset.path(i).name, **model[-1], "bicubic": bicubic[-1]})
        for key, image in ("model", output), ("bicubic", baseline), ("target", target):
            for tally in (tallies, inception):
                if tally:
                    tally[key].add(image)
    root = cfg.SR.TEST_DIR if split != "train" and cfg.SR.TEST_DIR else cfg.DATA_DIR
    texture = {k: {} for k in ("model", "bicubic")}
    for name, tally in (("texture_judge", tallies), ("inception", inception)):
        for k in texture if tally and model else ():
            texture[k][name] = tally[k].scores(tally["target"])
    return {
        "protocol": {
            "split": split, "data": str(root), "layout": dataset.layout, "images": len(model),
            "unreadable_skipped": skipped, "scale": scale, "border_cropped": border,
            "lr_images": "given" if dataset.lr_dir is not None else f"made by {cfg.SR.DOWNSAMPLE} bicubic "
                         "(antialiased, rounded to 8 bits)",
            "hr_images": "cropped to multiples of the scale (bottom/right)",
            "channels": "Y (BT.601, [16, 235], float from 8-bit RGB) and RGB; 8-bit outputs (rounded)",
            "psnr": "per image, peak 255, then the mean",
            "ssim": "scikit-image structural_similarity: gaussian sigma 1.5, K1 0.01, K2 0.03, population "
                    "covariance, data range 255; RGB: mean over channels",
            "network_channels": cfg.SR.CHANNELS,
            "texture_judge": "patch FID/KID and real share on every non-overlapping 32 px patch of the "
                             "border-cropped images (metrics/sr_judge.py)",
            **({"inception": f"FID/KID of every non-overlapping {cfg.SR.INCEPTION_PATCH} px patch of the "
                             "border-cropped images on torch-fidelity's Inception pool features (resized to 299)"}
               if inception else {}),
            "not_run": not_run,
        },
        **_mean(model), **texture["model"],
        "bicubic": {**_mean(bicubic), **texture["bicubic"]},
        "per_image": per_image,
    }
