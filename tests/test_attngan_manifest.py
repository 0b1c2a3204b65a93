"""The published AttnGAN files load into ganstack's networks, proven without the files.

tests/fixtures/attngan_state_dict_manifest.json lists, for the original bird_attn2,
coco_attn2 and bird_attnDCGAN2 configs, every state-dict key and tensor shape of the
reference networks (taoxugit/AttnGAN, recorded outside this repository; see
tests/fixtures/README.md). Tensors of exactly those names and shapes, saved the way
the original saved them, must load through ganstack's loaders.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from ganstack.nets.damsm import load_image_encoder, load_text_encoder

MANIFEST = json.loads((ROOT / "tests/fixtures/attngan_state_dict_manifest.json").read_text())


def random_state(shapes: dict[str, list[int]], *, drop_batch_counters: bool = False) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            if not drop_batch_counters:  # PyTorch 0.4.0, which the authors used, did not write these
                state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.05
    return state


@pytest.mark.parametrize("config", ["bird_attn2", "coco_attn2"])
def test_published_text_encoders_load_by_shape(tmp_path, config):
    shapes = MANIFEST[config]["nets"]["text_encoder"]
    path = tmp_path / "text_encoder200.pth"
    torch.save(random_state(shapes), path)
    encoder = load_text_encoder(path)
    assert {k: list(v.shape) for k, v in encoder.state_dict().items()} == shapes
    words, sentence = encoder(torch.tensor([[1, 2, 3, 0]]), torch.tensor([3]))
    assert sentence.shape == (1, MANIFEST[config]["config"]["EMBEDDING_DIM"])


def test_published_inception_image_encoder_loads_without_imagenet_weights(tmp_path):
    shapes = MANIFEST["bird_attn2"]["nets"]["image_encoder"]
    path = tmp_path / "image_encoder200.pth"
    torch.save(random_state(shapes, drop_batch_counters=True), path)
    encoder = load_image_encoder(path)
    own = {k: list(v.shape) for k, v in encoder.state_dict().items()}
    assert own == shapes  # same names and shapes, the trunk included
    local, code = encoder(torch.zeros(1, 3, 64, 64))
    assert local.shape == (1, 256, 17, 17) and code.shape == (1, 256)
