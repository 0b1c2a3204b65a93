"""The super-resolution family through its public entry points: the embedded photos set, DIV2K,
benchmark and split-folder layouts (given and made LR), MATLAB-style bicubic, PSNR/SSIM against
scikit-image on the saved outputs, SRResNet -> SRGAN -> sample, SRCNN on luma, exact resume and
bad inputs as one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT
from ganstack.cli import main
from ganstack.engine.checkpoint import latest_checkpoint, load_checkpoint

from test_gan_int_cls import logged, sets

TINY_SR = ("{SCALE: 4, HR_CROP: 16, CROPS_PER_IMAGE: 4, NUM_BLOCKS: 1, WIDTH: 8, D_WIDTH: 4, D_DENSE: 8, "
           "TEXTURE_JUDGE: false}")


def photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth picture with edges: gradients plus a few rectangles and noise, 8-bit RGB."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx / w * 200, yy / h * 180, (xx + yy) / (h + w) * 220], -1)
    for _ in range(3):
        y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
        img[y0:y0 + rng.integers(4, 12), x0:x0 + rng.integers(4, 12)] = rng.integers(0, 255, 3)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def write_div2k(root: Path, *, n_train=4, n_valid=2, size=(40, 44), scale=4, given_lr=False, seed=0) -> Path:
    """DIV2K's layout: DIV2K_{train,valid}_HR/0001.png and, with given_lr, DIV2K_*_LR_bicubic/X4/0001x4.png."""
    rng = np.random.default_rng(seed)
    for side, n, first in (("train", n_train, 1), ("valid", n_valid, 801)):
        hr_dir = root / f"DIV2K_{side}_HR"
        hr_dir.mkdir(parents=True)
        for i in range(first, first + n):
            image = Image.fromarray(photo(rng, *size))
            image.save(hr_dir / f"{i:04d}.png")
            if given_lr:
                lr_dir = root / f"DIV2K_{side}_LR_bicubic" / f"X{scale}"
                lr_dir.mkdir(parents=True, exist_ok=True)
                image.resize((size[1] // scale, size[0] // scale), Image.Resampling.BICUBIC).save(
                    lr_dir / f"{i:04d}x{scale}.png")
    return root


def write_benchmark(root: Path, names=("baby", "bird", "head"), sizes=((36, 36), (50, 38), (41, 45)), seed=1) -> Path:
    """EDSR's benchmark layout (Set5 ...): HR/<name>.png, odd sizes included."""
    rng = np.random.default_rng(seed)
    (root / "HR").mkdir(parents=True)
    for name, (h, w) in zip(names, sizes):
        Image.fromarray(photo(rng, h, w)).save(root / "HR" / f"{name}.png")
    return root


def tiny_cfg(tmp_path: Path, variant: str, data_dir: Path, **extra: str) -> Path:
    keys = {"_BASE_": ROOT / f"cfg/{variant}/div2k.yml", "DATASET_NAME": "div2k", "DATA_DIR": data_dir,
            "OUTPUT_DIR": tmp_path / "output", "RUN_NAME": variant, "WORKERS": 0,
            "TRAIN": "{BATCH_SIZE: 2, MAX_STEPS: 3, SNAPSHOT_INTERVAL: 100, LOG_INTERVAL: 1, IMAGE_INTERVAL: 3}",
            "SR": TINY_SR, **extra}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{variant}.yml"
    path.write_text("\n".join(f"{k}: {v}" for k, v in keys.items()) + "\n")
    return path


def train(cfg: Path, *extra: str) -> int:
    return main(["train", str(cfg), "--device", "cpu", *extra])


def one_line_error(capsys, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture(scope="module")
def div2k(tmp_path_factory) -> Path:
    return write_div2k(tmp_path_factory.mktemp("div2k"))


# ------------------------------------------------------------------ the embedded photos set
def test_prepare_photos_is_byte_identical_and_holds_out_whole_photos(tmp_path):
    assert main(["prepare", "photos", "--out", str(tmp_path / "a")]) == 0
    assert main(["prepare", "photos", "--out", str(tmp_path / "b")]) == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert [p.name for p in files if p.suffix == ".png"] and all(
        (tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes() for p in files)
    meta = json.loads((tmp_path / "a/meta.json").read_text())
    test = sorted(p.stem for p in (tmp_path / "a/photos_valid_HR").glob("*.png"))
    train_names = sorted(p.stem for p in (tmp_path / "a/photos_train_HR").glob("*.png"))
    assert test == ["chelsea", "coffee", "flower"] and len(train_names) >= 8 and not set(test) & set(train_names)
    assert {f["source"] for f in meta["files"]} == {"scikit-image", "scikit-learn"}
    assert all(np.asarray(Image.open(p)).shape[2] == 3 for p in (tmp_path / "a").rglob("*.png"))
    assert main(["prepare", "photos", "--out", str(tmp_path / "a")]) == 0  # complete: nothing to do


# ------------------------------------------------------------------ resizing and colour
def test_imresize_is_keys_bicubic_with_mirrored_borders():
    from ganstack.imaging import imresize, rgb_to_ycbcr, ycbcr_to_rgb
    rng = np.random.default_rng(0)
    image = rng.random((3, 64, 48))
    ours = imresize(torch.from_numpy(image), 0.25)
    assert ours.shape == (3, 16, 12)
    # torch's antialiased bicubic is the same Keys kernel (a = -0.5) but renormalises at the borders
    # instead of mirroring: the two agree away from the borders and differ at them
    theirs = torch.nn.functional.interpolate(torch.from_numpy(image)[None], size=(16, 12), mode="bicubic",
                                             antialias=True, align_corners=False)[0]
    inner = (slice(None), slice(2, -2), slice(2, -2))
    assert torch.allclose(ours[inner], theirs[inner], atol=1e-6)
    assert (ours[:, 0] - theirs[:, 0]).abs().max() > 1e-4
    assert torch.allclose(imresize(torch.full((1, 20, 20), 0.3, dtype=torch.float64), 0.5), torch.tensor(0.3,
                          dtype=torch.float64))  # weights sum to one, borders included
    up = imresize(torch.from_numpy(image), 4)
    assert up.shape == (3, 256, 192)
    rgb = torch.tensor([[[1.0]], [[1.0]], [[1.0]]]), torch.zeros(3, 1, 1)
    assert [round(float(rgb_to_ycbcr(c)[0]) * 255, 3) for c in rgb] == [235.0, 16.0]  # BT.601 studio range
    x = torch.from_numpy(image)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-9)


# ------------------------------------------------------------------ train, sample, evaluate
def test_srresnet_trains_samples_and_scores_like_scikit_image(tmp_path, div2k, capsys):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    cfg = tiny_cfg(tmp_path, "srresnet", div2k)
    assert train(cfg) == 0
    scalars = logged(tmp_path / "output/srresnet")
    assert "loss/G_mse" in scalars and "samples/bicubic_output_target" in scalars["_images"]
    out = tmp_path / "gallery"
    assert main(["sample", str(cfg), "--device", "cpu", "--from-split", "test", "--count", "2", "--n", "1",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", str(cfg), "--device", "cpu", "--out", str(tmp_path / "report.json")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["protocol"]["border_cropped"] == 4 and report["protocol"]["layout"] == "DIV2K"
    assert report["bicubic"]["psnr_y"] > 20  # smooth pictures upscale well by bicubic

    def y(rgb: np.ndarray) -> np.ndarray:  # BT.601 as MATLAB's rgb2ycbcr, written here independently
        rgb = rgb.astype(np.float64) / 255
        return 16 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]

    for k, row in enumerate(report["per_image"]):
        output = np.asarray(Image.open(out / f"{k:03d}_out_00.png"))
        target = np.asarray(Image.open(div2k / "DIV2K_valid_HR" / row["image"]))[:40, :44]  # 40 x 44: multiples of 4
        assert output.shape == target.shape
        a, b = y(output)[4:-4, 4:-4], y(target)[4:-4, 4:-4]
        assert row["psnr_y"] == pytest.approx(peak_signal_noise_ratio(b, a, data_range=255), abs=1e-6)
        ssim = structural_similarity(b, a, data_range=255, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
        assert abs(row["ssim_y"] - ssim) < 1e-4
        rgb = structural_similarity(target[4:-4, 4:-4].astype(float), output[4:-4, 4:-4].astype(float),
                                    data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    channel_axis=-1)
        assert abs(row["ssim_rgb"] - rgb) < 1e-4


def test_given_lr_and_a_benchmark_folder_with_odd_sizes(tmp_path, capsys):
    data = write_div2k(tmp_path / "div2k", given_lr=True)
    bench = write_benchmark(tmp_path / "Set5")
    cfg = tiny_cfg(tmp_path, "srresnet", data)
    assert train(cfg) == 0
    assert main(["eval", str(cfg), "--device", "cpu", "--out", str(tmp_path / "given.json")]) == 0
    given = json.loads((tmp_path / "given.json").read_text())["protocol"]
    assert given["lr_images"] == "given"
    assert main(["eval", str(cfg), "--device", "cpu", "--out", str(tmp_path / "set5.json"),
                 *sets(SR__TEST_DIR=bench)]) == 0
    report = json.loads((tmp_path / "set5.json").read_text())
    assert report["protocol"]["layout"] == "benchmark" and report["protocol"]["images"] == 3
    assert report["protocol"]["lr_images"].startswith("made by matlab")
    out = tmp_path / "odd"
    assert main(["sample", str(cfg), "--device", "cpu", "--from-split", "test", "--count", "3", "--n", "1",
                 "--out", str(out), *sets(SR__TEST_DIR=bench)]) == 0
    # 50 x 38 and 41 x 45 lose their last rows / columns: 48 x 36 and 40 x 44
    sizes = [Image.open(out / f"{k:03d}_out_00.png").size for k in range(3)]
    assert sizes == [(36, 36), (36, 48), (44, 40)]
    # a user's own LR image of any size
    Image.fromarray(photo(np.random.default_rng(3), 9, 13)).save(tmp_path / "mine.png")
    assert main(["sample", str(cfg), "--device", "cpu", "--input", str(tmp_path / "mine.png"), "--n", "1",
                 "--out", str(tmp_path / "mine")]) == 0
    assert Image.open(tmp_path / "mine/000_out_00.png").size == (52, 36)


def test_srgan_starts_from_srresnet_and_takes_the_reference_weights(tmp_path, div2k, capsys):
    import torchvision
    torch.manual_seed(0)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])  # torchvision's layout
    vgg = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, vgg)
    pre = tiny_cfg(tmp_path, "srresnet", div2k)
    assert train(pre) == 0
    pretrained = load_checkpoint(latest_checkpoint(tmp_path / "output/srresnet/checkpoints"))["nets"]["G"]
    cfg = tiny_cfg(tmp_path, "srgan", div2k, TRAIN="{BATCH_SIZE: 2, MAX_STEPS: 2, LOG_INTERVAL: 1, "
                   f"IMAGE_INTERVAL: 2, SNAPSHOT_INTERVAL: 100, NET_G: {tmp_path / 'output/srresnet'}}}")
    # step 0 (before any update) G is the SRResNet: check through a run of zero learning rate
    assert train(cfg, *sets(SR__VGG_WEIGHTS=vgg, TRAIN__GENERATOR_LR=0.0)) == 0
    run = tmp_path / "output/srgan"
    state = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    weights = {k: v for k, v in state["nets"]["G"].items() if "running" not in k and "batches" not in k}
    assert all(torch.equal(v, pretrained[k]) for k, v in weights.items())
    scalars = logged(run)
    assert {"loss/G_vgg", "loss/G_adversarial", "loss/D_real", "loss/D_fake"} <= set(scalars)
    assert "loss/G_mse" not in scalars  # the paper's SRGAN has no pixel loss
    assert train(cfg, "--restart", *sets(SR__VGG_WEIGHTS=vgg, SR__LOSS_WEIGHTS="leftthomas")) == 0
    assert {"loss/G_mse", "loss/G_tv", "loss/G_vgg"} <= set(logged(run))
    # eval samples the run's own checkpoint, never TRAIN.NET_G (SRGAN's starting point), and needs no VGG
    assert main(["eval", str(cfg), "--device", "cpu", "--out", str(tmp_path / "srgan.json")]) == 0
    assert json.loads((tmp_path / "srgan.json").read_text())["checkpoint"].startswith(str(run))
    capsys.readouterr()
    assert train(cfg, *sets(SR__VGG_WEIGHTS=vgg, SR__MSE_COEF=1.0)) == 2
    one_line_error(capsys, "SR.MSE_COEF", "SR.LOSS_WEIGHTS")
    assert train(cfg, "--restart", *sets(SR__VGG_WEIGHTS=tmp_path / "none.pth")) == 2
    one_line_error(capsys, "SR.VGG_WEIGHTS", "none.pth")


def test_srcnn_on_luma_with_the_papers_sgd(tmp_path, div2k):
    cfg = tiny_cfg(tmp_path, "srcnn", div2k)
    assert train(cfg, *sets(TRAIN__BATCH_SIZE=2)) == 0
    state = load_checkpoint(latest_checkpoint(tmp_path / "output/srcnn/checkpoints"))
    assert state["nets"]["G"]["body.0.weight"].shape == (64, 1, 9, 9)       # luma in, 9x9 to 64
    groups = state["updater"]["optimizers"]["G"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-4, 1e-5]) and groups[0]["momentum"] == 0.9
    out = tmp_path / "gallery"
    assert main(["sample", str(cfg), "--device", "cpu", "--from-split", "test", "--count", "1", "--n", "1",
                 "--out", str(out)]) == 0
    image = np.asarray(Image.open(out / "000_out_00.png"))
    assert image.shape == (40, 44, 3) and image.std(axis=(0, 1)).min() > 1  # colour from bicubic chroma


def test_global_residual_adds_the_networks_output_to_bicubic(tmp_path, div2k, capsys):
    cfg = tiny_cfg(tmp_path, "srresnet", div2k)
    assert train(cfg, *sets(SR__GLOBAL_RESIDUAL="bicubic")) == 0
    weights = load_checkpoint(latest_checkpoint(tmp_path / "output/srresnet/checkpoints"))["nets"]["G"]
    weights["tail.weight"].zero_()
    weights["tail.bias"].zero_()  # the network adds nothing: what is left is the bicubic path
    torch.save(weights, tmp_path / "silent.pth")
    out = tmp_path / "report.json"
    assert main(["eval", str(cfg), "--device", "cpu", "--ckpt", str(tmp_path / "silent.pth"), "--out", str(out),
                 *sets(SR__GLOBAL_RESIDUAL="bicubic")]) == 0
    report = json.loads(out.read_text())
    assert report["psnr_y"] == pytest.approx(report["bicubic"]["psnr_y"], abs=1e-9)
    assert main(["eval", str(cfg), "--device", "cpu", "--ckpt", str(tmp_path / "silent.pth"), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["psnr_y"] < report["psnr_y"] - 10  # the paper's network alone: flat grey
    capsys.readouterr()
    assert main(["eval", str(cfg), "--device", "cpu", "--out", str(out)]) == 2  # the run's checkpoint, other setting
    one_line_error(capsys, "SR.GLOBAL_RESIDUAL=bicubic", "checkpoint_")
    srgan = tiny_cfg(tmp_path, "srgan", div2k, TRAIN=f"{{MAX_STEPS: 1, NET_G: {tmp_path / 'output/srresnet'}}}")
    assert train(srgan) == 2  # no weight shape tells the two networks apart: the saved config does
    one_line_error(capsys, "SR.GLOBAL_RESIDUAL=bicubic", "TRAIN.NET_G")


def test_stop_and_resume_gives_the_same_srresnet(tmp_path, div2k):
    straight = tiny_cfg(tmp_path / "straight", "srresnet", div2k)
    assert train(straight, *sets(TRAIN__MAX_STEPS=6)) == 0
    halves = tiny_cfg(tmp_path / "halves", "srresnet", div2k)
    assert train(halves, *sets(TRAIN__MAX_STEPS=3)) == 0
    assert train(halves, *sets(TRAIN__MAX_STEPS=6)) == 0
    a, b = (load_checkpoint(latest_checkpoint(p / "output/srresnet/checkpoints"))
            for p in (tmp_path / "straight", tmp_path / "halves"))
    assert a["step"] == b["step"] == 6
    assert all(torch.equal(v, b["nets"]["G"][k]) for k, v in a["nets"]["G"].items())


# ------------------------------------------------------------------ bad inputs
def test_bad_sr_inputs_are_one_line_errors(tmp_path, capsys):
    grey = write_div2k(tmp_path / "grey")
    Image.open(grey / "DIV2K_train_HR/0002.png").convert("L").save(grey / "DIV2K_train_HR/0002.png")
    assert train(tiny_cfg(tmp_path / "a", "srresnet", grey)) == 2
    one_line_error(capsys, "0002.png", "grey-scale", "SR.CHANNELS")
    assert train(tiny_cfg(tmp_path / "b", "srresnet", grey), *sets(SR__CHANNELS="y")) == 0  # luma: fine

    deep = write_div2k(tmp_path / "deep")
    Image.fromarray((np.random.default_rng(0).random((40, 44)) * 65535).astype(np.uint16)).save(
        deep / "DIV2K_train_HR/0003.png")
    assert train(tiny_cfg(tmp_path / "c", "srresnet", deep)) == 2
    one_line_error(capsys, "0003.png", "16-bit")

    wrong = write_div2k(tmp_path / "wrong", given_lr=True)
    Image.new("RGB", (12, 12)).save(wrong / "DIV2K_train_LR_bicubic/X4/0001x4.png")
    assert train(tiny_cfg(tmp_path / "d", "srresnet", wrong)) == 2
    one_line_error(capsys, "0001x4.png", "11x10")

    missing = write_div2k(tmp_path / "missing", given_lr=True)
    (missing / "DIV2K_train_LR_bicubic/X4/0004x4.png").unlink()
    assert train(tiny_cfg(tmp_path / "e", "srresnet", missing)) == 2
    one_line_error(capsys, "0004x4.png", "missing")

    assert train(tiny_cfg(tmp_path / "f", "srresnet", tmp_path / "nowhere")) == 2
    one_line_error(capsys, "nowhere", "DIV2K")
    good = write_div2k(tmp_path / "good")
    assert train(tiny_cfg(tmp_path / "h", "srgan", good)) == 2  # cfg/srgan/div2k.yml's SRResNet is not there
    one_line_error(capsys, "TRAIN.NET_G", "output/srresnet_div2k", "not found")
    for bad in (dict(SR__SCALE=3), dict(SR__HR_CROP=18), dict(SR__VGG_LAYER="relu9_9")):
        assert train(tiny_cfg(tmp_path / "g", "srgan", good), *sets(**bad)) == 2
        one_line_error(capsys, next(iter(bad)).replace("__", "."))


def test_sample_upscale_passes_text_to_image_outputs_through_a_sr_model(tmp_path, div2k, capsys):
    from ganstack.data.synthetic.shapes import prepare_shapes
    from conftest import write_random_damsm
    from test_gan_int_cls import tiny_cfg as gan_int_cls_cfg
    sr = tiny_cfg(tmp_path / "sr", "srresnet", div2k)
    assert train(sr) == 0
    shapes = prepare_shapes(tmp_path / "shapes", num_train=16, num_test=4, size=32, seed=0)
    (tmp_path / "damsm").mkdir()
    net_e = write_random_damsm(shapes, tmp_path / "damsm", image_encoder=False) / "text_encoder.pth"
    t2i = gan_int_cls_cfg(tmp_path / "t2i", shapes, net_e)
    assert train(t2i, *sets(TRAIN__MAX_STEPS=1)) == 0
    checkpoint = latest_checkpoint(tmp_path / "sr/output/srresnet/checkpoints")
    for spec in (sr, checkpoint):  # a config (its run's latest checkpoint) or a checkpoint file
        out = tmp_path / f"gallery_{Path(spec).suffix[1:]}"
        assert main(["sample", str(t2i), "--device", "cpu", "--caption", "a red circle", "--n", "2",
                     "--upscale", str(spec), "--out", str(out)]) == 0
        assert Image.open(out / "caption_000_01.png").size == (32, 32)
        assert Image.open(out / "caption_000_01_x4.png").size == (128, 128)
        row = json.loads((out / "index.json").read_text())["rows"][0]
        assert row["upscaled"] == ["caption_000_00_x4.png", "caption_000_01_x4.png"]
        assert "caption_000_01_x4.png" in (out / "index.html").read_text()
    capsys.readouterr()
    assert main(["sample", str(t2i), "--device", "cpu", "--caption", "a red circle", "--upscale", str(t2i)]) == 2
    one_line_error(capsys, "--upscale", "not a super-resolution model")


def test_texture_judge_and_inception_score_outputs_and_bicubic_against_real_patches(tmp_path, monkeypatch):
    from ganstack.metrics.inception import write_random_weights
    monkeypatch.chdir(tmp_path)  # the judge is cached under ./models/judges
    data = write_div2k(tmp_path / "div2k", n_train=3, n_valid=2, size=(96, 96))
    cfg = tiny_cfg(tmp_path, "srresnet", data)
    assert train(cfg) == 0
    inception = write_random_weights(tmp_path / "inception.pth")  # the pt_inception file format
    assert main(["eval", str(cfg), "--device", "cpu", "--out", str(tmp_path / "r.json"),
                 *sets(SR__TEXTURE_JUDGE="true", SR__TEXTURE_JUDGE_STEPS=40, EVAL__INCEPTION_WEIGHTS=inception,
                       SR__INCEPTION_PATCH=32)]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    judged, bicubic = report["texture_judge"], report["bicubic"]["texture_judge"]
    assert judged["patches"] == bicubic["patches"] == 2 * 2 * 2  # 88 px after the border crop: 2 x 2 per image
    assert judged["fid"] >= 0 and bicubic["kid"]["subset_size"] == 8
    assert 0 <= bicubic["real_share"] <= 1 and 0 <= judged["real_share_of_targets"] <= 1
    for scores in report["inception"], report["bicubic"]["inception"]:
        assert scores["patches"] == 8 and scores["patch_size"] == 32 and scores["fid"] > 0
    assert report["inception"]["fid"] != report["bicubic"]["inception"]["fid"]
    assert report["protocol"]["not_run"] == {} and "32 px patch" in report["protocol"]["inception"]
    assert len(list((tmp_path / "models/judges").glob("sr_texture_*.pt"))) == 1


def test_learning_curve_of_a_sr_config_draws_psnr_beside_bicubic(tmp_path, div2k):
    import sys
    sys.path.insert(0, str(ROOT / "scripts"))
    import learning_curve
    cfg = tiny_cfg(tmp_path, "srresnet", div2k)
    assert learning_curve.main([str(cfg), "--max-steps", "2", "--every-steps", "1", "--device", "cpu"]) == 0
    run = tmp_path / "output/srresnet_curve"
    rows = learning_curve.read_rows(run / "learning_curve.csv")
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert all(r["psnr_y"] > 0 and r["psnr_y_real"] > r["psnr_y"] for r in rows)  # bicubic beats 2 steps
    assert len({r["psnr_y_real"] for r in rows}) == 1                              # the baseline is fixed
    assert (run / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
