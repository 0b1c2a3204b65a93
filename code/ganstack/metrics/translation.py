"""Metrics of image-to-image variants (`ganstack eval` on pix2pix and later ones).

Every input image of the split is translated once (noise and test-time dropout drawn
from the eval seed), then:
  l1              mean |output - target| in [-1, 1] units (the L1 term's metric)
  fcn_score       shapes pairs: the shapes segmenter on the outputs against the input
                  label maps (pix2pix's Cityscapes protocol: pixel accuracy, per-class
                  accuracy, class IoU), beside fcn_score_real, the same on the targets
  segmenter       shapes pairs: domain FID/KID of outputs against targets on the
                  segmenter's pooled features
  inception       with EVAL.INCEPTION_WEIGHTS: Inception IS/FID/KID against the targets
                  (the real split's features cached like the text-to-image ones)
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.synthetic.embedded import embedded
from . import distribution as dist


def _translate_split(cfg, variant, split: str, seed: int):
    """(inputs, outputs, targets) of the whole split: inputs/targets float in [-1, 1], outputs uint8."""
    dataset = variant.dataset(split, train=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.EVAL.BATCH_SIZE, shuffle=False,
                                         num_workers=cfg.WORKERS, collate_fn=variant.collate)
    noise = variant.noise(len(dataset), seed=seed)
    torch.manual_seed(seed)  # test-time dropout draws from the global RNG
    inputs, outputs, targets, done = [], [], [], 0
    for batch in loader:
        if batch.get("size", 1) == 0:
            continue
        n = len(batch["A"])
        outputs.append(dist.to_uint8(variant.sample(batch["A"], noise[done:done + n]).cpu()))
        inputs.append(batch["A"])
        targets.append(batch["B"])
        done += n
    return torch.cat(inputs), torch.cat(outputs), torch.cat(targets)


def _distribution(generated: torch.Tensor, real: torch.Tensor, ev, what: str) -> dict:
    n_gen, n_real = len(generated), len(real)
    return {"fid": dist.frechet_distance(dist.statistics(generated), dist.statistics(real), num_a=n_gen,
                                         num_b=n_real, what=f"{what} FID"),
            "kid": dist.kernel_distance(generated, real, subsets=ev.KID_SUBSETS, subset_size=ev.KID_SUBSET_SIZE,
                                        what=f"{what} KID"),
            "generated_images": n_gen, "real_images": n_real}


def _batched(fn, images: torch.Tensor, size: int) -> torch.Tensor:
    return torch.cat([fn(b) for b in images.split(size)])


def shapes_pair_scores(cfg, inputs: torch.Tensor, outputs_u8: torch.Tensor, targets: torch.Tensor,
                       device) -> dict:
    """FCN-score of outputs and targets against the input label maps, and the segmenter's domain FID/KID."""
    from ..data.synthetic.shapes_aligned import decode_labelmap
    from .shapes_segmenter import ConfusionMatrix, load_or_train_segmenter
    segmenter = load_or_train_segmenter(cfg.DATA_DIR, device=str(device), seed=0)
    labels = torch.from_numpy(decode_labelmap(dist.to_uint8(inputs).permute(0, 2, 3, 1).numpy()))
    generated = outputs_u8.float() / 127.5 - 1.0
    size = cfg.EVAL.BATCH_SIZE
    report = {}
    for key, photos in (("fcn_score", generated), ("fcn_score_real", targets)):
        matrix = ConfusionMatrix()
        matrix.update(_batched(lambda b: segmenter.predict(b).cpu(), photos, size), labels)
        report[key] = matrix.scores()
    features = [_batched(lambda b: segmenter.features(b).cpu(), photos, size) for photos in (generated, targets)]
    report["segmenter"] = _distribution(*features, cfg.EVAL, "segmenter (domain)")
    return report


def inception_scores(cfg, outputs_u8: torch.Tensor, targets: torch.Tensor, split: str, device) -> dict:
    from .inception import InceptionFeatures
    from .reference_cache import ReferenceCache
    from .suite import evaluate_images
    ev = cfg.EVAL
    extractor = InceptionFeatures(ev.INCEPTION_WEIGHTS, device)
    cache = ReferenceCache(ev.STATS_DIR, cfg.DATA_DIR, split, int(targets.shape[-1]))
    targets_u8 = dist.to_uint8(targets)
    scores = evaluate_images({"inception": extractor}, outputs_u8.split(ev.BATCH_SIZE),
                             lambda: targets_u8.split(ev.BATCH_SIZE), cache, ev)
    scores.pop("_features")
    return scores


def translation_metrics(cfg, variant, split: str, seed: int) -> dict:
    inputs, outputs, targets = _translate_split(cfg, variant, split, seed)
    skipped = {}
    report = {"protocol": {"split": split, "seed": seed, "images": len(outputs),
                           "generator": "G with the test mode of the variant (see its docs)",
                           "images_format": "uint8 with rounding, at the evaluation size (DATA.CROP_SIZE or native)",
                           "skipped": skipped},
              "l1": float(np.mean(np.abs(outputs.float().numpy() / 127.5 - 1.0 - targets.float().numpy())))}
    three_channels = outputs.shape[1] == 3 and targets.shape[1] == 3
    pair_scores = embedded(cfg).pair_scores(cfg, inputs, outputs, targets, variant.device)
    if pair_scores is not None:
        report.update(pair_scores)
    else:
        skipped["fcn_score"] = "the FCN-score needs the shapes pairs (DATASET_NAME shapes_aligned, DIRECTION AtoB)"
    if cfg.EVAL.INCEPTION_WEIGHTS and three_channels:
        report["inception"] = inception_scores(cfg, outputs, targets, split, variant.device)
    else:
        skipped["inception"] = "EVAL.INCEPTION_WEIGHTS is empty (or the images are not RGB): no Inception IS/FID/KID"
    return report
