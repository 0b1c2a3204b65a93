"""Fast-AgingGAN's released generator loads into aging_cycle, proven without the file.

tests/fixtures/fast_aginggan_state_dict_manifest.json lists every state-dict key and shape of the
original's Generator(ngf=32, n_residual_blocks=9) and Discriminator(ndf=32), the sizes of its
config and of its released `pretrained_model/state_dict.pth` (G young -> old).
tests/fixtures/fast_aginggan_generator_io.pt holds a small original Generator(8, 2): its random
weights, an input and the output the original code gave in eval mode. Both were recorded outside
this repository (tests/fixtures/README.md).
"""
from __future__ import annotations

import json

import pytest
import torch

from conftest import ROOT
from ganstack.cli import main
from ganstack.config import load_config
from ganstack.engine.evaluate import load_variant

from test_faces import tiny_cfg, write_utkface

MANIFEST = json.loads((ROOT / "tests/fixtures/fast_aginggan_state_dict_manifest.json").read_text())["fast_aginggan"]
RECORDED = torch.load(ROOT / "tests/fixtures/fast_aginggan_generator_io.pt", weights_only=True)


def shapes(net: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in net.state_dict().items()}


def test_the_cacd_config_builds_the_originals_networks_key_for_key(tmp_path):
    cfg = load_config(ROOT / "cfg/aging_cycle/cacd.yml", [f"OUTPUT_DIR={tmp_path}"])
    from ganstack.variants import get_variant
    variant = get_variant(cfg.VARIANT)(cfg, torch.device("cpu"))
    variant.build(None)
    for name in ("G_AB", "G_BA"):
        assert shapes(variant.nets[name]) == MANIFEST["generator"]
    for name in ("D_A", "D_B"):
        assert shapes(variant.nets[name]) == MANIFEST["discriminator"]


def test_the_originals_generator_file_samples_as_the_original(tmp_path):
    """A bare generator file (what Fast-AgingGAN releases) loads as the sampling generator and gives
    the original code's output; the other direction, absent from it, is a one-line error."""
    path = tmp_path / "state_dict.pth"
    torch.save(RECORDED["state_dict"], path)
    cfg = load_config(ROOT / "cfg/aging_cycle/cacd.yml", [f"OUTPUT_DIR={tmp_path}", "AGING.NGF=8", "AGING.N_BLOCKS=2"])
    variant, _, _ = load_variant(cfg, path, device="cpu")
    out = variant.sample(RECORDED["input"], direction="AtoB")
    assert torch.allclose(out, RECORDED["output"], atol=1e-5)
    from ganstack.errors import GanstackError
    with pytest.raises(GanstackError, match="holds no G_BA"):
        variant.sample(RECORDED["input"], direction="BtoA")
    # SAMPLE_DIRECTION names the generator a bare file is: the same weights as G_BA give the same faces
    cfg = load_config(ROOT / "cfg/aging_cycle/cacd.yml", [f"OUTPUT_DIR={tmp_path}", "AGING.NGF=8", "AGING.N_BLOCKS=2",
                                                          "AGING.SAMPLE_DIRECTION=BtoA"])
    variant, _, _ = load_variant(cfg, path, device="cpu")
    assert torch.allclose(variant.sample(RECORDED["input"]), RECORDED["output"], atol=1e-5)


def test_a_one_direction_file_in_an_aging_strip_names_the_missing_generator(tmp_path, capsys):
    data = write_utkface(tmp_path / "UTKFace")
    cfg = tiny_cfg(tmp_path, data, ", DOMAIN_A: [18, 28], DOMAIN_B: [40, 119]")
    sizes = ["--set", "AGING.NGF=8", "--set", "AGING.N_BLOCKS=2"]
    path = tmp_path / "state_dict.pth"
    torch.save(RECORDED["state_dict"], path)
    face = next(data.glob("2*_0_*.jpg"))
    assert main(["sample", str(cfg), "--device", "cpu", "--ckpt", str(path), "--input", str(face),
                 "--ages", "70", "--out", str(tmp_path / "old"), *sizes]) == 0
    assert (tmp_path / "old" / "000_age_070.png").is_file()
    assert main(["sample", str(cfg), "--device", "cpu", "--ckpt", str(path), "--input", str(face),
                 "--ages", "20,70", *sizes]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no G_BA" in err[0] and str(path) in err[0]
