"""StackGAN++ through its public entry points: the authors' birds layout with char-CNN-RNN
embedding pickles (written here as their Python 2 scripts left them), an LSUN lmdb and class
folders for the unconditional tree, the authors' cfg files and released generators, the
colour-consistency loss, exact resume, and bad input as one-line errors."""
from __future__ import annotations

import hashlib
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, assert_resume_is_exact, write_cub, write_random_damsm
from ganstack.cli import main
from ganstack.config import load_config
from ganstack.data.synthetic.shapes import prepare_shapes
from ganstack.engine.checkpoint import latest_checkpoint, load_checkpoint
from ganstack.nets.stackgan2 import colour_consistency, colour_variance
from ganstack.variants import get_variant

from test_gan_int_cls import logged, sets

MANIFEST = json.loads((ROOT / "tests/fixtures/stackgan2_state_dict_manifest.json").read_text())

# The authors' cfg files (hanzhanggit/StackGAN-v2 code/cfg/), as they are, plus the VARIANT line.
AUTHORS_BIRDS = """CONFIG_NAME: '3stages'
DATASET_NAME: 'birds'
EMBEDDING_TYPE: 'cnn-rnn'
DATA_DIR: '../data/birds'
GPU_ID: '0'
WORKERS: 4
TREE:
    BRANCH_NUM: 3
TRAIN:
    FLAG: True
    NET_G: ''  # '../output/birds_3stages/Model/netG_epoch_700.pth'
    NET_D: ''  # '../output/birds_3stages/Model/netD'
    BATCH_SIZE: 24
    MAX_EPOCH: 600
    SNAPSHOT_INTERVAL: 2000
    DISCRIMINATOR_LR: 0.0002
    GENERATOR_LR: 0.0002
    COEFF:
      UNCOND_LOSS: 1.0
GAN:
    EMBEDDING_DIM: 128
    DF_DIM: 64
    GF_DIM: 64
    Z_DIM: 100
    R_NUM: 2
    B_CONDITION: True
TEXT:
    DIMENSION: 1024
VARIANT: stackgan2
"""
AUTHORS_BEDROOM = """CONFIG_NAME: '3stages_color'
DATASET_NAME: 'bedroom'
DATA_DIR: '../data/lsun'
GPU_ID: '3'
WORKERS: 4  # 4
TREE:
    BRANCH_NUM: 3
TRAIN:
    FLAG: True
    NET_G: ''  # '../output/bedroom_3stages_color/Model/netG_epoch_1.pth'
    NET_D: ''  #
    BATCH_SIZE: 24
    MAX_EPOCH: 5
    SNAPSHOT_INTERVAL: 2000
    DISCRIMINATOR_LR: 0.0002
    GENERATOR_LR: 0.0002
    COEFF:
      COLOR_LOSS: 50.0   # 1.0
GAN:
    DF_DIM: 64
    GF_DIM: 64
    Z_DIM: 100
    R_NUM: 2
    B_CONDITION: False
VARIANT: stackgan2
"""


def py2_embeddings(path: Path, count: int, captions: int = 10, dim: int = 1024, seed: int = 0) -> None:
    """char-CNN-RNN-embeddings.pickle as the authors' Python 2 scripts wrote it: a list of one
    (captions, 1024) float32 array per image, pickle protocol 2, numpy 1's module path."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((captions, dim)).astype(np.float32) for _ in range(count)]
    data = pickle.dumps(arrays, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(data)


@pytest.fixture(scope="module")
def birds_dir(tmp_path_factory) -> Path:
    root = write_cub(tmp_path_factory.mktemp("sg2") / "birds", n_train=12, n_test=6)
    py2_embeddings(root / "train/char-CNN-RNN-embeddings.pickle", 12)
    py2_embeddings(root / "test/char-CNN-RNN-embeddings.pickle", 6, seed=1)
    return root


def write_lsun(root: Path, category: str = "bedroom", counts=(("train", 10), ("val", 4)), damaged: int = 0) -> Path:
    """LSUN's lmdb layout: <category>_<split>_lmdb/ whose keys are hex digests and whose values
    are webp-encoded images; `damaged` values of the train split are not images."""
    import lmdb
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for split, n in counts:
        env = lmdb.open(str(root / f"{category}_{split}_lmdb"), map_size=1 << 26)
        with env.begin(write=True) as txn:
            for i in range(n):
                img = Image.fromarray(rng.integers(0, 255, (40, 52, 3), dtype=np.uint8))
                buf = io.BytesIO()
                img.save(buf, format="WEBP")
                value = b"not an image" if split == "train" and i < damaged else buf.getvalue()
                txn.put(hashlib.sha1(f"{split}{i}".encode()).hexdigest().encode(), value)
        env.close()
    return root


def tiny_cfg(tmp_path: Path, data_dir: Path, base: str = "birds.yml", *extra: str) -> Path:
    lines = [
        f"_BASE_: {ROOT / 'cfg/stackgan2' / base}",
        f"DATA_DIR: {data_dir}",
        f"OUTPUT_DIR: {tmp_path / 'output'}",
        "RUN_NAME: tiny",
        "WORKERS: 0",
        "TREE: {BRANCH_NUM: 2, BASE_SIZE: 32}",
        "TRAIN: {BATCH_SIZE: 4, MAX_STEPS: 3, SNAPSHOT_INTERVAL: 100, LOG_INTERVAL: 1, IMAGE_INTERVAL: 2, "
        "PRECISION: fp32, VIS_COUNT: 4}",
        "GAN: {GF_DIM: 8, DF_DIM: 8, EMBEDDING_DIM: 16, Z_DIM: 16, R_NUM: 1}",
        "EVAL: {BATCH_SIZE: 16, NUM_IMAGES: 12}",
        *extra,
    ]
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "tiny.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_trains_on_the_authors_birds_embeddings_then_samples_and_evaluates(tmp_path, birds_dir, capsys):
    cfg = tiny_cfg(tmp_path, birds_dir)
    assert main(["train", str(cfg), "--device", "cpu"]) == 0
    scalars = logged(tmp_path / "output/tiny")
    for key in ("loss/D0", "loss/D1", "loss/G_D0", "loss/G_D1", "loss/G_kl",
                "stats/colour_variance_fake", "stats/colour_variance_real"):
        assert len(scalars[key]) == 3 and all(np.isfinite(scalars[key])), key
    assert "loss/G_colour_mean1" not in scalars  # COLOR_LOSS 0 in the birds cfg
    assert {"samples/stage0", "samples/stage1"} <= set(scalars["_images"])

    out = tmp_path / "gallery"
    assert main(["sample", str(cfg), "--device", "cpu", "--from-split", "test", "--count", "2", "--n", "2",
                 "--out", str(out)]) == 0
    rows = json.loads((out / "index.json").read_text())["rows"]
    assert len(rows) == 2 and rows[0]["caption"]  # the caption text from text/<key>.txt
    assert Image.open(out / rows[0]["files"][0]).size == (64, 64)

    capsys.readouterr()
    assert main(["sample", str(cfg), "--device", "cpu", "--caption", "a small bird"]) != 0
    err = capsys.readouterr().err.strip()
    assert "EMBEDDING_TYPE=cnn-rnn" in err and len(err.splitlines()) == 1

    assert main(["eval", str(cfg), "--device", "cpu", "--out", str(tmp_path / "report.json")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["variant"] == "stackgan2" and report["protocol"]["generated_images"] == 12
    assert "r_precision" in report["protocol"]["skipped"]  # no DAMSM behind the authors' embeddings


def test_the_wrong_image_is_another_class_and_embeddings_follow_the_caption_draw(birds_dir):
    variant = get_variant("stackgan2")(load_config(tiny_cfg(birds_dir.parent / "c", birds_dir)), "cpu")
    dataset = variant.dataset("train", train=True)
    assert dataset.dim == 1024 and dataset.captions_per_image == 10
    raw = np.asarray(pickle.loads((birds_dir / "train/char-CNN-RNN-embeddings.pickle").read_bytes(),
                                  encoding="latin1"))
    other_class = 0
    for index in range(len(dataset)):
        item = dataset[(index, 100 + index)]
        assert torch.equal(item["embedding"], torch.from_numpy(raw[index, item["sent_ix"]]))
        assert [im.shape[-1] for im in item["images"]] == [im.shape[-1] for im in item["wrong_images"]] == [32, 64]
        wrong = dataset.wrong_index(index, np.random.default_rng(100 + index))
        other_class += int(dataset.class_ids[wrong] != dataset.class_ids[index])
    assert other_class >= len(dataset) * 3 // 4  # the authors draw again once when the classes agree


def test_an_lsun_lmdb_trains_unconditionally_with_colour_consistency(tmp_path):
    data = write_lsun(tmp_path / "lsun", damaged=1)
    cfg = tiny_cfg(tmp_path, data, "bedroom.yml")
    with pytest.warns(UserWarning, match="unreadable image skipped"):
        assert main(["train", str(cfg), "--device", "cpu"]) == 0
    scalars = logged(tmp_path / "output/tiny")
    for key in ("loss/D0", "loss/G_D1", "loss/G_colour_mean1", "loss/G_colour_cov1", "stats/colour_variance_fake"):
        assert len(scalars[key]) == 3 and all(np.isfinite(scalars[key])), key
    assert "loss/G_kl" not in scalars and max(scalars["data/skipped_images"]) >= 1
    out = tmp_path / "gallery"
    assert main(["sample", str(cfg), "--device", "cpu", "--from-split", "test", "--count", "2", "--n", "3",
                 "--out", str(out)]) == 0
    rows = json.loads((out / "index.json").read_text())["rows"]
    assert len(rows) == 2 and len(rows[1]["files"]) == 3
    variant = get_variant("stackgan2")(load_config(cfg), "cpu")
    assert len(variant.dataset("test", train=False)) == 4  # the test split reads bedroom_val_lmdb


def test_class_folders_and_an_attngan_layout_read_as_unconditional_images(tmp_path):
    root = tmp_path / "dogs"
    for k, cls in enumerate(("n02085620", "n02085782")):
        (root / "train" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (50, 40), (40 * k, 10 * i, 90)).save(root / "train" / cls / f"{i}.png")
    variant = get_variant("stackgan2")(load_config(tiny_cfg(tmp_path, root, "bedroom.yml")), "cpu")
    dataset = variant.dataset("train", train=True)
    assert len(dataset) == 6 and dataset.class_ids == [0, 0, 0, 1, 1, 1]
    assert [im.shape for im in dataset[(4, 0)]["images"]] == [(3, 32, 32), (3, 64, 64)]

    shapes = prepare_shapes(tmp_path / "shapes", level="single", num_train=8, num_test=4, size=64, seed=0)
    variant = get_variant("stackgan2")(load_config(tiny_cfg(tmp_path, shapes, "shapes_uncond.yml")), "cpu")
    assert len(variant.dataset("test", train=False)) == 4 and "caption" not in variant.dataset("test", False)[0]


def test_text_from_a_damsm_encoder_takes_free_text(tmp_path):
    shapes = prepare_shapes(tmp_path / "shapes", level="single", num_train=12, num_test=4, size=64, seed=0)
    damsm = write_random_damsm(shapes, tmp_path / "damsm")
    cfg = tiny_cfg(tmp_path, shapes, "shapes.yml")
    flags = sets(TRAIN__NET_E=damsm / "text_encoder.pth", TEXT__DIMENSION=32, GAN__D_MU_GRAD="false")
    assert main(["train", str(cfg), "--device", "cpu", *flags]) == 0
    out = tmp_path / "gallery"
    assert main(["sample", str(cfg), "--device", "cpu", "--caption", "a big red star at the top", "--n", "2",
                 "--out", str(out), *flags]) == 0
    assert json.loads((out / "index.json").read_text())["rows"][0]["caption"] == "a big red star at the top"


def test_resume_is_exact_with_every_loss_term(tmp_path, birds_dir):
    flags = sets(TRAIN__COEFF__COLOR_LOSS=1.0, TRAIN__COEFF__UNCOND_LOSS=1.0)
    assert_resume_is_exact(lambda path: tiny_cfg(path, birds_dir), tmp_path, flags,
                           [("nets", ["G", "D0", "D1"]), ("ema", ["G"])])


def test_colour_consistency_is_the_authors_mean_and_covariance_mse():
    gen = torch.Generator().manual_seed(0)
    fine, coarse = torch.rand(3, 3, 8, 8, generator=gen), torch.rand(3, 3, 4, 4, generator=gen)

    def stats(images):  # per image: channel means and the covariance of its pixels, in numpy
        x = images.double().numpy().reshape(images.shape[0], 3, -1)
        mu = x.mean(2)
        centred = x - mu[:, :, None]
        return mu, np.einsum("bcp,bdp->bcd", centred, centred) / x.shape[2]
    (m1, c1), (m2, c2) = stats(fine), stats(coarse)
    means, covariances = colour_consistency(fine, coarse, 50.0)
    assert means.item() == pytest.approx(50 * ((m1 - m2) ** 2).mean(), rel=1e-5)
    assert covariances.item() == pytest.approx(5 * 50 * ((c1 - c2) ** 2).mean(), rel=1e-5)
    fine.requires_grad_(True), coarse.requires_grad_(True)
    sum(colour_consistency(fine, coarse, 1.0)).backward()
    assert fine.grad.abs().sum() > 0 and coarse.grad is None  # the coarser scale is a fixed target
    flat = torch.ones(4, 3, 16, 16) * torch.rand(4, 3, 1, 1)
    assert colour_variance(flat).item() == pytest.approx(0.0, abs=1e-7) and colour_variance(fine).item() > 0.05


def test_the_authors_cfg_files_and_released_generators_load(tmp_path, birds_dir):
    birds, bedroom = tmp_path / "birds_3stages.yml", tmp_path / "bedroom_3stages_color.yml"
    birds.write_text(AUTHORS_BIRDS.replace("'../data/birds'", str(birds_dir)))
    bedroom.write_text(AUTHORS_BEDROOM)
    quick = "GAN.INIT=pytorch"  # orthogonal init of 16M weights takes seconds; the weights are replaced anyway
    cfg = load_config(birds, [f"OUTPUT_DIR={tmp_path / 'output'}", quick])
    assert (cfg.GAN.CONDITION_DIM, cfg.TEXT.EMBEDDING_DIM, cfg.TRAIN.COEFF.UNCOND_LOSS, cfg.TRAIN.COEFF.KL) == \
        (128, 1024, 1.0, 2.0)
    other = load_config(bedroom, [quick])
    assert not other.GAN.B_CONDITION and other.TRAIN.COEFF.COLOR_LOSS == 50.0 and other.GPU_ID == "3"

    for name, config in (("birds_3stages", cfg), ("bedroom_3stages_color", other)):
        variant = get_variant("stackgan2")(config, "cpu")
        variant.build(variant.dataset("train", train=False) if config.GAN.B_CONDITION else None)
        authors = MANIFEST[name]["nets"]
        ours = {k: list(v.shape) for k, v in variant.nets["G"].state_dict().items()
                if not k.endswith("num_batches_tracked")}
        assert ours == authors["netG"], name
        for d in ("D0", "D1", "D2"):  # their D files: every key renamed onto ganstack's heads, same shapes
            theirs = {k: torch.zeros(s) for k, s in authors[f"net{d}"].items()}
            variant.nets[d].load_state_dict(variant.adapt_authors_weights(d, theirs))

    # netG_210000.pth as the authors released it: DataParallel's "module." keys, no num_batches_tracked
    torch.manual_seed(0)
    variant = get_variant("stackgan2")(cfg, "cpu")
    variant.build(variant.dataset("train", train=False))
    released = {f"module.{k}": v for k, v in variant.nets["G"].state_dict().items()
                if not k.endswith("num_batches_tracked")}
    torch.save(released, tmp_path / "netG_210000.pth")
    out = tmp_path / "gallery"
    assert main(["sample", str(birds), "--device", "cpu", "--from-split", "test", "--count", "1", "--n", "1",
                 "--out", str(out), "--set", f"TRAIN.NET_G={tmp_path / 'netG_210000.pth'}", "--set", quick]) == 0
    assert Image.open(out / "caption_000_00.png").size == (256, 256)


@pytest.mark.parametrize("damage, message", [
    ("count", "expected (12, captions, dim)"),
    ("missing", "char-CNN-RNN-embeddings.pickle: not found"),
    ("net_d", "TRAIN.NET_D=output/netD"),
    ("no_images", "no images for the train split"),
    ("dimension", "set TEXT.DIMENSION: 1024"),
])
def test_bad_input_is_a_one_line_error(tmp_path, birds_dir, capsys, damage, message):
    import shutil
    data = tmp_path / "birds"
    shutil.copytree(birds_dir, data)
    flags = []
    if damage == "count":
        py2_embeddings(data / "train/char-CNN-RNN-embeddings.pickle", 11)
    elif damage == "missing":
        (data / "train/char-CNN-RNN-embeddings.pickle").unlink()
    elif damage == "net_d":
        flags = sets(TRAIN__NET_D="output/netD")
    elif damage == "no_images":
        flags = sets(GAN__B_CONDITION="false", DATA_DIR=tmp_path)
    elif damage == "dimension":
        flags = sets(TEXT__DIMENSION=512)
    cfg = tiny_cfg(tmp_path, data)
    capsys.readouterr()
    assert main(["train", str(cfg), "--device", "cpu", *flags]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_unconditional_shapes_log_is_and_fid_curves_during_training(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    import ganstack.metrics.shapes_judge as judge
    monkeypatch.chdir(tmp_path)  # the judge caches under ./models/judges
    monkeypatch.setattr(judge, "DEFAULT_EPOCHS", 1)
    shapes = prepare_shapes(tmp_path / "shapes", level="single", num_train=12, num_test=8, size=64, seed=0)
    cfg = tiny_cfg(tmp_path, shapes, "shapes_uncond.yml")
    assert main(["train", str(cfg), "--device", "cpu", *sets(
        TRAIN__MAX_STEPS=4, TRAIN__EVAL_INTERVAL=2, EVAL__NUM_IMAGES=8, EVAL__KID_SUBSET_SIZE=4,
        EVAL__KID_SUBSETS=2, EVAL__IS_SPLITS=2)]) == 0
    acc = EventAccumulator(str(tmp_path / "output/tiny"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("eval/judge/fid")] == [2, 4]
    assert [e.step for e in acc.Scalars("eval/judge/is/mean")] == [2, 4]
    assert not any("object_accuracy/" in tag for tag in acc.Tags()["scalars"])  # no caption to match
