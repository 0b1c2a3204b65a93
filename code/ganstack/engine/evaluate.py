"""`ganstack eval`: load a checkpoint into its variant and write a JSON report.

The report always carries the protocol (split, seed, checkpoint, step) and,
for the embedded shapes set, the judge's score on the real held-out images as
the reference row.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..data.synthetic.embedded import embedded
from ..errors import GanstackError
from ..io import write_text_atomic
from ..variants import get_variant
from .checkpoint import check_same_settings, latest_checkpoint, list_checkpoints, load_checkpoint, net_weights
from .distributed import setup
from .optim import AUTOCAST_DTYPES
from .trainer import run_dir_of, seed_everything


def load_variant(cfg: Config, ckpt: str | Path | None, device: str = "auto", precision: str = "fp32"):
    """The variant of `cfg` with the weights of `ckpt`, else TRAIN.NET_G, else the run's latest
    checkpoint; EMA nets when kept, unless TRAIN.EMA_DECAY is 0 (then the nets as trained).
    TRAIN.NET_G may also be a bare generator state dict (not for variants whose TRAIN.NET_G is the
    generator's starting point, as SRGAN's). `precision` bf16 / fp16 samples under autocast;
    TRAIN.CHANNELS_LAST keeps the nets NHWC, as in training."""
    if precision not in AUTOCAST_DTYPES:
        raise GanstackError(f"--precision {precision}: choose fp32, bf16 or fp16")
    uses_net_g = not get_variant(cfg.VARIANT).net_g_initialises  # SRGAN: NET_G is where training starts
    chosen = ckpt or (cfg.TRAIN.NET_G if uses_net_g else "")
    path = Path(chosen) if chosen else latest_checkpoint(run_dir_of(cfg) / "checkpoints")
    if path is None:
        raise GanstackError(f"no checkpoint in {run_dir_of(cfg) / 'checkpoints'}: train first, or pass --ckpt PATH "
                            "or --set TRAIN.NET_G=PATH")
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not state:
        raise GanstackError(f"{path}: not a ganstack checkpoint or generator state dict")
    state = from_authors_checkpoint(state)
    generator_only = "nets" not in state  # a bare generator file (AttnGAN-style NET_G)
    if generator_only and not all(torch.is_tensor(v) for v in state.values()):
        raise GanstackError(f"{path}: not a ganstack checkpoint or generator state dict")
    check_same_settings(state, cfg, get_variant(cfg.VARIANT).shape_free_keys, path)
    env = setup(device)
    seed_everything(cfg.SEED)
    variant = get_variant(cfg.VARIANT)(cfg, env.device)
    variant.build(variant.dataset("train", train=False) if variant.builds_from_data else None)
    if generator_only:  # it is the generator that samples (aging_cycle: AGING.SAMPLE_DIRECTION's)
        state = {"nets": {variant.generator_name(): state}, "step": None}
    for name, net in variant.nets.items():
        weights = net_weights(state, name, averaged=name in variant.ema_nets)  # EMA_DECAY 0: ema_nets is ()
        if weights is not None and hasattr(variant, "adapt_authors_weights"):
            weights = variant.adapt_authors_weights(name, weights)
        if weights is None:
            if generator_only:
                variant.unloaded[name] = str(path)  # sampling needs no discriminator; another generator errs
                continue
            raise GanstackError(f"{path}: has no network {name}; is it a checkpoint of VARIANT={cfg.VARIANT}?")
        try:
            net.load_state_dict(weights)
        except RuntimeError as e:
            raise GanstackError(f"{path}: network {name} does not match the config "
                                f"({str(e).strip().splitlines()[0]})") from None
        net.to(env.device).eval()
        if cfg.TRAIN.CHANNELS_LAST:
            net.to(memory_format=torch.channels_last)
    variant.sampling_dtype = AUTOCAST_DTYPES[precision]
    return variant, path, state


def from_authors_checkpoint(state: dict) -> dict:
    """The OP-GAN authors' training checkpoints ({'epoch', 'netG', 'optimG', 'netD': [D0, D1, ...],
    'optimD'}) as ganstack's {"nets": ...}; DataParallel's "module." prefixes dropped. Other states
    pass through unchanged."""
    if not isinstance(state, dict) or not isinstance(state.get("netG"), dict):
        return state

    def bare(weights: dict) -> dict:
        return {k.removeprefix("module."): v for k, v in weights.items()}
    nets = {"G": bare(state["netG"])}
    nets.update({f"D{i}": bare(d) for i, d in enumerate(state.get("netD") or []) if isinstance(d, dict)})
    return {"nets": nets, "step": None}


def _generated_stream(variant, conditions, noise, batch_size: int, save_dir: Path | None):
    """uint8 batches from the generator, optionally also written as PNGs."""
    from ..metrics.distribution import to_uint8
    from .sample import save_png  # sample imports this module
    for start in range(0, len(noise), batch_size):
        cond = None if conditions is None else conditions[start:start + batch_size]
        images = variant.sample(cond, noise[start:start + batch_size]).cpu()
        if save_dir is not None:
            for k, image in enumerate(images):
                save_png(image, save_dir / f"{start + k:06d}.png")
        yield to_uint8(images)


def _real_stream(variant, dataset, batch_size: int, workers: int):
    """uint8 batches of the split's real images at the generator's resolution, in dataset order."""
    from ..metrics.distribution import to_uint8
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                                         collate_fn=variant.collate)
    for batch in loader:
        yield to_uint8(batch["images"][-1])


def _extractors(cfg: Config, device) -> tuple[dict, dict]:
    """The extractors that apply to this config, and a note for each one left out."""
    extractors, skipped = {}, {}
    if cfg.EVAL.INCEPTION_WEIGHTS:
        from ..metrics.inception import InceptionFeatures
        extractors["inception"] = InceptionFeatures(cfg.EVAL.INCEPTION_WEIGHTS, device)
    else:
        skipped["inception"] = "EVAL.INCEPTION_WEIGHTS is empty: no Inception IS/FID/KID"
    judge = embedded(cfg).caption_judge(cfg, device)
    if judge is not None:
        extractors["judge"] = judge
    else:
        skipped["judge"] = "no judge for this dataset (judges exist for the embedded datasets)"
    return extractors, skipped


def generation_metrics(cfg: Config, variant, split: str, seed: int, save_dir: Path | None = None, *,
                       spread_captions: bool = False) -> dict:
    """Distribution metrics (per extractor) and object accuracy of generated images, beside the real split's.

    EVAL.NUM_IMAGES cycles through the captions in split order (image 0's captions, then image 1's...);
    `spread_captions` takes them round-robin over the images instead (every image's first caption, then
    every image's second...), so a count below the caption count still covers every image."""
    from ..metrics.reference_cache import ReferenceCache
    from ..metrics.suite import DamsmCodes, evaluate_images
    ev = cfg.EVAL
    conditions, indices = variant.evaluation_conditions(split)
    per = ev.IMAGES_PER_CAPTION
    indices = [i for i in indices for _ in range(per)]
    if conditions is not None:
        conditions = conditions.repeat_interleave(per, dim=0)
    count = ev.NUM_IMAGES or embedded(cfg).protocol_images(cfg)
    if count > 0:  # cycle through the captions up to the protocol's count
        pool = list(range(len(indices)))
        if spread_captions:
            rank, seen = [], {}  # rank: how many entries of the same image come before
            for i in indices:
                rank.append(seen.get(i, 0))
                seen[i] = rank[-1] + 1
            pool.sort(key=lambda k: (rank[k], k))
        order = [pool[k % len(pool)] for k in range(count)]
        indices = [indices[k] for k in order]
        conditions = None if conditions is None else conditions[order]
    noise = variant.noise(len(indices), seed=seed)
    extractors, skipped = _extractors(cfg, variant.device)
    report = {"protocol": {
        "split": split, "seed": seed, "generated_images": len(indices), "images_per_caption": per,
        "generator": "EMA generator in eval mode" if "G" in getattr(variant, "ema_nets", ()) else "generator",
        "images": "uint8 with rounding, at the generator's resolution; real images resized to it",
        "is_splits": ev.IS_SPLITS, "kid": f"{ev.KID_SUBSETS} subsets of {ev.KID_SUBSET_SIZE}",
        "statistics": "float64", "skipped": skipped}}
    encoder = variant.damsm_image_encoder() if hasattr(variant, "damsm_image_encoder") else None
    probes = {} if encoder is None or conditions is None else \
        {"damsm": DamsmCodes(encoder.to(variant.device), encoder.weights_path)}
    if not probes:
        skipped["r_precision"] = "no DAMSM image encoder beside TRAIN.NET_E (or embeddings not from DAMSM)"
    if not extractors and not probes:
        return report
    cache = ReferenceCache(ev.STATS_DIR, cfg.DATA_DIR, split, cfg.TREE.BASE_SIZE * 2 ** (cfg.TREE.BRANCH_NUM - 1))
    dataset = variant.dataset(split, train=False)
    real_stream = lambda: _real_stream(variant, dataset, ev.BATCH_SIZE, cfg.WORKERS)  # noqa: E731
    scores = evaluate_images(
        extractors, _generated_stream(variant, conditions, noise, ev.BATCH_SIZE, save_dir), real_stream, cache, ev,
        probes=probes)
    features = scores.pop("_features")
    if probes:
        real_codes = cache.features(probes["damsm"], real_stream)["code"]
        report.update(_r_precision(cfg, seed, features["damsm"]["code"], real_codes[indices],
                                   variant.sentence_codes(conditions),
                                   np.asarray(dataset.class_ids)[indices]))
    report.update(scores)
    report["reference_cache"] = cache.events
    if "judge" in extractors and conditions is not None:  # unconditional images have no caption to match
        data = embedded(cfg)
        report["object_accuracy"] = data.object_accuracy(cfg, split, features["judge"], indices)
        real = cache.features(extractors["judge"], real_stream)  # read once above: a memory hit
        report["object_accuracy_real"] = data.object_accuracy(cfg, split, real)
    return report


def soa_metrics(cfg: Config, variant, seed: int) -> dict:
    """SOA's official protocol (metrics/soa.py): images for the captions of EVAL.SOA_CAPTIONS' files,
    YOLOv3 from EVAL.SOA_DETECTOR_CFG / _WEIGHTS as the detector. A variant that draws from layouts
    (OP-GAN) gets each caption's image layout where the split has it, and the IoU scores follow."""
    from ..metrics.soa import run_soa
    from ..nets.darknet import YoloV3Detector
    ev = cfg.EVAL
    for key in ("SOA_DETECTOR_CFG", "SOA_DETECTOR_WEIGHTS"):
        if not Path(ev[key]).is_file():
            raise GanstackError(f"EVAL.{key}={ev[key]}: file not found; SOA needs YOLOv3's darknet files (yolov3.cfg "
                                "and yolov3.weights, as the SOA scripts use), or leave EVAL.SOA_CAPTIONS empty")
    detector = YoloV3Detector.from_files(ev.SOA_DETECTOR_CFG, ev.SOA_DETECTOR_WEIGHTS, ev.SOA_DETECTOR_NAMES or None,
                                         img_size=ev.SOA_IMAGE_SIZE, device=variant.device)
    batches = iter(range(10 ** 9))

    def generate(entries: list[dict]):
        if hasattr(variant, "soa_conditions"):
            conditions = variant.soa_conditions(entries)
        else:
            conditions = variant.conditions_from_text([e["caption"] for e in entries])
        images = variant.sample(conditions, variant.noise(len(entries), seed=seed * 100003 + next(batches)))
        images = images.float().add(1).div(2).clamp(0, 1)
        return (images, variant.soa_layouts(conditions)) if hasattr(variant, "soa_layouts") else images

    report = run_soa(detector, generate, ev.SOA_CAPTIONS, images_per_caption=ev.SOA_IMAGES_PER_CAPTION,
                     max_captions=ev.SOA_MAX_CAPTIONS or None, batch_size=ev.BATCH_SIZE, seed=seed)
    return {**report.scores, "per_class": {c.name: c.recall for c in report.classes},
            "protocol": {"captions": ev.SOA_CAPTIONS, "detector": ev.SOA_DETECTOR_WEIGHTS,
                         "images_per_caption": ev.SOA_IMAGES_PER_CAPTION, "image_size": ev.SOA_IMAGE_SIZE,
                         "max_captions_per_class": ev.SOA_MAX_CAPTIONS or "all", "note": report.note}}


def _r_precision(cfg: Config, seed: int, codes, real_codes, sentences, class_ids) -> dict:
    """R-precision of generated images against their captions' DAMSM sentence codes, and of the
    real images under the same captions (each real image once per caption it has)."""
    from ..metrics.rprecision import r_precision
    ev = cfg.EVAL
    kwargs = dict(candidates=ev.R_PRECISION_CANDIDATES, runs=ev.R_PRECISION_RUNS, seed=seed, class_ids=class_ids)
    return {"r_precision": r_precision(codes, sentences, **kwargs),
            "r_precision_real": r_precision(real_codes, sentences, **kwargs)}


def evaluate_checkpoint(cfg: Config, *, ckpt: str | None, split: str, seed: int, device: str = "auto",
                        out: str | None = None) -> tuple[dict, Path]:
    variant, path, state = load_variant(cfg, ckpt, device)
    out_path = Path(out) if out else run_dir_of(cfg) / "eval" / f"{path.stem}.json"
    with torch.no_grad():
        metrics = variant.evaluate(split, seed)
        if hasattr(variant, "evaluation_conditions"):
            save_dir = out_path.with_suffix("") if cfg.EVAL.SAVE_IMAGES else None
            metrics.update(generation_metrics(cfg, variant, split, seed, save_dir))
            if cfg.EVAL.SOA_CAPTIONS:
                metrics["soa"] = soa_metrics(cfg, variant, seed)
        else:  # no generator: the embedded dataset's judges score the real images alone
            metrics.update(embedded(cfg).real_report(cfg, split, variant.device))
    report = {"variant": cfg.VARIANT, "checkpoint": str(path), "step": state["step"], "split": split,
              "seed": seed, "data_dir": cfg.DATA_DIR, **metrics}
    write_text_atomic(out_path, json.dumps(report, indent=2) + "\n")
    return report, out_path


def scalar_metrics(report: dict, prefix: str = "eval") -> dict[str, float]:
    """The report's numbers as flat TensorBoard tags (eval/judge/fid, eval/object_accuracy/exact_match...)."""
    out = {}
    for key, value in report.items():
        if key in ("protocol", "step", "seed") or isinstance(value, bool):
            continue
        if isinstance(value, dict):
            out.update(scalar_metrics(value, f"{prefix}/{key}"))
        elif isinstance(value, (int, float)) and not key.endswith(("images", "splits", "subsets", "subset_size")):
            out[f"{prefix}/{key}"] = float(value)
    return out


def log_scalars(cfg: Config, reports: list[dict]) -> None:
    """Eval metrics into the run's TensorBoard folder at each checkpoint's step: curves over training.
    One event file for all of them: TensorBoard drops points whose file sorts after a later step's."""
    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter(str(run_dir_of(cfg) / "eval"))
    try:
        for report in reports:
            for tag, value in scalar_metrics(report).items():
                writer.add_scalar(tag, value, report.get("step") or 0)
    finally:
        writer.close()


def evaluate_run(cfg: Config, *, split: str, seed: int, device: str = "auto") -> list[tuple[dict, Path]]:
    """Every checkpoint of the run, oldest first; each gets its report and TensorBoard points."""
    checkpoints = list_checkpoints(run_dir_of(cfg) / "checkpoints")
    if not checkpoints:
        raise GanstackError(f"no checkpoint in {run_dir_of(cfg) / 'checkpoints'}: train first")
    done = [evaluate_checkpoint(cfg, ckpt=str(path), split=split, seed=seed, device=device) for path in checkpoints]
    log_scalars(cfg, [report for report, _ in done])
    return done

