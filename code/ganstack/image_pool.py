"""The image buffer of Shrivastava et al. (2017), as pix2pix/CycleGAN use it (POOL_SIZE).

D is shown a mix of the newest fakes and older ones, which damps oscillation. Each
incoming image is stored until the pool is full; afterwards, with probability 1/2 it
swaps places with a random stored one (the stored one goes to D), else it goes to D
itself. Random choices come from torch's global RNG (checkpointed by the trainer) and
the pool's contents are part of the variant's state, so resume stays exact.
"""
from __future__ import annotations

import torch


class ImagePool:
    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()) < 0.5:
                k = int(torch.randint(len(self.images), ()))
                out.append(self.images[k].clone())
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"images": torch.stack(self.images).cpu() if self.images else torch.empty(0)}

    def load_state_dict(self, state: dict, device: torch.device | None = None) -> None:
        self.images = [t.to(device) if device else t for t in state["images"]] if len(state["images"]) else []
