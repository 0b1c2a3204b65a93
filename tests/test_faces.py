"""Face aging: the embedded faces set, the UTKFace / CACD2000 / two-folder readers, and the
aging_cycle variant (Fast-AgingGAN) through the CLI."""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, assert_resume_is_exact, torchrun_train
from ganstack.cli import main
from ganstack.data.faces import read_faces
from ganstack.engine.checkpoint import latest_checkpoint, load_checkpoint


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faces") / "faces"
    assert main(["prepare", "faces", "--out", str(out), "--num-train", "6", "--num-test", "3", "--size", "32"]) == 0
    return out


def test_prepare_faces_is_byte_identical_splits_by_identity_and_names_like_utkface(faces_dir, tmp_path, capsys):
    again = tmp_path / "again"
    assert main(["prepare", "faces", "--out", str(again), "--num-train", "6", "--num-test", "3", "--size", "32"]) == 0
    assert digest(again) == digest(faces_dir)
    other = tmp_path / "other"
    assert main(["prepare", "faces", "--out", str(other), "--num-train", "6", "--num-test", "3", "--size", "32",
                 "--seed", "1"]) == 0
    assert digest(other) != digest(faces_dir)
    rows = list(csv.DictReader((faces_dir / "identities.csv").open()))
    assert len(rows) == 90 and {r["split"] for r in rows} == {"train", "test"}
    train_ids = {r["identity"] for r in rows if r["split"] == "train"}
    test_ids = {r["identity"] for r in rows if r["split"] == "test"}
    assert len(train_ids) == 6 and len(test_ids) == 3 and not train_ids & test_ids
    for r in rows:
        age, gender, race, date = Path(r["file"]).stem.split("_")
        assert (age, gender, race) == (r["age"], r["gender"], r["race"]) and len(date) == 17
        assert Image.open(faces_dir / r["file"]).size == (32, 32)
    ages = sorted(int(r["age"]) for r in rows if r["identity"] == "0")
    assert ages[0] < 20 and ages[-1] > 75  # each identity spans the ages
    assert main(["prepare", "faces", "--out", str(tmp_path / "bad"), "--size", "30"]) == 2
    assert "multiple of 4" in capsys.readouterr().err


def test_an_identity_keeps_its_face_while_it_ages(faces_dir):
    """Same identity, young and old: closer to each other than to another identity at the same age
    gap, yet the old face differs from the young one (the age cues)."""
    rows = list(csv.DictReader((faces_dir / "identities.csv").open()))
    def image(identity, k):
        r = [r for r in rows if r["identity"] == str(identity)][k]
        return np.asarray(Image.open(faces_dir / r["file"]), dtype=np.float32)[4:28, 4:28]  # the face, not the background
    young, old, other = image(0, 2), image(0, 8), image(1, 8)
    assert np.abs(young - old).mean() > 3.0
    assert np.abs(young - old).mean() < np.abs(young - other).mean()


def write_utkface(root: Path, n: int = 40, size: int = 40) -> Path:
    """A flat UTKFace folder, as the aligned&cropped release names its files, plus two odd names."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(n):
        age = int(rng.choice([20, 24, 27, 60, 70, 80]))
        name = f"{age}_{i % 2}_{i % 5}_2017011617{i:07d}.jpg" + (".chip.jpg" if i % 3 == 0 else "")
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / name, format="JPEG")
    Image.new("RGB", (size, size)).save(root / "notes.jpg")
    Image.new("RGB", (size, size)).save(root / "61_1_20170109150557335.jpg")  # UTKFace's known bad name
    return root


def write_cacd(root: Path, size: int = 40) -> Path:
    """CACD2000's flat folder: age_First_Last_nnnn.jpg, many images per person."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    for person in range(30):
        for k, age in enumerate((19, 23, 28, 56, 60)):
            name = f"{age}_Person_Number{person}_{k + 1:04d}.jpg"
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / name)
    return root


def test_readers_take_ages_from_utkface_and_cacd_names_and_split_by_identity(tmp_path):
    utk = write_utkface(tmp_path / "UTKFace")
    with pytest.warns(UserWarning, match="2 file"):
        train = read_faces(utk, "train")
    with pytest.warns(UserWarning):
        test = read_faces(utk, "test")
    assert len(train) + len(test) == 40 and test and {f.path for f in train}.isdisjoint(f.path for f in test)
    assert all(f.age == int(f.path.name.split("_")[0]) and f.identity is None for f in train)
    cacd = write_cacd(tmp_path / "CACD2000")
    train, test = read_faces(cacd, "train"), read_faces(cacd, "test")
    assert {f.identity for f in train}.isdisjoint(f.identity for f in test) and len(train) + len(test) == 150
    assert read_faces(cacd, "train") == train  # the same split every time


def tiny_cfg(folder: Path, data_dir: Path, aging: str = "", dataset: str = "utkface") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.yml"
    path.write_text("\n".join([
        f"_BASE_: {ROOT / 'cfg/aging_cycle/faces.yml'}", f"DATA_DIR: {data_dir}", f"OUTPUT_DIR: {folder / 'output'}",
        f"DATASET_NAME: {dataset}", "RUN_NAME: tiny", "WORKERS: 0",
        "TRAIN: {BATCH_SIZE: 2, MAX_STEPS: 4, PRECISION: fp32, SNAPSHOT_INTERVAL: 100, LOG_INTERVAL: 1, "
        "IMAGE_INTERVAL: 2}",
        "DATA: {LOAD_SIZE: 36, CROP_SIZE: 32}", f"AGING: {{NGF: 4, NDF: 4, N_BLOCKS: 2{aging}}}"]) + "\n")
    return path


def test_aging_cycle_trains_on_a_utkface_folder_exports_both_generators_and_samples_both_ways(tmp_path, capsys):
    data = write_utkface(tmp_path / "UTKFace")
    cfg = tiny_cfg(tmp_path, data, ", DOMAIN_A: [18, 28], DOMAIN_B: [40, 119]")
    with pytest.warns(UserWarning):
        assert main(["train", str(cfg), "--device", "cpu"]) == 0
    run = tmp_path / "output" / "tiny"
    state = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert set(state["nets"]) == {"G_AB", "G_BA", "D_A", "D_B"} and state["step"] == 4
    logged = capsys.readouterr().out
    assert all(f" {term} " in logged for term in ("D_A", "D_B", "G_adversarial", "G_cycle", "G_identity"))
    for name in ("G_AB", "G_BA"):  # faces.yml's TRAIN.EMA_DECAY: the averaged generators are exported
        weights = torch.load(run / f"{name}.pth", weights_only=True)
        assert all(torch.equal(weights[k], state["ema"][name][k]) for k in weights)
        assert not all(torch.equal(weights[k], state["nets"][name][k]) for k in weights)
    face = next(data.glob("2*_0_*.jpg"))
    outs = {}
    for direction in ("AtoB", "BtoA"):
        assert main(["sample", str(cfg), "--device", "cpu", "--input", str(face), "--n", "1", "--set",
                     f"AGING.SAMPLE_DIRECTION={direction}", "--out", str(tmp_path / direction)]) == 0
        outs[direction] = np.asarray(Image.open(tmp_path / direction / "000_out_00.png"))
    assert outs["AtoB"].shape == (32, 32, 3) and not np.array_equal(outs["AtoB"], outs["BtoA"])
    # --precision bf16 (with NHWC nets): the same faces to within bf16's rounding, not bit for bit
    assert main(["sample", str(cfg), "--device", "cpu", "--input", str(face), "--n", "1", "--precision", "bf16",
                 "--set", "TRAIN.CHANNELS_LAST=true", "--out", str(tmp_path / "bf16")]) == 0
    bf16 = np.asarray(Image.open(tmp_path / "bf16" / "000_out_00.png")).astype(int)
    difference = np.abs(bf16 - outs["AtoB"].astype(int))
    assert 0 < difference.max() and difference.mean() < 4
    assert main(["sample", str(cfg), "--device", "cpu", "--input", str(face), "--ages", "25,70",
                 "--out", str(tmp_path / "strip")]) == 0
    assert sorted(p.name for p in (tmp_path / "strip").glob("*.png")) == [
        "000_age_025.png", "000_age_070.png", "000_input.png"]
    assert main(["sample", str(cfg), "--device", "cpu", "--input", str(face), "--ages", "33"]) == 2
    assert "in neither AGING.DOMAIN_A" in capsys.readouterr().err
    grey = tmp_path / "grey.png"
    Image.open(face).convert("L").save(grey)
    with pytest.warns(UserWarning, match="grey-scale"):
        assert main(["sample", str(cfg), "--device", "cpu", "--input", str(grey), "--n", "1"]) == 0


def test_two_folder_cacd_style_set_trains_and_resume_is_exact(tmp_path):
    rng = np.random.default_rng(2)
    pairs = tmp_path / "aging"
    for folder in ("trainA", "trainB", "testA", "testB"):
        (pairs / folder).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(pairs / folder / f"{i}.jpg")
    assert_resume_is_exact(lambda path: tiny_cfg(path, pairs, dataset="cacd"), tmp_path,
                           ["--set", "TRAIN.EMA_DECAY=0"], [("nets", ["G_AB", "G_BA", "D_A", "D_B"])])
    run = tmp_path / "halves" / "output" / "tiny"  # EMA_DECAY 0 (cacd.yml, as Fast-AgingGAN): G itself
    assert not {k for k in load_checkpoint(latest_checkpoint(run / "checkpoints"))["ema"] if k != "_updates"}
    weights = torch.load(run / "G_AB.pth", weights_only=True)
    assert all(torch.equal(weights[k], load_checkpoint(latest_checkpoint(run / "checkpoints"))["nets"]["G_AB"][k])
               for k in weights)


def test_aging_cycle_trains_under_torchrun_on_the_embedded_faces(tmp_path, faces_dir):
    cfg = tiny_cfg(tmp_path, faces_dir, dataset="faces")
    done = torchrun_train(cfg, tmp_path / "logs", "TRAIN.MAX_STEPS=2")
    assert "finished at step 2" in done.stdout


def test_bad_age_settings_are_one_line(tmp_path, faces_dir, capsys):
    cfg = tiny_cfg(tmp_path, faces_dir, dataset="faces")
    assert main(["train", str(cfg), "--device", "cpu", "--set", "AGING.DOMAIN_A=[30]"]) == 2
    assert "AGING.DOMAIN_A must be [youngest, oldest]" in capsys.readouterr().err
    assert main(["train", str(cfg), "--device", "cpu", "--set", "AGING.DOMAIN_B=[100, 110]"]) == 2
    assert "AGING.DOMAIN_B=[100, 110]: no train face" in capsys.readouterr().err


def test_rotation_turns_training_faces_only_and_leaves_other_draws_alone(tmp_path, faces_dir, capsys):
    """DATA.ROTATION (Fast-AgingGAN's augment_rotation): training faces turn by up to that many degrees,
    corners black; evaluation faces never turn."""
    from ganstack.config import load_config
    from ganstack.data.faces import domain_dataset
    path = tiny_cfg(tmp_path, faces_dir, dataset="faces")
    plain, turned = (load_config(path, [f"DATA.ROTATION={r}"]) for r in (0, 80))
    changed = black = 0
    for seed in range(8):
        a, b = domain_dataset(plain, "train", True)[(0, seed)]["A"], domain_dataset(turned, "train", True)[(0, seed)]["A"]
        changed += not torch.equal(a, b)  # a turn of a degree or so can leave 32 px unchanged
        black += bool((b[:, 0, 0] == -1).all() and (a[:, 0, 0] != -1).any())  # the turned-in corner
    assert changed >= 6 and black >= 4
    for split_item in (0, 1):
        assert torch.equal(domain_dataset(plain, "test", False)[split_item]["A"],
                           domain_dataset(turned, "test", False)[split_item]["A"])
    assert main(["train", str(path), "--device", "cpu", "--set", "DATA.ROTATION=400"]) == 2
    assert "DATA.ROTATION must lie in [0, 360]" in capsys.readouterr().err


def test_eval_scores_aged_faces_with_the_face_judges_beside_real_faces(tmp_path, faces_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the judges' cache: tmp_path/models/judges
    cfg = tiny_cfg(tmp_path, faces_dir, dataset="faces")
    assert main(["train", str(cfg), "--device", "cpu", "--set", "TRAIN.MAX_STEPS=2"]) == 0
    assert main(["eval", str(cfg), "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "output/tiny/eval/checkpoint_00000002.json").read_text())
    assert report["target_ages"] == [55, 120] and report["images"] > 0
    for key in ("target_age_accuracy", "target_age_accuracy_real"):
        assert 0.0 <= report[key] <= 1.0
    identity = report["identity"]
    assert identity["real_pairs"]["same_identity"] > 0 and identity["real_pairs"]["different_identity"] > 0
    assert 0.0 <= identity["verification"] <= 1.0 and -1.0 <= identity["mean_cosine"] <= 1.0
    assert identity["mean_cosine_real_same_identity"] > identity["threshold_at_1pct_false_accepts"] - 1.0
    assert report["judge_fid"] >= 0 and report["judge_fid_real"] >= 0
    assert len(list((tmp_path / "models/judges").glob("faces_*.pt"))) == 1  # trained once, cached
    assert main(["eval", str(cfg), "--device", "cpu", "--out", str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["target_age_accuracy"] == report["target_age_accuracy"]


def conditional_cfg(folder: Path, data_dir: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.yml"
    path.write_text("\n".join([
        f"_BASE_: {ROOT / 'cfg/aging_conditional/faces.yml'}", f"DATA_DIR: {data_dir}",
        f"OUTPUT_DIR: {folder / 'output'}", "RUN_NAME: tiny", "WORKERS: 0",
        "TRAIN: {BATCH_SIZE: 3, MAX_STEPS: 4, PRECISION: fp32, SNAPSHOT_INTERVAL: 100, LOG_INTERVAL: 1, "
        "IMAGE_INTERVAL: 2}",
        "DATA: {LOAD_SIZE: 36, CROP_SIZE: 32}", "AGING: {NGF: 4, NDF: 4, N_BLOCKS: 2}"]) + "\n")
    return path


def test_aging_conditional_trains_resumes_exactly_and_draws_aging_strips(tmp_path, faces_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the age classifier's and judges' cache
    assert_resume_is_exact(lambda path: conditional_cfg(path, faces_dir), tmp_path, [],
                           [("nets", ["G", "D"]), ("ema", ["G"])])
    logged = capsys.readouterr()
    assert all(f" {term} " in logged.out for term in ("D", "G_adversarial", "G_age", "G_identity"))
    assert "age classifier: training" in logged.err and len(list((tmp_path / "models/judges").glob("faces_ageclf_*"))) == 1
    cfg = tmp_path / "halves" / "tiny.yml"
    face = next((faces_dir / "test").glob("*.jpg"))
    assert main(["sample", str(cfg), "--device", "cpu", "--input", str(face), "--ages", "15,35,70",
                 "--out", str(tmp_path / "strip")]) == 0
    files = sorted(p.name for p in (tmp_path / "strip").glob("000_*.png"))
    assert files == ["000_age_015.png", "000_age_035.png", "000_age_070.png", "000_input.png"]
    assert all(Image.open(tmp_path / "strip" / f).size == (32, 32) for f in files)
    assert main(["sample", str(cfg), "--device", "cpu", "--input", str(face), "--ages", "5"]) == 2
    assert "in none of AGING.AGE_GROUPS" in capsys.readouterr().err
    assert main(["eval", str(cfg), "--device", "cpu"]) == 0
    report = json.loads(next((tmp_path / "halves/output/tiny/eval").glob("*.json")).read_text())
    assert report["target_ages"] == [51, 120] and "identity" in report and 0 <= report["target_age_accuracy"] <= 1


def test_aging_conditional_trains_under_torchrun(tmp_path, faces_dir):
    done = torchrun_train(conditional_cfg(tmp_path, faces_dir), tmp_path / "logs", "TRAIN.MAX_STEPS=2")
    assert "finished at step 2" in done.stdout
