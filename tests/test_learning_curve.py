"""scripts/learning_curve.py: a curve of `ganstack eval` metrics over training time (CSV + PNG),
continued by a second invocation, exact against a straight run, redrawn from its CSV, compared with
another, for a text-to-image variant (GAN-INT-CLS, with R-precision) and pix2pix (FCN-score); bad input
is one line."""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import ROOT, write_random_damsm
from ganstack.cli import main as ganstack_main
from ganstack.data.synthetic.shapes import prepare_shapes
from ganstack.engine.checkpoint import load_checkpoint

sys.path.insert(0, str(ROOT / "scripts"))
import learning_curve  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def quick_judges(monkeypatch, tmp_path):
    """The shapes judge and segmenter train one step only (cached under ./models/judges in tmp_path)."""
    import ganstack.metrics.shapes_judge as judge
    import ganstack.metrics.shapes_segmenter as segmenter
    monkeypatch.chdir(tmp_path)
    for module, name in ((judge, "load_or_train_judge"), (segmenter, "load_or_train_segmenter")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _f=original, **k: _f(*a, **{**k, "max_steps": 1}))


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory) -> Path:
    return prepare_shapes(tmp_path_factory.mktemp("shapes"), num_train=40, num_test=20, size=32, seed=0)


@pytest.fixture(scope="module")
def damsm_dir(shapes_dir, tmp_path_factory) -> Path:
    """Randomly initialised DAMSM encoders saved as the DAMSM job writes them (R-precision needs the image one)."""
    return write_random_damsm(shapes_dir, tmp_path_factory.mktemp("damsm"))


def text_cfg(tmp_path: Path, data_dir: Path, damsm_dir: Path) -> Path:
    """A tiny GAN-INT-CLS on the DAMSM text encoder (R-precision: the image encoder sits beside it)."""
    lines = [
        f"_BASE_: {ROOT / 'cfg/gan_int_cls/_base.yml'}",
        "DATASET_NAME: shapes",
        f"DATA_DIR: {data_dir}",
        f"OUTPUT_DIR: {tmp_path / 'output'}",
        "RUN_NAME: tiny",
        "WORKERS: 0",
        "TREE: {BASE_SIZE: 32}",
        f"TRAIN: {{BATCH_SIZE: 8, MAX_STEPS: 100, SNAPSHOT_INTERVAL: 100, LOG_INTERVAL: 10, IMAGE_INTERVAL: 100, "
        f"FLIP: false, NET_E: '{damsm_dir / 'text_encoder.pth'}'}}",
        "GAN: {GF_DIM: 8, DF_DIM: 8, CONDITION_DIM: 16}",
        "TEXT: {CAPTIONS_PER_IMAGE: 10, WORDS_NUM: 24, EMBEDDING_DIM: 32}",
        f"EVAL: {{BATCH_SIZE: 50, R_PRECISION_CANDIDATES: 4, R_PRECISION_RUNS: 2, KID_SUBSETS: 4, IS_SPLITS: 2, "
        f"STATS_DIR: {tmp_path / 'stats'}}}",
    ]
    path = tmp_path / "tiny.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


def assert_same(a, b, where: str = "") -> None:
    if isinstance(b, dict):
        assert set(a) == set(b), where
        for key in b:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif torch.is_tensor(b):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def assert_small_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size < 100_000
    with Image.open(path) as image:
        assert image.size == (900, 500)


def test_minute_budgets_count_cpu_minutes_by_default(tmp_path, shapes_dir, damsm_dir):
    cfg = text_cfg(tmp_path, shapes_dir, damsm_dir)
    cfg.write_text(cfg.read_text().replace("MAX_STEPS: 100,", "MAX_STEPS: 100000,"))  # the budget, not the steps, ends it
    run = tmp_path / "output/tiny_curve"
    args = [str(cfg), "--eval-images", "40", "--device", "cpu"]
    # 2.4 CPU seconds in pauses of 0.6: room for a slow first step on a loaded machine
    assert learning_curve.main([*args, "--minutes", "0.04", "--every", "0.01"]) == 0
    _, rows = read_csv(run / "learning_curve.csv")
    cpu = [float(r["cpu_minutes"]) for r in rows]
    assert len(rows) >= 3 and cpu[0] == 0 and cpu[-1] >= 0.04 and cpu[-2] < 0.04  # stops once the budget is spent
    assert '"clock": "cpu"' in (run / "learning_curve.json").read_text()
    assert learning_curve.main([*args, "--minutes", "1", "--clock", "wall"]) == 2  # one curve, one clock


def test_text_to_image_curve_continues_exactly_and_redraws(tmp_path, shapes_dir, damsm_dir, capsys):
    cfg = text_cfg(tmp_path, shapes_dir, damsm_dir)
    run = tmp_path / "output/tiny_curve"
    args = [str(cfg), "--eval-images", "40", "--every-steps", "1", "--device", "cpu"]
    assert learning_curve.main([*args, "--max-steps", "2"]) == 0
    columns, rows = read_csv(run / "learning_curve.csv")
    assert columns == learning_curve.COLUMNS["text"]
    assert [int(r["step"]) for r in rows] == [0, 1, 2]
    assert [int(r["images_seen"]) for r in rows] == [0, 8, 16] and rows[2]["epochs"] == "0.4"
    minutes = [float(r["train_minutes"]) for r in rows]
    assert minutes[0] == 0 and minutes[0] < minutes[1] < minutes[2] and float(rows[2]["cpu_minutes"]) > 0
    for row in rows:
        assert row["eval_images"] == "40" and float(row["eval_minutes"]) > 0
        for key in ("colour_accuracy", "shape_accuracy", "exact_match", "object_recall", "class_recall",
                    "r_precision", "colour_accuracy_real", "shape_accuracy_real", "r_precision_real"):
            assert 0 <= float(row[key]) <= 1, key
        assert float(row["judge_fid"]) >= 0 and row["inception_fid"] == ""  # no EVAL.INCEPTION_WEIGHTS
    meta = (run / "learning_curve.json").read_text()
    assert '"eval_images": 40' in meta and '"r_precision_real"' in meta
    assert_small_png(run / "learning_curve.png")

    # a checkpoint written after the last row (a run stopped mid-chunk) is set aside, not resumed
    shutil.copy(run / "checkpoints/checkpoint_00000002.pth", run / "checkpoints/checkpoint_00000005.pth")
    assert learning_curve.main([*args, "--max-steps", "3"]) == 0  # continues: appends
    _, more = read_csv(run / "learning_curve.csv")
    assert more[:3] == rows and [int(r["step"]) for r in more] == [0, 1, 2, 3]
    assert float(more[3]["train_minutes"]) > minutes[2]
    assert (run / "checkpoints/ahead_of_curve/checkpoint_00000005.pth").is_file()
    assert [p.name for p in (run / "checkpoints/curve_point").iterdir()] == ["checkpoint_00000003.pth"]

    # the last row's checkpoint rotated away (more periodic checkpoints than TRAIN.KEEP_CHECKPOINTS in a
    # stopped chunk): the curve's own name for it continues the run
    (run / "checkpoints/checkpoint_00000003.pth").unlink()
    assert learning_curve.main([*args, "--max-steps", "4"]) == 0
    _, more = read_csv(run / "learning_curve.csv")
    assert [int(r["step"]) for r in more] == [0, 1, 2, 3, 4]
    assert [p.name for p in (run / "checkpoints/curve_point").iterdir()] == ["checkpoint_00000004.pth"]

    # the chunks, their evaluations and the second process train exactly what one straight run trains
    assert ganstack_main(["train", str(cfg), "--device", "cpu", "--set", "TRAIN.MAX_STEPS=4"]) == 0
    curve, straight = (load_checkpoint(p / "checkpoints/checkpoint_00000004.pth") for p in (run, tmp_path / "output/tiny"))
    assert_same(curve["nets"], straight["nets"])
    assert_same(curve["ema"], straight["ema"])

    # the budget reached: nothing trains; --plot-only and --compare redraw from CSVs
    capsys.readouterr()
    assert learning_curve.main([*args, "--max-steps", "4"]) == 0
    assert "already reaches the budget" in capsys.readouterr().out
    (run / "learning_curve.png").unlink()
    assert learning_curve.main(["--plot-only", str(run / "learning_curve.csv")]) == 0
    assert_small_png(run / "learning_curve.png")
    other = tmp_path / "other.csv"
    shutil.copy(run / "learning_curve.csv", other)
    assert learning_curve.main(["--compare", str(run / "learning_curve.csv"), str(other), "--labels", "paper",
                                "reference", "--out", str(tmp_path / "both.png")]) == 0
    assert_small_png(tmp_path / "both.png")
    # --offsets shifts each curve (e.g. by its text encoder's minutes); a count that does not fit is one line
    assert learning_curve.main(["--compare", str(run / "learning_curve.csv"), str(other), "--offsets", "0", "6.5",
                                "--out", str(tmp_path / "shifted.png")]) == 0
    assert_small_png(tmp_path / "shifted.png")
    capsys.readouterr()
    assert learning_curve.main(["--compare", str(other), "--offsets", "1", "2"]) == 2
    assert "--offsets: give one number of minutes >= 0 per CSV (1)" in capsys.readouterr().err


def test_pix2pix_curve_has_fcn_scores_beside_the_real_photos(tmp_path):
    data, scenes = tmp_path / "shapes_aligned", tmp_path / "shapes"
    assert ganstack_main(["prepare", "shapes", "--aligned", "--num-train", "16", "--num-test", "6", "--size", "32",
                          "--source", str(scenes), "--out", str(data)]) == 0
    lines = [
        f"_BASE_: {ROOT / 'cfg/pix2pix/_base.yml'}",
        "DATASET_NAME: shapes_aligned",
        f"DATA_DIR: {data}",
        f"OUTPUT_DIR: {tmp_path / 'output'}",
        "RUN_NAME: tiny",
        "WORKERS: 0",
        "TRAIN: {BATCH_SIZE: 2, MAX_STEPS: 50, SNAPSHOT_INTERVAL: 100, LOG_INTERVAL: 10, IMAGE_INTERVAL: 100}",
        "DATA: {PREPROCESS: none, CROP_SIZE: 32}",
        "PIX2PIX: {NGF: 8, NDF: 8, N_LAYERS_D: 2}",
        f"EVAL: {{BATCH_SIZE: 6, KID_SUBSET_SIZE: 3, KID_SUBSETS: 2, STATS_DIR: {tmp_path / 'stats'}}}",
    ]
    cfg = tmp_path / "tiny.yml"
    cfg.write_text("\n".join(lines) + "\n")
    assert learning_curve.main([str(cfg), "--max-steps", "1", "--device", "cpu",
                                "--set", "PIX2PIX.NGF=8", "--out", str(tmp_path / "curve")]) == 0
    columns, rows = read_csv(tmp_path / "curve/learning_curve.csv")
    assert columns == learning_curve.COLUMNS["pairs"] and [int(r["step"]) for r in rows] == [0, 1]
    for row in rows:
        assert row["eval_images"] == "6" and float(row["l1"]) > 0
        for key in ("fcn_pixel_accuracy", "fcn_class_accuracy", "fcn_class_iou", "fcn_pixel_accuracy_real",
                    "fcn_class_accuracy_real", "fcn_class_iou_real"):
            assert 0 <= float(row[key]) <= 1, key
    assert list((tmp_path / "output").iterdir())[0].name.startswith("tiny_curve_")  # named by the overrides
    assert_small_png(tmp_path / "curve/learning_curve.png")


@pytest.mark.parametrize("args, message", [
    (["--minutes", "0"], "--minutes must be > 0"),
    (["--max-steps", "3", "--every-steps", "-1"], "--every-steps must be > 0"),
    (["--minutes", "1", "--set", "TRAIN.BATCHSIZE=4"], "did you mean TRAIN.BATCH_SIZE"),
    ([], "no budget"),
    (["--minutes", "one"], "invalid float value"),
    (["--minutes", "1", "--cfg-is-missing"], "missing.yml: config file not found"),
])
def test_bad_input_is_one_line(tmp_path, shapes_dir, damsm_dir, capsys, args, message):
    cfg = text_cfg(tmp_path, shapes_dir, damsm_dir)
    if "--cfg-is-missing" in args:
        cfg, args = tmp_path / "missing.yml", args[:-1]
    assert learning_curve.main([str(cfg), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("learning_curve: error:") and message in err


def test_script_error_is_one_line_without_traceback():
    done = subprocess.run([sys.executable, str(ROOT / "scripts/learning_curve.py"), str(ROOT / "cfg/attngan/shapes.yml"),
                           "--minutes", "1", "--set", "TRAIN.NOPE=1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
    assert "unknown key TRAIN.NOPE" in done.stderr and "Traceback" not in done.stderr
