"""One evaluation pass: generated and real images through every extractor that applies.

Extractors turn uint8 images into named features:
  inception  the standard Inception (EVAL.INCEPTION_WEIGHTS): IS, FID, KID
  judge      the embedded dataset's judge: domain IS (its class probabilities),
             domain FID/KID (its pooled features) and object accuracy
Generated images stream through them batch by batch (never written to disk
unless asked); the real images' features come from the reference cache.
Every generated-image score is reported beside the real held-out images' score
under the same protocol.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

import torch

from ..errors import GanstackError
from . import distribution as dist
from .reference_cache import ReferenceCache


class JudgeFeatures(torch.nn.Module):
    """The shapes judge as an extractor: pooled features and class probabilities; with a segmenter
    also every class's boxes (metrics/shapes_segmenter.detect_boxes), for SOA's IoU scores."""

    name = "judge"

    def __init__(self, judge, cache_file: Path, segmenter=None, segmenter_file: Path | None = None):
        super().__init__()
        self.judge, self.segmenter = judge, segmenter
        # the cached files' names hash their data and settings
        self.identity = str(cache_file) + (f"+{segmenter_file}" if segmenter is not None else "")

    @torch.no_grad()
    def forward(self, images_u8: torch.Tensor) -> dict[str, torch.Tensor]:
        x = images_u8.float() / 127.5 - 1.0
        probs = self.judge.predict(x)
        # IS wants one distribution per image: the multi-label presences, normalised
        logits = torch.log(probs / probs.sum(dim=1, keepdim=True).clamp_min(1e-12)).clamp_min(-80)
        out = {"pool": self.judge.features(x), "logits": logits, "probs": probs}
        if self.segmenter is not None:
            from .shapes_segmenter import detect_boxes
            out["boxes"] = detect_boxes(self.segmenter, x)
        return out


def extract(extractors: dict[str, Callable], batches_u8: Iterable[torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Run every extractor over a stream of uint8 batches; features gathered on the CPU."""
    out: dict[str, dict[str, list]] = {name: defaultdict(list) for name in extractors}
    count = 0
    for batch in batches_u8:
        count += len(batch)
        for name, extractor in extractors.items():
            for key, value in extractor(batch).items():
                out[name][key].append(value.float().cpu())
    if count == 0:
        raise GanstackError("evaluation: no images to evaluate (empty split?)")
    return {name: {k: torch.cat(v) for k, v in feats.items()} for name, feats in out.items()}


def distribution_scores(generated: dict[str, torch.Tensor], real: dict[str, torch.Tensor], eval_cfg,
                        what: str) -> dict:
    """IS of the generated and real images, and FID/KID between them, for one extractor."""
    n_gen, n_real = len(generated["pool"]), len(real["pool"])
    splits = eval_cfg.IS_SPLITS
    return {
        "is": dist.inception_score(generated["logits"], splits=splits),
        "is_real": dist.inception_score(real["logits"], splits=splits),
        "fid": dist.frechet_distance(dist.statistics(generated["pool"]), real["stats"],
                                     num_a=n_gen, num_b=n_real, what=f"{what} FID"),
        "kid": dist.kernel_distance(generated["pool"], real["pool"], subsets=eval_cfg.KID_SUBSETS,
                                    subset_size=eval_cfg.KID_SUBSET_SIZE, what=f"{what} KID"),
        "generated_images": n_gen, "real_images": n_real,
    }


class DamsmCodes(torch.nn.Module):
    """A DAMSM image encoder as a probe: the global image code, for R-precision."""

    name = "damsm"

    def __init__(self, encoder, weights_path):
        super().__init__()
        self.encoder = encoder
        self.weights_path = weights_path  # identifies the cached real-image codes

    @torch.no_grad()
    def forward(self, images_u8: torch.Tensor) -> dict[str, torch.Tensor]:
        device = next(self.encoder.parameters()).device
        return {"code": self.encoder(images_u8.to(device).float() / 127.5 - 1.0)[1]}


def evaluate_images(extractors: dict[str, torch.nn.Module], generated_u8: Iterable[torch.Tensor],
                    reference: Callable[[], Iterable[torch.Tensor]], cache: ReferenceCache, eval_cfg,
                    probes: dict[str, torch.nn.Module] | None = None) -> dict:
    """Distribution scores of a generated stream against the (cached) real split, per extractor.

    `probes` see the same stream (one pass) but get no distribution score. Returns
    {extractor: scores} plus every generated feature under "_features" for callers that
    score more (object accuracy, R-precision)."""
    generated = extract({**extractors, **(probes or {})}, generated_u8)
    report = {}
    for name, extractor in extractors.items():
        real = cache.features(extractor, reference)
        what = "Inception" if name == "inception" else f"{name} (domain)"
        report[name] = distribution_scores(generated[name], real, eval_cfg, what)
    report["_features"] = generated
    return report
