"""`ganstack eval`: load a checkpoint into its variant and write a JSON report.

The report always carries the protocol (split, seed, checkpoint, step) and,
for the embedded shapes set, the judge's score on the real held-out images as
the reference row.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..config import Config
from ..errors import GanstackError
from ..io import write_text_atomic
from ..variants import get_variant
from .checkpoint import latest_checkpoint, load_checkpoint
from .distributed import setup
from .trainer import run_dir_of, seed_everything


def load_variant(cfg: Config, ckpt: str | Path | None, device: str = "auto"):
    """The variant of `cfg` with the weights of `ckpt`, else TRAIN.NET_G, else the run's latest
    checkpoint; EMA nets when kept. TRAIN.NET_G may also be a bare generator state dict."""
    chosen = ckpt or cfg.TRAIN.NET_G
    path = Path(chosen) if chosen else latest_checkpoint(run_dir_of(cfg) / "checkpoints")
    if path is None:
        raise GanstackError(f"no checkpoint in {run_dir_of(cfg) / 'checkpoints'}: train first, or pass --ckpt PATH "
                            "or --set TRAIN.NET_G=PATH")
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not state:
        raise GanstackError(f"{path}: not a ganstack checkpoint or generator state dict")
    generator_only = "nets" not in state  # a bare generator file (AttnGAN-style NET_G)
    if generator_only:
        if not all(torch.is_tensor(v) for v in state.values()):
            raise GanstackError(f"{path}: not a ganstack checkpoint or generator state dict")
        state = {"nets": {"G": state}, "step": None}
    env = setup(device)
    seed_everything(cfg.SEED)
    variant = get_variant(cfg.VARIANT)(cfg, env.device)
    variant.build(variant.dataset("train", train=False))
    for name, net in variant.nets.items():
        weights = state.get("ema", {}).get(name) or state["nets"].get(name)
        if weights is None:
            if generator_only and name != "G":
                continue  # sampling needs no discriminator
            raise GanstackError(f"{path}: has no network {name}; is it a checkpoint of VARIANT={cfg.VARIANT}?")
        try:
            net.load_state_dict(weights)
        except RuntimeError as e:
            raise GanstackError(f"{path}: network {name} does not match the config "
                                f"({str(e).strip().splitlines()[0]})") from None
        net.to(env.device).eval()
    return variant, path, state


def evaluate_checkpoint(cfg: Config, *, ckpt: str | None, split: str, seed: int, device: str = "auto",
                        out: str | None = None) -> tuple[dict, Path]:
    variant, path, state = load_variant(cfg, ckpt, device)
    with torch.no_grad():
        metrics = variant.evaluate(split, seed)
    report = {"variant": cfg.VARIANT, "checkpoint": str(path), "step": state["step"], "split": split,
              "seed": seed, "data_dir": cfg.DATA_DIR, **metrics}
    if (Path(cfg.DATA_DIR) / "meta.json").is_file() and cfg.DATASET_NAME == "shapes":
        from ..metrics.shapes_judge import evaluate_real, load_or_train_judge
        judge = load_or_train_judge(cfg.DATA_DIR, device=str(variant.device), seed=0)
        report["judge_real"] = evaluate_real(judge, cfg.DATA_DIR, split=split)
    out_path = Path(out) if out else run_dir_of(cfg) / "eval" / f"{path.stem}.json"
    write_text_atomic(out_path, json.dumps(report, indent=2) + "\n")
    return report, out_path
