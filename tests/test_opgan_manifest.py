"""The published OP-GAN files load into ganstack's networks, proven without the files.

tests/fixtures/opgan_state_dict_manifest.json lists every state-dict key and tensor shape
of the reference OP-GAN networks for the authors' COCO training config (G_NET and
D_NET64/128/256 of tohinz/semantic-object-accuracy-for-generative-text-to-image-synthesis,
recorded outside this repository; see tests/fixtures/README.md). ganstack's networks, built
from cfg/opgan/coco.yml, must hold exactly those names and shapes, save the one block the
authors define but never use.
"""
from __future__ import annotations

import json

import pytest
import torch

from conftest import ROOT
from ganstack.config import load_config
from ganstack.nets.opgan import Layout, ObjectStageDiscriminator, OPGenerator
from ganstack.variants.opgan import build_networks, one_hot

MANIFEST = json.loads((ROOT / "tests/fixtures/opgan_state_dict_manifest.json").read_text())["coco"]
PAIRS = {"G": "netG", "D0": "netD0", "D1": "netD1", "D2": "netD2"}  # ganstack's name -> the authors'

# The authors' D_NET256 builds img_code_s16 (AttnGAN's encode_image_by_16times) but its
# forward never calls it, so ganstack leaves it out. A loader drops these keys (they are the
# only ones strict loading rejects); nothing else may differ.
UNUSED_IN_AUTHORS_D2 = {  # conv 3->ndf, conv, BN, conv, BN, conv 4ndf->8ndf, BN (LeakyReLUs between)
    "img_code_s16.0.weight",
    "img_code_s16.2.weight",
    "img_code_s16.3.weight", "img_code_s16.3.bias", "img_code_s16.3.running_mean",
    "img_code_s16.3.running_var", "img_code_s16.3.num_batches_tracked",
    "img_code_s16.5.weight",
    "img_code_s16.6.weight", "img_code_s16.6.bias", "img_code_s16.6.running_mean",
    "img_code_s16.6.running_var", "img_code_s16.6.num_batches_tracked",
    "img_code_s16.8.weight",
    "img_code_s16.9.weight", "img_code_s16.9.bias", "img_code_s16.9.running_mean",
    "img_code_s16.9.running_var", "img_code_s16.9.num_batches_tracked",
}
ALLOWED_MISSING = {"G": set(), "D0": set(), "D1": set(), "D2": UNUSED_IN_AUTHORS_D2}


def _shapes(net: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in net.state_dict().items()}


def random_state(shapes: dict[str, list[int]], *, drop_batch_counters: bool = False) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            if not drop_batch_counters:  # files of PyTorch < 0.4.1 lack these
                state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.05
    return state


@pytest.fixture(scope="module")
def meta_nets():
    """ganstack's full-size COCO nets as the trainer builds them, on the meta device (no memory,
    no init: only names and shapes matter here)."""
    cfg = load_config(ROOT / "cfg/opgan/coco.yml", ["GAN.INIT=pytorch"])
    with torch.device("meta"):
        return build_networks(cfg, cfg.TEXT.EMBEDDING_DIM)


def test_coco_config_is_the_authors():
    cfg, c = load_config(ROOT / "cfg/opgan/coco.yml"), MANIFEST["config"]
    ours = {"BRANCH_NUM": cfg.TREE.BRANCH_NUM, "BASE_SIZE": cfg.TREE.BASE_SIZE, "GEN_FEAT_DIM": cfg.GAN.GF_DIM,
            "DISC_FEAT_DIM": cfg.GAN.DF_DIM, "GLOBAL_Z_DIM": cfg.GAN.Z_DIM, "LOCAL_Z_DIM": cfg.GAN.LOCAL_Z_DIM,
            "TEXT_CONDITION_DIM": cfg.GAN.CONDITION_DIM, "INIT_LABEL_DIM": cfg.GAN.INIT_LABEL_DIM,
            "NEXT_LABEL_DIM": cfg.GAN.NEXT_LABEL_DIM, "RESIDUAL_NUM": cfg.GAN.R_NUM,
            "LAYOUT_SPATIAL_DIM": cfg.GAN.LAYOUT_SPATIAL_DIM, "EMBEDDING_DIM": cfg.TEXT.EMBEDDING_DIM,
            "CLASSES_NUM": cfg.TEXT.CLASSES_NUM}
    assert ours == c


@pytest.mark.parametrize("name", list(PAIRS))
def test_networks_have_the_published_names_and_shapes(meta_nets, name):
    theirs, own = MANIFEST["nets"][PAIRS[name]], _shapes(meta_nets[name])
    assert ALLOWED_MISSING[name] <= theirs.keys()  # the allowance names real keys of theirs
    assert sorted(set(theirs) - set(own)) == sorted(ALLOWED_MISSING[name])
    assert sorted(set(own) - set(theirs)) == []
    assert own == {k: v for k, v in theirs.items() if k not in ALLOWED_MISSING[name]}


@pytest.mark.parametrize("name", list(PAIRS))
def test_published_state_dicts_load_strictly_once_the_unused_block_is_dropped(meta_nets, name):
    theirs = MANIFEST["nets"][PAIRS[name]]
    net = meta_nets[name]
    state = {k: torch.empty(s, device="meta") for k, s in theirs.items()}
    if ALLOWED_MISSING[name]:
        with pytest.raises(RuntimeError, match="Unexpected key") as err:
            net.load_state_dict(state)
        assert "Missing key" not in str(err.value) and "size mismatch" not in str(err.value)
    kept = {k: v for k, v in state.items() if k not in ALLOWED_MISSING[name]}
    net.load_state_dict(kept, strict=True)


def test_published_generator_checkpoint_loads_and_runs(tmp_path):
    """op-gan.pth holds the generator under "netG", as the authors' trainer saves it."""
    c = MANIFEST["config"]
    path = tmp_path / "op-gan.pth"
    torch.save({"epoch": 120, "netG": random_state(MANIFEST["nets"]["netG"])}, path)
    g = OPGenerator(stages=c["BRANCH_NUM"], gf_dim=c["GEN_FEAT_DIM"], z_dim=c["GLOBAL_Z_DIM"],
                    local_z_dim=c["LOCAL_Z_DIM"], condition_dim=c["TEXT_CONDITION_DIM"],
                    embedding_dim=c["EMBEDDING_DIM"], residual_blocks=c["RESIDUAL_NUM"], classes=c["CLASSES_NUM"],
                    init_label_dim=c["INIT_LABEL_DIM"], next_label_dim=c["NEXT_LABEL_DIM"],
                    layout_size=c["LAYOUT_SPATIAL_DIM"], base_size=c["BASE_SIZE"])
    g.load_state_dict(torch.load(path, weights_only=True)["netG"])
    g.eval()
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.6], [0.5, 0.4, 0.3, 0.3], [-1.0, -1.0, -1.0, -1.0]]])
    layout = Layout(boxes, one_hot(torch.tensor([[1, 5, -1]]), c["CLASSES_NUM"]))
    with torch.no_grad():
        images, attentions, mu, logvar = g(torch.randn(1, c["GLOBAL_Z_DIM"]), torch.randn(1, c["LOCAL_Z_DIM"]),
                                           torch.randn(1, c["EMBEDDING_DIM"]), torch.randn(1, c["EMBEDDING_DIM"], 7),
                                           None, layout)
    assert [tuple(im.shape) for im in images] == [(1, 3, 64, 64), (1, 3, 128, 128), (1, 3, 256, 256)]
    assert [tuple(a.shape) for a in attentions] == [(1, 7, 64, 64), (1, 7, 128, 128)]
    assert mu.shape == logvar.shape == (1, c["TEXT_CONDITION_DIM"])


@pytest.mark.parametrize("drop_batch_counters", [False, True])
def test_published_64px_discriminator_loads_and_runs(drop_batch_counters):
    c = MANIFEST["config"]
    d = ObjectStageDiscriminator(64, df_dim=c["DISC_FEAT_DIM"], embedding_dim=c["EMBEDDING_DIM"],
                                 classes=c["CLASSES_NUM"])
    d.load_state_dict(random_state(MANIFEST["nets"]["netD0"], drop_batch_counters=drop_batch_counters))
    d.eval()
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.6], [-1.0, -1.0, -1.0, -1.0]]])
    with torch.no_grad():
        code = d(torch.rand(1, 3, 64, 64) * 2 - 1, Layout(boxes, one_hot(torch.tensor([[3, -1]]), c["CLASSES_NUM"])))
        assert code.shape == (1, 8 * c["DISC_FEAT_DIM"], 4, 4)
        assert d.COND_DNET(code, torch.randn(1, c["EMBEDDING_DIM"])).shape == (1,) == d.UNCOND_DNET(code).shape
