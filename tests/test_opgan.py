"""OP-GAN through its public entry points: the authors' box and label pickles (written here as
a Python 2-era script would), training with object pathways in G and every D, spectral norm,
exact resume, sampling and eval on layouts, the authors' cfg keys, bad layouts as one-line errors."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import ROOT, assert_resume_is_exact, torchrun_train, write_coco, write_random_damsm
from ganstack.cli import main
from ganstack.config import load_config
from ganstack.data.opgan import LayoutDataset
from ganstack.data.synthetic.shapes import prepare_shapes
from ganstack.engine.checkpoint import latest_checkpoint, load_checkpoint
from ganstack.nets.opgan import box_to_patch, patch_to_box, warp
from ganstack.variants.opgan import build_networks

from test_gan_int_cls import logged, sets


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory) -> Path:
    return prepare_shapes(tmp_path_factory.mktemp("shapes"), num_train=24, num_test=8, size=64, seed=0)


@pytest.fixture(scope="module")
def damsm_dir(shapes_dir, tmp_path_factory) -> Path:
    return write_random_damsm(shapes_dir, tmp_path_factory.mktemp("damsm"))


def tiny_cfg(tmp_path: Path, data_dir: Path, damsm_dir: Path, *extra: str) -> Path:
    lines = [
        f"_BASE_: {ROOT / 'cfg/opgan/shapes.yml'}",
        f"DATA_DIR: {data_dir}",
        f"OUTPUT_DIR: {tmp_path / 'output'}",
        "RUN_NAME: tiny",
        "WORKERS: 0",
        f"TRAIN: {{BATCH_SIZE: 6, MAX_STEPS: 3, SNAPSHOT_INTERVAL: 100, LOG_INTERVAL: 1, IMAGE_INTERVAL: 2, "
        f"PRECISION: fp32, NET_E: '{damsm_dir / 'text_encoder.pth'}'}}",
        "GAN: {GF_DIM: 8, DF_DIM: 8, CONDITION_DIM: 16, Z_DIM: 16, R_NUM: 1, LOCAL_Z_DIM: 8, INIT_LABEL_DIM: 16, "
        "NEXT_LABEL_DIM: 16}",
        "TEXT: {CAPTIONS_PER_IMAGE: 10, WORDS_NUM: 24, EMBEDDING_DIM: 32, CLASSES_NUM: 37}",
        "EVAL: {BATCH_SIZE: 16, R_PRECISION_CANDIDATES: 4, R_PRECISION_RUNS: 2, BOX_IOU: false}",
        *extra,
    ]
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "tiny.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_transformer_crops_a_box_and_pastes_it_back_in_place():
    image = torch.zeros(1, 1, 16, 16)
    image[0, 0, 4:8, 8:16] = 1.0                               # rows 4-7, columns 8-15
    box = torch.tensor([[0.5, 0.25, 0.5, 0.25]])              # x, y, w, h of that block
    patch = warp(image, box_to_patch(box), 4)
    assert torch.allclose(patch, torch.ones_like(patch))      # the crop sees only the block
    pasted = warp(patch, patch_to_box(box), 16)[0, 0]         # and puts it back where it was:
    assert torch.allclose(pasted[5:7, 9:15], torch.ones(2, 6))  # inside the box,
    near = torch.zeros(16, 16, dtype=torch.bool)
    near[3:9, 7:16] = True
    assert pasted[~near].abs().max() == 0                       # nothing a pixel beyond it,
    assert (pasted[4:8, 8:16] > 0.5).all()                      # soft (bilinear) at its edges
    padding = torch.full((1, 4), -1.0)                        # a padding row moves nothing
    assert warp(torch.ones(1, 1, 4, 4), patch_to_box(padding), 16).abs().max() == 0


def test_trains_with_object_pathways_logs_the_wrong_box_terms_and_samples_layouts(tmp_path, shapes_dir, damsm_dir):
    cfg = tiny_cfg(tmp_path, shapes_dir, damsm_dir)
    assert main(["train", str(cfg), "--device", "cpu"]) == 0
    scalars = logged(tmp_path / "output/tiny")
    for key in ("loss/D0", "loss/D1", "loss/G_D0", "loss/G_D1", "loss/G_kl"):
        assert len(scalars[key]) == 3 and all(np.isfinite(scalars[key])), key
    ckpt = load_checkpoint(latest_checkpoint(tmp_path / "output/tiny/checkpoints"))
    g = ckpt["nets"]["G"]
    # the authors' module names: object pathways in both stages, layout encoder in the first
    for key in ("h_net1.label.0.weight", "h_net1.local1.1.weight", "h_net1.bbox_net.encode.0.weight",
                "h_net2.label.0.weight", "h_net2.local2.1.weight", "h_net2.att.conv_context.weight"):
        assert key in g, key
    for d in ("D0", "D1"):
        assert "local.0.weight" in ckpt["nets"][d] and "COND_DNET.jointConv.0.weight" in ckpt["nets"][d]
    layout = tmp_path / "layout.json"
    layout.write_text(json.dumps({"caption": "a red circle at the top left and a blue star at the bottom right",
                                  "objects": [{"label": "red circle", "box": [0.05, 0.05, 0.4, 0.4]},
                                              {"label": 20, "box": [0.55, 0.55, 0.4, 0.4]}]}))
    out = tmp_path / "gallery"
    assert main(["sample", str(cfg), "--device", "cpu", "--layout", str(layout), "--from-split", "test",
                 "--count", "2", "--n", "2", "--out", str(out)]) == 0
    index = json.loads((out / "index.json").read_text())
    assert [r["caption"] for r in index["rows"]][0].startswith("a red circle")
    first = index["rows"][0]
    assert first["layout"] == "red circle, blue star" and len(first["layout_files"]) == 2
    assert all((out / f).is_file() for r in index["rows"] for f in r["files"] + r["layout_files"])
    assert "layout: red circle, blue star" in (out / "index.html").read_text()

    # the authors' training checkpoint format: netG / netD list, DataParallel prefixes, D_NET256's unused block
    authors = tmp_path / "checkpoint_0003.pth"
    d1 = dict(ckpt["nets"]["D1"], **{"img_code_s16.0.weight": torch.zeros(1)})
    torch.save({"epoch": 3, "netG": {f"module.{k}": v for k, v in ckpt["ema"]["G"].items() if k != "_updates"},
                "optimG": {}, "netD": [ckpt["nets"]["D0"], d1], "optimD": []}, authors)
    again = tmp_path / "again"
    assert main(["sample", str(cfg), "--device", "cpu", "--ckpt", str(authors), "--layout", str(layout),
                 "--n", "2", "--out", str(again)]) == 0
    from PIL import Image
    ours, theirs = (np.asarray(Image.open(d / "caption_000_00.png")) for d in (out, again))
    assert np.array_equal(ours, theirs)  # the same generator (the EMA copy), the same images


@pytest.mark.parametrize("objects, message", [
    ([{"label": "purple unicorn", "box": [0.1, 0.1, 0.2, 0.2]}], "unknown label 'purple unicorn'"),
    ([{"label": 3, "box": [0.9, 0.1, 0.2, 0.2]}], "outside [0, 1]"),
    ([{"label": 3, "box": [0.1, 0.1, 0.1, 0.1]}] * 4, "at most MAX_OBJECTS=3"),
])
def test_bad_layout_files_are_one_line_errors(tmp_path, shapes_dir, damsm_dir, capsys, objects, message):
    cfg = tiny_cfg(tmp_path, shapes_dir, damsm_dir)
    assert main(["train", str(cfg), "--device", "cpu", *sets(TRAIN__MAX_STEPS=1)]) == 0
    layout = tmp_path / "bad.json"
    layout.write_text(json.dumps([{"caption": "a red circle", "objects": objects}]))
    capsys.readouterr()
    assert main(["sample", str(cfg), "--device", "cpu", "--layout", str(layout)]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and str(layout) in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_eval_reports_soa_with_the_judge_beside_the_real_images(tmp_path, shapes_dir, damsm_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the judge caches under ./models/judges
    import ganstack.metrics.shapes_judge as judge
    monkeypatch.setattr(judge, "DEFAULT_EPOCHS", 1)
    cfg = tiny_cfg(tmp_path, shapes_dir, damsm_dir)
    assert main(["train", str(cfg), "--device", "cpu", *sets(TRAIN__MAX_STEPS=1)]) == 0
    assert main(["eval", str(cfg), "--device", "cpu", "--set", "EVAL.KID_SUBSET_SIZE=8",
                 "--set", "EVAL.IS_SPLITS=4", "--set", "EVAL.IMAGES_PER_CAPTION=3"]) == 0
    report = json.loads((tmp_path / "output/tiny/eval/checkpoint_00000001.json").read_text())
    gen, real = report["object_accuracy"], report["object_accuracy_real"]
    assert gen["num_images"] == 240  # SOA's 3 images per caption, each on its image's layout
    for scores in (gen, real):
        assert 0 <= scores["soa_i"] <= 1 and scores["soa_c"] == pytest.approx(scores["class_recall"])
        assert "soa_c_iou" not in scores  # EVAL.BOX_IOU is off (tiny_cfg)


def test_eval_reports_box_iou_from_the_level_segmenter(tmp_path, shapes_dir, damsm_dir, monkeypatch, capsys):
    """EVAL.BOX_IOU: the segmenter trained on the level's label maps finds the boxes; the real images'
    own boxes are the reference row (a one-step segmenter finds little: the scores are in range)."""
    monkeypatch.chdir(tmp_path)
    import ganstack.metrics.shapes_judge as judge
    import ganstack.metrics.shapes_segmenter as segmenter
    for module, name in ((judge, "load_or_train_judge"), (segmenter, "load_or_train_segmenter")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _f=original, **k: _f(*a, **{**k, "max_steps": 2}))
    cfg = tiny_cfg(tmp_path, shapes_dir, damsm_dir)
    assert main(["train", str(cfg), "--device", "cpu", *sets(TRAIN__MAX_STEPS=1)]) == 0
    capsys.readouterr()
    assert main(["eval", str(cfg), "--device", "cpu", "--set", "EVAL.KID_SUBSET_SIZE=8", "--set", "EVAL.IS_SPLITS=4",
                 "--set", "EVAL.BOX_IOU=true"]) == 0
    assert f"shapes segmenter: training on {shapes_dir}" in capsys.readouterr().err
    report = json.loads((tmp_path / "output/tiny/eval/checkpoint_00000001.json").read_text())
    for scores in (report["object_accuracy"], report["object_accuracy_real"]):
        assert 0 <= scores["soa_c_iou"] <= 1 and 0 <= scores["soa_i_iou"] <= 1


def test_the_layout_steers_the_generator(tmp_path, shapes_dir, damsm_dir):
    """Same caption and noise, another layout: other images (the object pathway is wired in)."""
    cfg = load_config(tiny_cfg(tmp_path, shapes_dir, damsm_dir))
    nets = build_networks(cfg, 32)
    G = nets["G"].eval()
    z, local_z = torch.randn(2, 16), torch.randn(2, 8)
    sentence, words = torch.randn(2, 32), torch.randn(2, 32, 5)
    from ganstack.nets.opgan import Layout
    labels = torch.nn.functional.one_hot(torch.tensor([[3, 36, 36], [3, 36, 36]]), 37).float()
    left = Layout(torch.tensor([[[0.0, 0.0, 0.5, 0.5]] + [[-1.0] * 4] * 2] * 2), labels)
    right = Layout(torch.tensor([[[0.5, 0.5, 0.5, 0.5]] + [[-1.0] * 4] * 2] * 2), labels)
    with torch.no_grad():
        a = G(z, local_z, sentence, words, None, left)[0][-1]
        b = G(z, local_z, sentence, words, None, right)[0][-1]
    assert a.shape == (2, 3, 64, 64)
    assert (a - b).abs().mean() > 1e-4


def test_spectral_norm_switch_and_exact_resume(tmp_path, shapes_dir, damsm_dir):
    on = ["GAN.SPECTRAL_NORM=true"]
    nets = build_networks(load_config(tiny_cfg(tmp_path, shapes_dir, damsm_dir), on), 32)
    for name in ("D0", "D1"):
        convs = [m for m in nets[name].modules() if isinstance(m, nn.Conv2d)]
        assert convs and all(nn.utils.parametrize.is_parametrized(m, "weight") and m.bias is not None for m in convs)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in nets[name].modules())
    assert not any(nn.utils.parametrize.is_parametrized(m) for m in nets["G"].modules())
    assert_resume_is_exact(lambda path: tiny_cfg(path, shapes_dir, damsm_dir), tmp_path,
                           [a for s in on for a in ("--set", s)], (("nets", ("G", "D0", "D1")), ("ema", ("G",))))


def test_two_process_torchrun_trains_opgan(tmp_path, shapes_dir, damsm_dir):
    cfg = tiny_cfg(tmp_path, shapes_dir, damsm_dir)
    done = torchrun_train(cfg, tmp_path / "torchrun_logs", "TRAIN.BATCH_SIZE=4", "TRAIN.MAX_STEPS=2")
    assert "4 x 2 process(es) = 8" in done.stdout and done.stdout.count("step 2 ") == 1
    state = load_checkpoint(latest_checkpoint(tmp_path / "output/tiny/checkpoints"))
    assert state["step"] == 2 and len(state["rng"]) == 2


def py2_layouts(split_dir: Path, boxes: list, labels: list, suffix: str = "") -> None:
    """Box and label pickles as a Python 2-era script writes them: protocol 2 numpy arrays."""
    with open(split_dir / f"bboxes{suffix}.pickle", "wb") as f:
        pickle.dump(np.asarray(boxes, dtype=np.float64), f, protocol=2)
    with open(split_dir / f"labels{suffix}.pickle", "wb") as f:
        pickle.dump(np.asarray(labels, dtype=np.int64), f, protocol=2)


def coco_layouts(root: Path, max_objects: int = 3) -> Path:
    data = write_coco(root, n_train=6, n_test=4, size=40)
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 4)):
        boxes = np.full((n, max_objects, 4), -1.0)
        labels = np.full((n, max_objects, 1), -1)
        for i in range(n):
            for k in range(1 + i % max_objects):
                x, y = rng.uniform(0, 0.5, 2)
                boxes[i, k] = [x, y, rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.5)]
                labels[i, k, 0] = rng.integers(80)
        py2_layouts(data / split, boxes.tolist(), labels.tolist())
    return data


def test_a_coco_folder_with_the_authors_box_pickles_trains_with_crops_and_flips_moving_boxes(tmp_path):
    data = coco_layouts(tmp_path / "coco")
    damsm = write_random_damsm(data, tmp_path / "damsm", captions_per_image=5)
    cfg = tiny_cfg(tmp_path, data, damsm, "DATASET_NAME: coco")
    over = ["--set", "TEXT.CLASSES_NUM=81", "--set", "TEXT.CAPTIONS_PER_IMAGE=5", "--set", "TRAIN.FLIP=true",
            "--set", "TRAIN.CROP_JITTER=true", "--set", "TEXT.WORDS_NUM=12"]
    assert main(["train", str(cfg), "--device", "cpu", *over, *sets(TRAIN__MAX_STEPS=2, TRAIN__BATCH_SIZE=3)]) == 0
    ds = LayoutDataset(data, "train", max_objects=3, classes=81, image_sizes=[32, 64], words_num=12,
                       captions_per_image=5, augment=True, flip=True, crop=True)
    for seed in range(8):
        item = ds[(5, seed)]
        valid = item["labels"] >= 0
        assert valid.sum() >= 1 and (item["labels"][~valid] == -1).all()
        boxes = item["boxes"][valid]
        assert ((boxes >= 0) & (boxes[:, :2] + boxes[:, 2:] <= 1 + 1e-6).repeat(1, 2)).all()


@pytest.mark.parametrize("damage, message", [
    ("box", "outside [0, 1]"),
    ("label", "outside 0..79"),
    ("count", "more than MAX_OBJECTS=2"),
])
def test_bad_layouts_are_one_line_errors(tmp_path, capsys, damage, message):
    data = coco_layouts(tmp_path / "coco")
    boxes = pickle.loads((data / "train/bboxes.pickle").read_bytes())
    labels = pickle.loads((data / "train/labels.pickle").read_bytes())
    extra = []
    if damage == "box":
        boxes[0, 0] = [0.8, 0.1, 0.5, 0.2]
    elif damage == "label":
        labels[0, 0, 0] = 85
    else:
        extra = ["--set", "MAX_OBJECTS=2"]
    py2_layouts(data / "train", boxes, labels)
    damsm = write_random_damsm(data, tmp_path / "damsm", captions_per_image=5)
    cfg = tiny_cfg(tmp_path, data, damsm, "DATASET_NAME: coco")
    assert main(["train", str(cfg), "--device", "cpu", "--set", "TEXT.CLASSES_NUM=81", "--set",
                 "TEXT.CAPTIONS_PER_IMAGE=5", *extra]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and ("bboxes.pickle" in err or "labels.pickle" in err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_the_authors_cfg_keys_load(tmp_path):
    authors = tmp_path / "cfg_file_train.yml"
    authors.write_text("""VARIANT: opgan
CONFIG_NAME: 'glu-gan2'
DATASET_NAME: 'coco'
DATA_DIR: 'data'
WORKERS: 8
DEBUG: False
TREE:
    BRANCH_NUM: 3
TRAIN:
    FLAG: True
    NET_G: ""
    B_NET_D: True
    BATCH_SIZE: [24]
    MAX_EPOCH: 120
    DISCRIMINATOR_LR: 0.0002
    GENERATOR_LR: 0.0002
    NET_E: 'models/coco/text_encoder100.pth'
    BBOX_LOSS: True
    OPTIMIZE_DATA_LOADING: False
    EMPTY_CACHE: True
    SMOOTH:
        GAMMA1: 4.0
        GAMMA2: 5.0
        GAMMA3: 10.0
        LAMBDA: 50.0
GAN:
    DISC_FEAT_DIM: 96
    GEN_FEAT_DIM: 48
    GLOBAL_Z_DIM: 100
    TEXT_CONDITION_DIM: 100
    RESIDUAL_NUM: 3
TEXT:
    EMBEDDING_DIM: 256
    CAPTIONS_PER_IMAGE: 5
    WORDS_NUM: 12
""")
    cfg = load_config(authors)
    buckets = load_config(authors, ["TRAIN.OPTIMIZE_DATA_LOADING=true",
                                    "TRAIN.BATCH_SIZE=[32, 28, 24, 24, 20, 16, 16, 16, 12, 12, 12]"])
    assert buckets.TRAIN.BATCH_SIZE == [32, 28, 24, 24, 20, 16, 16, 16, 12, 12, 12]
    assert (cfg.TRAIN.BATCH_SIZE, cfg.GAN.DF_DIM, cfg.GAN.GF_DIM, cfg.GAN.Z_DIM, cfg.GAN.R_NUM) == (24, 96, 48, 100, 3)
    paper = load_config(ROOT / "cfg/opgan/coco.yml")
    assert (paper.GAN.DF_DIM, paper.GAN.GF_DIM, paper.GAN.R_NUM, paper.TEXT.CLASSES_NUM, paper.MAX_OBJECTS,
            paper.TRAIN.SMOOTH.LAMBDA) == (96, 48, 3, 81, 3, 50.0)
    narrow = load_config(ROOT / "cfg/opgan/coco.yml", ["GAN.DF_DIM=4", "GAN.GF_DIM=4", "GAN.INIT_LABEL_DIM=16",
                                                       "GAN.NEXT_LABEL_DIM=8"])
    nets = build_networks(narrow, 256)
    assert set(nets) == {"G", "D0", "D1", "D2"}
    assert nets["D2"].img_code_s64_2[0].weight.shape == (4 * 8, 4 * 16, 3, 3)   # D_NET256's last block
    assert nets["D1"].img_code_s32_1[0].weight.shape == (4 * 8, 4 * 16, 3, 3)   # D_NET128's
    assert nets["D0"].local[0].weight.shape == (4 * 2, 3 + 81, 4, 4)            # D_NET64's object pathway
    assert load_config(ROOT / "cfg/opgan/coco_sn.yml").GAN.SPECTRAL_NORM


def test_eval_runs_the_official_soa_protocol_with_a_darknet_yolo(tmp_path, capsys):
    """Caption files in the official layout, a darknet cfg + weights pair written here, OP-GAN drawing
    each caption on its image's layout: SOA-C, SOA-I and the IoU variants land in the report."""
    from test_soa import TINY_CFG, darknet_arrays, random_fill, write_weights
    data = coco_layouts(tmp_path / "coco")
    damsm = write_random_damsm(data, tmp_path / "damsm", captions_per_image=5)
    soa_dir = tmp_path / "soa"
    soa_dir.mkdir()
    for label, name, image_id in ((0, "person", 0), (2, "car", 3)):
        with open(soa_dir / f"label_{label:02d}_{name}.pkl", "wb") as f:
            pickle.dump([{"image_id": image_id, "id": 7 + k, "idx": [image_id, k],
                          "caption": "a red circle and a blue square"} for k in range(2)], f, protocol=2)
    (tmp_path / "tiny.cfg").write_text(TINY_CFG)
    write_weights(tmp_path / "tiny.weights", darknet_arrays(random_fill(4)))
    (tmp_path / "tiny.names").write_text("person\nbicycle\ncar\n")
    cfg = tiny_cfg(tmp_path, data, damsm, "DATASET_NAME: coco")
    common = ["--set", "TEXT.CLASSES_NUM=81", "--set", "TEXT.CAPTIONS_PER_IMAGE=5", "--set", "TEXT.WORDS_NUM=12"]
    assert main(["train", str(cfg), "--device", "cpu", *common, *sets(TRAIN__MAX_STEPS=1, TRAIN__BATCH_SIZE=3)]) == 0
    soa = ["--set", f"EVAL.SOA_CAPTIONS={soa_dir}", "--set", f"EVAL.SOA_DETECTOR_CFG={tmp_path / 'tiny.cfg'}",
           "--set", f"EVAL.SOA_DETECTOR_NAMES={tmp_path / 'tiny.names'}", "--set", "EVAL.SOA_IMAGE_SIZE=32",
           "--set", "EVAL.KID_SUBSET_SIZE=4", "--set", "EVAL.IS_SPLITS=2", "--set", "EVAL.NUM_IMAGES=8"]
    capsys.readouterr()
    assert main(["eval", str(cfg), "--device", "cpu", *common, *soa]) != 0  # no weights file yet
    err = capsys.readouterr().err.strip()
    assert "EVAL.SOA_DETECTOR_WEIGHTS" in err and len(err.splitlines()) == 1
    soa += ["--set", f"EVAL.SOA_DETECTOR_WEIGHTS={tmp_path / 'tiny.weights'}"]
    assert main(["eval", str(cfg), "--device", "cpu", *common, *soa]) == 0
    report = json.loads((tmp_path / "output/tiny/eval/checkpoint_00000001.json").read_text())["soa"]
    for key in ("SOA-C", "SOA-I", "SOA-C-IoU", "SOA-I-IoU"):
        assert 0 <= report[key] <= 1, key
    assert set(report["per_class"]) == {"person", "car"}
    assert report["protocol"]["images_per_caption"] == 3


def test_batches_by_object_count_train_and_resume_exactly(tmp_path, shapes_dir, damsm_dir):
    """TRAIN.OPTIMIZE_DATA_LOADING with TRAIN.BATCH_SIZE as a list: every batch holds images of one
    object count, sized by its entry (the authors' buckets); ranks share nothing; resume is exact."""
    from ganstack.data.sampler import BucketBatchSampler
    groups = LayoutDataset(shapes_dir, "train", max_objects=3, classes=37, image_sizes=[32], words_num=24,
                           captions_per_image=10, augment=False, flip=False).batch_groups()
    assert set(groups.tolist()) <= {1, 2, 3}
    sizes = [5, 3, 2, 4]
    ranks = [list(BucketBatchSampler(groups, sizes, seed=0, epoch=1, rank=r, world=2)) for r in (0, 1)]
    for batches in ranks:
        for batch in batches:
            counts = {int(groups[i]) for i, _ in batch}
            assert len(counts) == 1 and len(batch) == sizes[counts.pop()]
    assert ranks[0] != ranks[1] and ranks[0] == list(BucketBatchSampler(groups, sizes, seed=0, epoch=1, world=2))
    assert list(BucketBatchSampler(groups, sizes, seed=0, epoch=1, world=2, start=2)) == ranks[0][2:]

    buckets = ["--set", "TRAIN.OPTIMIZE_DATA_LOADING=true", "--set", "TRAIN.BATCH_SIZE=[5, 3, 2, 4]"]
    assert_resume_is_exact(lambda path: tiny_cfg(path, shapes_dir, damsm_dir), tmp_path, buckets,
                           (("nets", ("G", "D0", "D1")),))


def test_debug_trains_on_the_authors_debug_subset(tmp_path, shapes_dir, damsm_dir, capsys):
    """DEBUG: true, as the authors' main.py: the first DEBUG_NUM_DATAPOINTS images, or with buckets the
    first tenth of that of each object count."""
    debug = ["--set", "DEBUG=true", "--set", "DEBUG_NUM_DATAPOINTS=20", "--set", "TRAIN.MAX_STEPS=1"]
    assert main(["train", str(tiny_cfg(tmp_path / "plain", shapes_dir, damsm_dir)), "--device", "cpu", *debug]) == 0
    assert "opgan: 20 training images" in capsys.readouterr().out
    counts = LayoutDataset(shapes_dir, "train", max_objects=3, classes=37, image_sizes=[32], words_num=24,
                           captions_per_image=10, augment=False, flip=False).batch_groups()
    buckets = ["--set", "TRAIN.OPTIMIZE_DATA_LOADING=true", "--set", "TRAIN.BATCH_SIZE=[2]"]
    assert main(["train", str(tiny_cfg(tmp_path / "buckets", shapes_dir, damsm_dir)), "--device", "cpu", *debug,
                 *buckets]) == 0
    assert f"opgan: {2 * len(set(counts.tolist()))} training images" in capsys.readouterr().out  # 2 of each count
