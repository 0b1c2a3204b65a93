"""Distribution metrics on features: Inception Score, FID and KID.

The arithmetic is torch-fidelity's own (its metric functions are called, not
re-implemented), so a score from any extractor here equals torch-fidelity's
on the same features. Two protocol choices sit on top, as the metric
libraries recommend: images reach the extractor as uint8 rounded from [-1, 1]
(`to_uint8`), and features are float64 before any statistic.
"""
from __future__ import annotations

import warnings

import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric

from ..errors import GanstackError

TORCH_FIDELITY_SEED = 2020  # torch-fidelity's default rng_seed: same shuffles and subsets as its API


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images -> uint8 in [0, 255] with rounding (not truncation), as saving a PNG does."""
    return images.float().add(1).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


def inception_score(logits: torch.Tensor, *, splits: int = 10, seed: int = TORCH_FIDELITY_SEED) -> dict:
    """IS over `splits` splits of the shuffled samples, from unnormalised class logits (N, C)."""
    if len(logits) < splits:
        raise GanstackError(f"inception score: {len(logits)} images for {splits} splits; generate more images "
                            "or lower EVAL.IS_SPLITS")
    out = isc_features_to_metric(logits.double().cpu(), splits=splits, shuffle=True, rng_seed=seed)
    return {"mean": out["inception_score_mean"], "std": out["inception_score_std"], "splits": splits}


def statistics(features: torch.Tensor) -> dict:
    """Mean and covariance (float64) of (N, D) features: what FID compares."""
    return fid_features_to_statistics(features.double().cpu())


def frechet_distance(stats_a: dict, stats_b: dict, *, num_a: int, num_b: int, what: str = "FID") -> float:
    dim = len(stats_a["mu"])
    if min(num_a, num_b) < dim:
        warnings.warn(f"{what} from {min(num_a, num_b)} images of {dim}-d features: the covariance is singular "
                      f"below {dim} samples, so the score is biased upwards and not comparable to published "
                      f"ones; use at least {dim} images (the protocol uses 30,000 on birds/COCO)", stacklevel=2)
    return float(fid_statistics_to_metric(stats_a, stats_b, verbose=False)["frechet_inception_distance"])


def kernel_distance(features_a: torch.Tensor, features_b: torch.Tensor, *, subsets: int = 100,
                    subset_size: int = 1000, seed: int = TORCH_FIDELITY_SEED, what: str = "KID") -> dict:
    """KID: unbiased MMD^2 with the cubic polynomial kernel, mean/std over random subsets."""
    smallest = min(len(features_a), len(features_b))
    if smallest < subset_size:
        raise GanstackError(f"{what}: EVAL.KID_SUBSET_SIZE={subset_size} but only {smallest} images; generate "
                            f"more images or set EVAL.KID_SUBSET_SIZE <= {smallest}")
    out = kid_features_to_metric(features_a.double().cpu(), features_b.double().cpu(), kid_subsets=subsets,
                                 kid_subset_size=subset_size, kid_kernel="poly", kid_kernel_poly_degree=3,
                                 kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1, rng_seed=seed,
                                 verbose=False)
    return {"mean": out["kernel_inception_distance_mean"], "std": out["kernel_inception_distance_std"],
            "subsets": subsets, "subset_size": subset_size}
