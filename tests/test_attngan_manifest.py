"""The published AttnGAN files load into ganstack's networks, proven without the files.

tests/fixtures/attngan_state_dict_manifest.json lists, for the original bird_attn2,
coco_attn2 and bird_attnDCGAN2 configs, every state-dict key and tensor shape of the
reference networks (taoxugit/AttnGAN, recorded outside this repository; see
tests/fixtures/README.md). Tensors of exactly those names and shapes, saved the way
the original saved them, must load through ganstack's loaders.
"""
from __future__ import annotations

import json

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


def _shapes(net: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("config", ["bird_attn2", "coco_attn2", "bird_attnDCGAN2"])
def test_generator_and_discriminators_have_the_published_names_and_shapes(config):
    from ganstack.nets.attngan import AttnGenerator, StageDiscriminator
    c, nets = MANIFEST[config]["config"], MANIFEST[config]["nets"]
    g = AttnGenerator(stages=c["BRANCH_NUM"], gf_dim=c["GF_DIM"], z_dim=c["Z_DIM"], condition_dim=c["CONDITION_DIM"],
                      embedding_dim=c["EMBEDDING_DIM"], residual_blocks=c["R_NUM"], dcgan=c["B_DCGAN"])
    assert _shapes(g) == nets["netG"]
    if c["B_DCGAN"]:  # AttnDCGAN: one discriminator, at the last scale
        d = StageDiscriminator(64 * 2 ** (c["BRANCH_NUM"] - 1), df_dim=c["DF_DIM"], embedding_dim=c["EMBEDDING_DIM"])
        assert _shapes(d) == nets["netD"]
    for i in range(c["BRANCH_NUM"] if not c["B_DCGAN"] else 0):
        d = StageDiscriminator(64 * 2 ** i, df_dim=c["DF_DIM"], embedding_dim=c["EMBEDDING_DIM"])
        assert _shapes(d) == nets[f"netD{i}"], f"netD{i}"


def test_published_generator_file_loads_and_runs(tmp_path):
    from ganstack.nets.attngan import AttnGenerator, StageDiscriminator
    c = MANIFEST["bird_attn2"]["config"]
    path = tmp_path / "netG_epoch_600.pth"
    torch.save(random_state(MANIFEST["bird_attn2"]["nets"]["netG"], drop_batch_counters=True), path)
    g = AttnGenerator(stages=3, gf_dim=c["GF_DIM"], residual_blocks=c["R_NUM"])
    g.load_state_dict(torch.load(path, weights_only=True))
    g.eval()
    words, mask = torch.randn(2, 256, 7), torch.zeros(2, 7, dtype=torch.bool)
    mask[1, 5:] = True  # the second caption has 5 words
    with torch.no_grad():
        images, attentions, mu, logvar = g(torch.randn(2, 100), torch.randn(2, 256), words, mask)
    assert [tuple(im.shape) for im in images] == [(2, 3, 64, 64), (2, 3, 128, 128), (2, 3, 256, 256)]
    assert [tuple(a.shape) for a in attentions] == [(2, 7, 64, 64), (2, 7, 128, 128)]
    assert torch.all(attentions[0][1, 5:] == 0)  # no attention on padding
    assert torch.allclose(attentions[0].sum(dim=1), torch.ones(2, 64, 64), atol=1e-5)
    d = StageDiscriminator(256, df_dim=c["DF_DIM"]).eval()
    code = d(images[2])
    assert code.shape == (2, 512, 4, 4)
    assert d.COND_DNET(code, torch.randn(2, 256)).shape == (2,) == d.UNCOND_DNET(code).shape
