"""The optimizer helper the trainer hands to a variant's train_step.

``opt.update("D", loss)`` does backward, gradient (un)scaling for fp16,
clipping and the optimizer step; ``with opt.autocast():`` wraps forward passes
in the run's precision. A non-finite loss raises NonFiniteLoss naming it.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

import torch

from ..errors import GanstackError


class NonFiniteLoss(GanstackError):
    pass


@dataclass
class OptimizerSpec:
    optimizer: torch.optim.Optimizer
    clip_params: list = field(default_factory=list)  # parameters whose grad norm is clipped
    clip_norm: float = 0.0                            # 0 = no clipping


def fused_adam(params, lr: float, betas: tuple[float, float], weight_decay: float = 0.0) -> torch.optim.Adam:
    """torch's Adam with its fused kernel: the same update in one pass over each parameter, about 6x
    the default for-each kernels on a CPU core (47 M parameters: 0.08 s against 0.52 s a step), which
    the small batches of CPU training feel most. Rounding differs from for-each in the last bits."""
    return torch.optim.Adam(list(params), lr=lr, betas=betas, weight_decay=weight_decay, fused=True)


AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # precision -> autocast dtype


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 in hardware. CPUs without AVX512-BF16 or AMX emulate it,
    and their convolutions then run tens of times slower than in fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def resolve_precision(precision: str, device: torch.device) -> str:
    """TRAIN.PRECISION as run on `device`: auto is bf16 where native, else fp32; an explicit bf16
    where it is emulated is kept, with a warning."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "bf16" and device.type == "cpu" and not native_bf16(device):
        warnings.warn("TRAIN.PRECISION=bf16 on a CPU without native bfloat16 (no AVX512-BF16 or AMX): it is "
                      "emulated and far slower than fp32; set TRAIN.PRECISION: auto or fp32")
    return precision


class Updater:
    def __init__(self, specs: dict[str, OptimizerSpec], precision: str, device: torch.device,
                 agree=lambda flag: flag):
        self.specs = specs
        self.agree = agree  # any-rank reduction, so every rank stops on a NaN together
        self.device = device
        self.precision = precision = resolve_precision(precision, device)
        self.dtype = AUTOCAST_DTYPES[precision]
        self.step = 0
        use_scaler = precision == "fp16"
        self.scalers = {name: torch.amp.GradScaler(device.type, enabled=use_scaler) for name in specs}
        self.base_lrs = {name: [g["lr"] for g in s.optimizer.param_groups] for name, s in specs.items()}

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def update(self, name: str, loss: torch.Tensor, parts: dict[str, torch.Tensor] | None = None) -> None:
        """Backward, clip and step optimizer `name`; `parts` (the terms of `loss`) name a NaN's source."""
        if self.agree(not bool(torch.isfinite(loss.detach()).all())):
            bad = [k for k, v in (parts or {}).items() if not torch.isfinite(v.detach()).all()]
            what = ", ".join(f"{k}={(parts or {})[k].item()}" for k in bad) or f"total={loss.item()}"
            raise NonFiniteLoss(f"non-finite loss for optimizer {name} at step {self.step} ({what})")
        spec, scaler = self.specs[name], self.scalers[name]
        scaler.scale(loss).backward()
        if spec.clip_norm > 0:
            scaler.unscale_(spec.optimizer)
            torch.nn.utils.clip_grad_norm_(spec.clip_params, spec.clip_norm)
        scaler.step(spec.optimizer)
        scaler.update()
        spec.optimizer.zero_grad(set_to_none=True)

    def set_lr_factor(self, factor: float) -> None:
        for name, spec in self.specs.items():
            for group, base in zip(spec.optimizer.param_groups, self.base_lrs[name]):
                group["lr"] = base * factor

    def lrs(self) -> dict[str, float]:
        return {name: s.optimizer.param_groups[0]["lr"] for name, s in self.specs.items()}

    def state_dict(self) -> dict:
        return {"optimizers": {n: s.optimizer.state_dict() for n, s in self.specs.items()},
                "scalers": {n: s.state_dict() for n, s in self.scalers.items()}}

    def load_state_dict(self, state: dict) -> None:
        for name, spec in self.specs.items():
            # a checkpoint's param groups carry its kernel choice (for-each before fused Adam): keep ours
            kernels = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in spec.optimizer.param_groups]
            spec.optimizer.load_state_dict(state["optimizers"][name])
            for group, kernel in zip(spec.optimizer.param_groups, kernels):
                group.update(kernel)
            if state["scalers"].get(name):
                self.scalers[name].load_state_dict(state["scalers"][name])
