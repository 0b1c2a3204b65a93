"""pix2pix through its public entry points: every loss x discriminator trains, odd and rectangular
sizes train and sample, stochastic outputs, perceptual loss from a VGG19 file, exact resume,
FCN-score eval on shapes pairs, the loss x discriminator grid script and its table."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT
from ganstack.cli import main
from ganstack.engine.checkpoint import latest_checkpoint, load_checkpoint
from ganstack.engine.schedule import Plateau, lr_factor

from test_gan_int_cls import logged, sets

LOSSES = ("vanilla", "lsgan", "hinge", "wgangp")
DISCRIMINATORS = ("basic", "pixel", "multiscale")


def write_pairs(root: Path, size: tuple[int, int] = (32, 32), n_train: int = 8, n_test: int = 3, seed: int = 0) -> Path:
    """An aligned A|B folder (PNG): A a blocky map, B a photo-like picture of it; (height, width) = size."""
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in (("train", n_train), ("test", n_test)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            a = np.kron(rng.integers(0, 255, (4, 4, 3)), np.ones((h // 4 + 1, w // 4 + 1, 1)))[:h, :w]
            b = np.clip(a * 0.7 + rng.normal(0, 8, a.shape), 0, 255)
            Image.fromarray(np.concatenate([a, b], axis=1).astype(np.uint8)).save(root / split / f"{i:03d}.png")
    return root


def tiny_cfg(tmp_path: Path, data_dir: Path, **extra: str) -> Path:
    keys = {  # `extra` replaces a top-level key (a config may not give one twice)
        "_BASE_": ROOT / "cfg/pix2pix/_base.yml",
        "DATASET_NAME": "tiny_pairs",
        "DATA_DIR": data_dir,
        "OUTPUT_DIR": tmp_path / "output",
        "RUN_NAME": "tiny",
        "WORKERS": 0,
        "TRAIN": "{BATCH_SIZE: 2, MAX_STEPS: 2, SNAPSHOT_INTERVAL: 100, LOG_INTERVAL: 1, IMAGE_INTERVAL: 2}",
        "DATA": "{PREPROCESS: resize_and_crop, LOAD_SIZE: 36, CROP_SIZE: 32}",
        "EVAL": "{BATCH_SIZE: 4, KID_SUBSET_SIZE: 3, KID_SUBSETS: 2}",
        "PIX2PIX": "{NGF: 8, NDF: 8, N_LAYERS_D: 2, NUM_D: 2}",
        **extra,
    }
    lines = [f"{k}: {v}" for k, v in keys.items()]
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "tiny.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("pairs"))


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("net_d", DISCRIMINATORS)
def test_every_loss_and_discriminator_trains_without_nan(tmp_path, pairs, loss, net_d):
    cfg = tiny_cfg(tmp_path, pairs)
    assert main(["train", str(cfg), "--device", "cpu", *sets(GAN__LOSS=loss, PIX2PIX__NET_D=net_d)]) == 0
    scalars = logged(tmp_path / "output/tiny")
    assert {"loss/D_real", "loss/D_fake", "loss/G_adversarial", "loss/G_l1", "score/l1"} <= set(scalars)
    assert ("loss/D_gradient_penalty" in scalars) == (loss == "wgangp")
    assert all(np.isfinite(v).all() for k, v in scalars.items() if not k.startswith("_"))
    assert "samples/input_output_target" in scalars["_images"]


@pytest.mark.parametrize("net_g", ["unet", "resnet_6blocks"])
def test_odd_and_rectangular_sizes_train_and_sample(tmp_path, net_g):
    data = write_pairs(tmp_path / "pairs", size=(27, 45), n_train=4, n_test=2)
    cfg = tiny_cfg(tmp_path, data)
    args = sets(DATA__PREPROCESS="none", PIX2PIX__NET_G=net_g, PIX2PIX__UNET_DEPTH=4, TRAIN__FLIP="false")
    assert main(["train", str(cfg), "--device", "cpu", *args]) == 0
    odd = tmp_path / "odd.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (23, 37, 3), dtype=np.uint8)).save(odd)
    assert main(["sample", str(cfg), "--device", "cpu", *args, "--input", str(odd), "--from-split", "test",
                 "--count", "2", "--n", "1"]) == 0
    samples = tmp_path / "output/tiny/samples"
    assert Image.open(samples / "000_out_00.png").size == (37, 23)     # the user's image keeps its size
    assert Image.open(samples / "001_out_00.png").size == (45, 27)     # a test pair's input
    assert Image.open(samples / "001_target.png").size == (45, 27)
    index = json.loads((samples / "index.json").read_text())
    assert [len(r["files"]) for r in index["rows"]] == [2, 3, 3]       # input + output (+ target)
    assert "000_input.png" in (samples / "index.html").read_text()


def test_stochastic_outputs_from_test_dropout_and_from_noise(tmp_path, pairs):
    # one dropout level (depth 6); xavier init so that an untrained G's outputs differ beyond uint8 rounding
    cfg = tiny_cfg(tmp_path, pairs, PIX2PIX="{NGF: 8, NDF: 8, N_LAYERS_D: 2, UNET_DEPTH: 6, INIT_TYPE: xavier, "
                                            "INIT_GAIN: 1.0}")

    def outputs(*args: str) -> list[np.ndarray]:
        out = tmp_path / "gallery"
        assert main(["sample", str(cfg), "--device", "cpu", *args, "--from-split", "test", "--count", "1",
                     "--n", "3", "--out", str(out)]) == 0
        return [np.asarray(Image.open(out / f"000_out_{k:02d}.png"), dtype=int) for k in range(3)]

    def distinct(images) -> int:
        return len({im.tobytes() for im in images})

    assert main(["train", str(cfg), "--device", "cpu"]) == 0
    assert distinct(outputs()) == 1                                    # the paper's G at test: deterministic
    assert distinct(outputs(*sets(PIX2PIX__TEST_DROPOUT="true"))) == 3  # dropout kept on: K different outputs
    assert outputs(*sets(PIX2PIX__TEST_DROPOUT="true"))[0].tolist() == \
        outputs(*sets(PIX2PIX__TEST_DROPOUT="true"))[0].tolist()       # ... and reproducible for a seed

    noisy = tiny_cfg(tmp_path / "noisy", pairs, PIX2PIX="{NGF: 8, NDF: 8, N_LAYERS_D: 2, INIT_TYPE: xavier, "
                                                        "INIT_GAIN: 1.0}")
    args = sets(PIX2PIX__NOISE_DIM=4, PIX2PIX__LAMBDA_DIVERSITY=1.0, PIX2PIX__DROPOUT=0)
    assert main(["train", str(noisy), "--device", "cpu", *args]) == 0
    assert "loss/G_mode_seeking" in logged(tmp_path / "noisy/output/tiny")
    cfg = noisy
    assert distinct(outputs(*args)) == 3                               # z injected: outputs differ by seed


def test_perceptual_loss_reads_torchvision_vgg19_weights(tmp_path, pairs, capsys):
    import torchvision
    torch.manual_seed(0)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])  # torchvision's own layout
    weights = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, weights)
    cfg = tiny_cfg(tmp_path, pairs)
    assert main(["train", str(cfg), "--device", "cpu",
                 *sets(PIX2PIX__LAMBDA_PERCEPTUAL=10.0, PIX2PIX__VGG_WEIGHTS=weights, PIX2PIX__LAMBDA_FEAT=10.0)]) == 0
    scalars = logged(tmp_path / "output/tiny")
    assert scalars["loss/G_perceptual"][0] > 0 and scalars["loss/G_feature_matching"][0] > 0

    capsys.readouterr()
    assert main(["train", str(cfg), "--device", "cpu", "--restart",
                 *sets(PIX2PIX__LAMBDA_PERCEPTUAL=10.0, PIX2PIX__VGG_WEIGHTS=tmp_path / "missing.pth")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "PIX2PIX.VGG_WEIGHTS" in err and "missing.pth" in err


def test_stop_and_resume_gives_the_same_networks_pool_and_plateau(tmp_path, pairs):
    args = sets(PIX2PIX__POOL_SIZE=3, TRAIN__LR_SCHEDULE="plateau", TRAIN__MAX_STEPS=6)
    straight = tiny_cfg(tmp_path / "straight", pairs)
    assert main(["train", str(straight), "--device", "cpu", *args]) == 0
    halves = tiny_cfg(tmp_path / "halves", pairs)
    assert main(["train", str(halves), "--device", "cpu", *args, *sets(TRAIN__MAX_STEPS=3)]) == 0
    assert main(["train", str(halves), "--device", "cpu", *args]) == 0  # auto-resumes
    a, b = (load_checkpoint(latest_checkpoint(p / "output/tiny/checkpoints"))
            for p in (tmp_path / "straight", tmp_path / "halves"))
    assert a["step"] == b["step"] == 6
    for net in ("G", "D"):
        for key, value in a["nets"][net].items():
            assert torch.equal(value, b["nets"][net][key]), f"{net}.{key} differs"
    assert torch.equal(a["variant_state"]["pool"]["images"], b["variant_state"]["pool"]["images"])
    assert a["plateau"] == b["plateau"] and a["plateau"]["best"] < float("inf")  # epochs of 4 steps closed


def test_lr_policies_match_the_original_shapes():
    common = dict(epoch=0, step=0, total_steps=200, decay=0.98, min_factor=0.0, steps_per_epoch=1)
    linear = [lr_factor("linear", **{**common, "epoch": e, "step": e}, constant_epochs=100) for e in (0, 99, 100, 150, 200)]
    assert linear == [1.0, 1.0, 1.0, 0.5, 0.0]
    assert [lr_factor("step", **{**common, "epoch": e}, step_epochs=50) for e in (0, 49, 50, 100)] == \
        pytest.approx([1.0, 1.0, 0.1, 0.01])
    plateau = Plateau()
    for value in [1.0] + [1.0] * 6:   # no 1% better epoch for 6 epochs: patience 5 exceeded once
        plateau.end_epoch(value)
    assert plateau.factor == pytest.approx(0.2)


def test_eval_reports_fcn_score_beside_real_photos_on_shapes_pairs(tmp_path):
    data, scenes = tmp_path / "shapes_aligned", tmp_path / "shapes"
    assert main(["prepare", "shapes", "--aligned", "--num-train", "16", "--num-test", "6", "--size", "32",
                 "--source", str(scenes), "--out", str(data)]) == 0
    cfg = tiny_cfg(tmp_path, data, DATASET_NAME="shapes_aligned")
    args = sets(DATA__PREPROCESS="none", EVAL__STATS_DIR=tmp_path / "stats")
    assert main(["train", str(cfg), "--device", "cpu", *args]) == 0
    assert main(["eval", str(cfg), "--device", "cpu", *args, "--out", str(tmp_path / "report.json")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    for key in ("fcn_score", "fcn_score_real"):
        assert set(report[key]) >= {"pixel_accuracy", "class_accuracy", "class_iou"}
        assert 0 <= report[key]["pixel_accuracy"] <= 1 and report[key]["num_images"] == 6
    assert report["segmenter"]["fid"] >= 0 and report["l1"] > 0


def test_label_maps_reach_g_and_d_as_one_hot_classes(tmp_path):
    data, scenes = tmp_path / "shapes_aligned", tmp_path / "shapes"
    assert main(["prepare", "shapes", "--aligned", "--num-train", "8", "--num-test", "3", "--size", "32",
                 "--source", str(scenes), "--out", str(data)]) == 0
    palette = json.loads((data / "meta.json").read_text())["palette"]
    cfg = tiny_cfg(tmp_path, data, DATASET_NAME="shapes_aligned")
    args = sets(DATA__PREPROCESS="none", DATA__LABEL_NC=len(palette))
    assert main(["train", str(cfg), "--device", "cpu", *args]) == 0
    nets = load_checkpoint(latest_checkpoint(tmp_path / "output/tiny/checkpoints"))["nets"]
    first = lambda state: next(v for k, v in state.items() if v.ndim == 4)  # noqa: E731
    assert first(nets["G"]).shape[1] == len(palette)          # G: one channel per class
    assert first(nets["D"]).shape[1] == len(palette) + 3      # D: the classes beside the image

    # the one-hot G sees is the map's classes: a user's label map with every class samples
    from ganstack.data.synthetic.shapes_aligned import colourise, decode_labelmap
    from ganstack.nets.pix2pix import LabelOneHot
    ids = np.arange(32 * 32).reshape(32, 32) % len(palette)
    rgb = colourise(ids)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(127.5).sub(1)
    assert LabelOneHot(palette)(x)[0].argmax(0).tolist() == decode_labelmap(rgb).tolist() == ids.tolist()
    Image.fromarray(rgb).save(tmp_path / "mine.png")
    out = tmp_path / "gallery"
    assert main(["sample", str(cfg), "--device", "cpu", *args, "--input", str(tmp_path / "mine.png"),
                 "--out", str(out)]) == 0
    assert len(list(out.glob("*.png"))) >= 1


def test_grid_script_prints_one_table(tmp_path, pairs, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    import pix2pix_grid
    configs = []
    for loss, net_d in (("lsgan", "pixel"), ("hinge", "multiscale")):
        path = tiny_cfg(tmp_path / f"{loss}_{net_d}", pairs, RUN_NAME=f"grid_{loss}_{net_d}")
        text = path.read_text() + f"GAN: {{LOSS: {loss}}}\n"
        path.write_text(text.replace("PIX2PIX: {", f"PIX2PIX: {{NET_D: {net_d}, "))
        configs.append(str(path))
    assert pix2pix_grid.main([*configs, "--steps", "2", "--device", "cpu", "--out", str(tmp_path / "t.md")]) == 0
    table = (tmp_path / "t.md").read_text()
    assert "| grid_lsgan_pixel | lsgan | pixel |" in table and "| grid_hinge_multiscale | hinge | multiscale |" in table
    assert table in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (sets(PIX2PIX__NET_D="multiscale", PIX2PIX__NUM_D=3, PIX2PIX__N_LAYERS_D=3), "PIX2PIX.NET_D=multiscale"),
    (sets(DATA__DIRECTION="CtoD"), "DATA.DIRECTION"),
    (sets(GAN__LOSS="wasserstein"), "GAN.LOSS"),
    (sets(GAN__DIFF_AUGMENT="cutout"), "GAN.DIFF_AUGMENT='cutout': the pix2pix variant"),
    (sets(GAN__R1_GAMMA=1), "GAN.R1_GAMMA=1.0: the pix2pix variant has no R1 penalty"),
    (sets(GAN__HARD_MISMATCH=0.5), "GAN.HARD_MISMATCH=0.5: the pix2pix variant has no matching-aware"),
    (sets(DATA__LABEL_NC=5), "meta.json: cannot read the label palette DATA.LABEL_NC=5 needs"),
    (sets(DATA__LABEL_NC=5, DATA__INPUT_NC=1), "DATA.LABEL_NC=5 with DATA.INPUT_NC=1"),
])
def test_bad_pix2pix_settings_are_one_line_errors(tmp_path, pairs, capsys, args, message):
    cfg = tiny_cfg(tmp_path, pairs)
    assert main(["train", str(cfg), "--device", "cpu", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


@pytest.mark.parametrize("native", [False, True])
def test_precision_auto_is_bf16_only_where_native_and_emulated_bf16_warns(tmp_path, pairs, capsys, monkeypatch,
                                                                          recwarn, native):
    import ganstack.engine.optim as optim
    monkeypatch.setattr(optim, "native_bf16", lambda device: native)
    cfg = tiny_cfg(tmp_path, pairs)
    assert main(["train", str(cfg), "--device", "cpu", *sets(TRAIN__PRECISION="auto", TRAIN__MAX_STEPS=1)]) == 0
    out = capsys.readouterr()
    assert ("device cpu, bf16;" if native else "device cpu, fp32;") in out.out + out.err
    emulated = lambda: any("PRECISION=bf16 on a CPU without native" in str(w.message) for w in recwarn)  # noqa: E731
    assert not emulated()
    assert main(["train", str(cfg), "--device", "cpu", *sets(TRAIN__PRECISION="bf16", TRAIN__MAX_STEPS=2)]) == 0
    out = capsys.readouterr()
    assert "device cpu, bf16;" in out.out + out.err                    # an explicit bf16 is kept ...
    assert emulated() == (not native)                                  # ... with a warning where emulated
