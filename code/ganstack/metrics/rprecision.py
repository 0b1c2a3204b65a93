"""R-precision (AttnGAN, Xu et al. 2018, section 5): does an image retrieve its own caption?

For each image, its true caption is ranked against ``candidates - 1`` captions drawn at
random from other images, by the cosine similarity of the DAMSM global codes (image code
vs sentence code), as the evaluation code of the AttnGAN era did (AttnGAN itself shipped
none). R-precision is the fraction of images whose true caption ranks first (R = 1),
averaged over ``runs`` independent draws.
"""

from __future__ import annotations

import numpy as np
import torch

from ganstack.errors import GanstackError

__all__ = ["r_precision"]

# Rows scored at once: bounds the (rows, candidates, D) gather of caption codes.
_CHUNK = 256


def _as_array(x, name: str) -> np.ndarray:
    if torch.is_tensor(x):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise GanstackError(f"r_precision: {name} must be (N, D), got shape {x.shape}")
    return x


def _exclusion_blocks(n: int, k: int, class_ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Describe each row's candidate pool as ``order`` minus one contiguous block.

    Returns (order, start, size): the pool of row i is ``order`` without positions
    start[i] .. start[i]+size[i]-1. Without classes the block is the image itself; with
    classes it is the image's whole class (order sorts images by class), unless fewer
    than k images would remain, in which case it falls back to the image itself.
    """
    if class_ids is None:
        return np.arange(n), np.arange(n), np.ones(n, dtype=np.int64)
    order = np.argsort(class_ids, kind="stable")
    _, inverse, counts = np.unique(class_ids, return_inverse=True, return_counts=True)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    start, size = first[inverse], counts[inverse]
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    few = n - size < k
    start[few], size[few] = position[few], 1
    return order, start, size


def _draw_candidates(rng: np.random.Generator, n: int, k: int,
                     class_ids: np.ndarray | None = None) -> np.ndarray:
    """(n, k) indices: row i holds k distinct images drawn uniformly from row i's pool.

    The pool is every other image, or every other-class image when class_ids is given
    and there are at least k of them. Floyd's algorithm draws a uniform k-subset of
    range(m_i) row by row in k vectorised steps (O(n k^2), not O(n^2)); ranks are then
    mapped to image indices by skipping the excluded block.
    """
    order, start, size = _exclusion_blocks(n, k, class_ids)
    pool = n - size                                             # m_i >= k for every row
    picked = np.empty((n, k), dtype=np.int64)
    for s in range(k):
        top = pool - k + s                                      # draw from 0..top inclusive
        t = rng.integers(0, top + 1)
        seen = (picked[:, :s] == t[:, None]).any(axis=1)
        picked[:, s] = np.where(seen, top, t)
    picked += np.where(picked >= start[:, None], size[:, None], 0)
    return order[picked]


def r_precision(image_codes, text_codes, *, candidates: int = 100, runs: int = 10, seed: int = 0,
                class_ids=None) -> dict:
    """R-precision of global codes: image_codes (N, D) and the true caption code of each image (N, D).

    Each image ranks its own caption against ``candidates - 1`` captions of other images,
    drawn without replacement (from other-class images when ``class_ids`` (N,) is given
    and enough exist). A hit needs the true caption's cosine to beat every candidate's
    (ties count as misses). Returns {"mean", "std" (population, over runs), "runs",
    "candidates", "images", "protocol"} with fractions in [0, 1].
    """
    img = _as_array(image_codes, "image_codes")
    txt = _as_array(text_codes, "text_codes")
    n = img.shape[0]
    if txt.shape != img.shape:
        raise GanstackError(f"r_precision: image_codes {img.shape} and text_codes {txt.shape} differ in shape")
    if candidates < 2 or runs < 1:
        raise GanstackError(f"r_precision needs candidates >= 2 and runs >= 1, got {candidates} and {runs}")
    if n < candidates:
        raise GanstackError(f"R-precision with {candidates} candidates needs at least {candidates} images, "
                            f"got {n}: evaluate more images or lower EVAL.R_PRECISION_CANDIDATES")
    if class_ids is not None:
        class_ids = np.asarray(class_ids.cpu() if torch.is_tensor(class_ids) else class_ids).reshape(-1)
        if class_ids.shape[0] != n:
            raise GanstackError(f"r_precision: class_ids has {class_ids.shape[0]} entries for {n} images")

    img /= np.maximum(np.linalg.norm(img, axis=1, keepdims=True), 1e-8)
    txt /= np.maximum(np.linalg.norm(txt, axis=1, keepdims=True), 1e-8)
    true = np.einsum("nd,nd->n", img, txt)
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(runs):
        others = _draw_candidates(rng, n, candidates - 1, class_ids)
        hits = 0
        for lo in range(0, n, _CHUNK):
            rows = slice(lo, lo + _CHUNK)
            best = np.einsum("rd,rkd->rk", img[rows], txt[others[rows]]).max(axis=1)
            hits += int((true[rows] > best).sum())
        scores.append(hits / n)
    pool = "other-class images (other images when too few)" if class_ids is not None else "other images"
    return {
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores)),
        "runs": scores,
        "candidates": candidates,
        "images": n,
        "protocol": (f"R@1: each image's true caption vs {candidates - 1} captions of {pool} drawn at "
                     f"random without replacement; cosine of DAMSM global codes; {runs} runs, seed {seed}"),
    }
