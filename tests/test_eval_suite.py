"""The evaluation suite through `ganstack eval`: parity with torch-fidelity's own API,
reproducible reports, the reference-statistics cache and its staleness check, and the
errors for a missing weights file and too few samples."""
from __future__ import annotations

import json
import os
from pathlib import Path
from unittest import mock

import pytest
import torch

from ganstack.cli import main
from ganstack.metrics.inception import write_random_weights
from test_gan_int_cls import net_e, sets, shapes_dir, tiny_cfg  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory) -> Path:
    return write_random_weights(tmp_path_factory.mktemp("weights") / "pt_inception-2015-12-05.pth")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shapes_dir, net_e):  # noqa: F811
    """A 3-step GAN-INT-CLS run on the shapes fixture; the judge cache lives in the run folder."""
    root = tmp_path_factory.mktemp("run")
    cwd = os.getcwd()
    os.chdir(root)
    import ganstack.metrics.shapes_judge as judge
    with mock.patch.object(judge, "DEFAULT_EPOCHS", 1):
        cfg = tiny_cfg(root, shapes_dir, net_e)
        assert main(["train", str(cfg), "--device", "cpu"]) == 0
    os.chdir(cwd)
    return root, cfg


def run_eval(root: Path, cfg: Path, *extra: str, out: str = "report.json") -> dict:
    import ganstack.metrics.shapes_judge as judge
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with mock.patch.object(judge, "DEFAULT_EPOCHS", 1):
            code = main(["eval", str(cfg), "--device", "cpu", "--out", out, *extra])
    finally:
        os.chdir(cwd)
    assert code == 0
    return json.loads((root / out).read_text())


SMALL = dict(EVAL__NUM_IMAGES=24, EVAL__IS_SPLITS=2, EVAL__KID_SUBSETS=5, EVAL__KID_SUBSET_SIZE=8)


def test_inception_scores_equal_torch_fidelity_on_the_same_images(trained, inception_weights, shapes_dir):  # noqa: F811
    import torch_fidelity
    root, cfg = trained
    report = run_eval(root, cfg, *sets(EVAL__INCEPTION_WEIGHTS=inception_weights, EVAL__SAVE_IMAGES="true", **SMALL))
    saved = sorted((root / "report").glob("*.png"))
    assert len(saved) == 24 == report["protocol"]["generated_images"]
    # The fixture's images are already 32 px (BASE_SIZE), so the real reference is the JPEG files themselves.
    real_dir = root / "real_test"
    real_dir.mkdir()
    from ganstack.data.pickles import load_pickle
    for k, key in enumerate(load_pickle(shapes_dir / "test" / "filenames.pickle")):
        (real_dir / f"{k:06d}.jpg").write_bytes((shapes_dir / "images" / f"{key}.jpg").read_bytes())
    theirs = torch_fidelity.calculate_metrics(
        input1=str(root / "report"), input2=str(real_dir), cuda=False, isc=True, fid=True, kid=True,
        feature_extractor="inception-v3-compat", feature_extractor_weights_path=str(inception_weights),
        isc_splits=2, kid_subsets=5, kid_subset_size=8, verbose=False, cache=False, save_cpu_ram=True)
    ours = report["inception"]
    assert ours["fid"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)
    assert ours["kid"]["mean"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-6)
    # the spread of a few subsets' MMDs is a small difference of large sums: float64 vs their float32
    assert ours["kid"]["std"] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-3)
    assert ours["is"]["mean"] == pytest.approx(theirs["inception_score_mean"], rel=1e-3)
    assert ours["fid"] > 0 and ours["is"]["mean"] > 1.0


def test_same_seed_gives_the_same_report_and_reuses_the_reference_cache(trained):
    root, cfg = trained
    first = run_eval(root, cfg, *sets(**SMALL), out="a.json")
    second = run_eval(root, cfg, *sets(**SMALL), out="b.json")
    first.pop("reference_cache")
    assert second.pop("reference_cache") == ["hit", "hit"]  # judge features, then their probabilities
    assert first == second
    judge = first["judge"]
    assert set(judge) >= {"is", "is_real", "fid", "kid"} and judge["fid"] >= 0
    acc, real = first["object_accuracy"], first["object_accuracy_real"]
    assert acc["num_images"] == 24 and real["num_images"] == 8
    assert "inception" in first["protocol"]["skipped"]


def test_changed_dataset_makes_the_cached_statistics_stale(trained, shapes_dir, tmp_path):  # noqa: F811
    import shutil
    root, cfg = trained
    data = tmp_path / "shapes_copy"
    shutil.copytree(shapes_dir, data)
    run_eval(root, cfg, *sets(DATA_DIR=data, **SMALL), out="c.json")
    image = next((data / "images").glob("*.jpg"))
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    report = run_eval(root, cfg, *sets(DATA_DIR=data, **SMALL), out="d.json")
    assert report["reference_cache"][0] == "stale"


def test_missing_weights_and_too_few_samples_are_one_line_errors(trained, capsys, tmp_path):
    root, cfg = trained
    cwd = os.getcwd()
    os.chdir(root)
    try:
        code = main(["eval", str(cfg), "--device", "cpu", *sets(EVAL__INCEPTION_WEIGHTS=tmp_path / "nope.pth")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "nope.pth" in err[0] and "download" in err[0]
        code = main(["eval", str(cfg), "--device", "cpu", *sets(**{**SMALL, "EVAL__KID_SUBSET_SIZE": 50})])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "EVAL.KID_SUBSET_SIZE=50" in err[0]
    finally:
        os.chdir(cwd)


def test_fid_from_fewer_images_than_feature_dimensions_warns_why(trained):
    root, cfg = trained
    with pytest.warns(UserWarning, match="covariance is singular"):
        run_eval(root, cfg, *sets(**SMALL), out="e.json")


def test_eval_all_scores_every_checkpoint_into_tensorboard_curves(tmp_path, shapes_dir, net_e, monkeypatch):  # noqa: F811
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    import ganstack.metrics.shapes_judge as judge
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(judge, "DEFAULT_EPOCHS", 1)
    cfg = tiny_cfg(tmp_path, shapes_dir, net_e)
    assert main(["train", str(cfg), "--device", "cpu", *sets(TRAIN__MAX_STEPS=2, TRAIN__SNAPSHOT_INTERVAL=1)]) == 0
    assert main(["eval", str(cfg), "--device", "cpu", "--all", *sets(**SMALL)]) == 0
    reports = sorted((tmp_path / "output/tiny/eval").glob("checkpoint_*.json"))
    assert [json.loads(p.read_text())["step"] for p in reports] == [1, 2]
    acc = EventAccumulator(str(tmp_path / "output/tiny/eval"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("eval/judge/fid")] == [1, 2]
    assert "eval/object_accuracy/colour_accuracy" in acc.Tags()["scalars"]


def test_periodic_evaluation_logs_metrics_without_changing_training(tmp_path, shapes_dir, net_e, monkeypatch):  # noqa: F811
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from ganstack.engine.checkpoint import latest_checkpoint, load_checkpoint
    import ganstack.metrics.shapes_judge as judge
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(judge, "DEFAULT_EPOCHS", 1)
    runs = {}
    for name, interval in (("plain", 0), ("evaluated", 2)):
        cfg = tiny_cfg(tmp_path / name, shapes_dir, net_e)
        assert main(["train", str(cfg), "--device", "cpu", *sets(TRAIN__MAX_STEPS=4, TRAIN__EVAL_INTERVAL=interval,
                                                                   **SMALL)]) == 0
        runs[name] = load_checkpoint(latest_checkpoint(tmp_path / name / "output/tiny/checkpoints"))
    for key, value in runs["plain"]["nets"]["G"].items():
        assert torch.equal(value, runs["evaluated"]["nets"]["G"][key]), key
    acc = EventAccumulator(str(tmp_path / "evaluated/output/tiny"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("eval/judge/fid")] == [2, 4]


def test_r_precision_of_generated_and_real_images_with_the_damsm_encoders(trained, net_e, tmp_path,  # noqa: F811
                                                                          monkeypatch):
    import shutil
    from ganstack.nets.damsm import SmallImageEncoder
    root, cfg = trained
    damsm = tmp_path / "damsm"
    damsm.mkdir()
    shutil.copy(net_e, damsm / "text_encoder.pth")
    torch.manual_seed(0)
    torch.save(SmallImageEncoder(32, ndf=8, image_size=32).state_dict(), damsm / "image_encoder.pth")
    (damsm / "config.yml").write_text("TREE:\n  BASE_SIZE: 32\n")
    report = run_eval(root, cfg, *sets(TRAIN__NET_E=damsm / "text_encoder.pth", EVAL__R_PRECISION_CANDIDATES=4,
                                       **SMALL), out="rp.json")
    for key in ("r_precision", "r_precision_real"):
        assert report[key]["images"] == 24 and 0.0 <= report[key]["mean"] <= 1.0
    assert "r_precision" not in report["protocol"]["skipped"]
    (damsm / "image_encoder.pth").write_bytes(b"garbage")
    monkeypatch.chdir(root)
    code = main(["eval", str(cfg), "--device", "cpu", *sets(TRAIN__NET_E=damsm / "text_encoder.pth", **SMALL)])
    assert code == 2


class _RunsCode:
    """Unpickling this would call os.system: what a hostile statistics file can carry."""
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_statistics_files_are_read_as_plain_tensors_and_a_hostile_one_is_recomputed(trained, capsys):
    root, cfg = trained
    for old in (root / "models/stats").glob("*.pt"):
        old.unlink()  # other tests' data folders have entries here too
    run_eval(root, cfg, *sets(**SMALL), out="s1.json")
    stats = sorted((root / "models/stats").glob("judge_test_*.pt"))
    assert len(stats) == 1
    entry = torch.load(stats[0], weights_only=True)  # tensors only: loads without unpickling code
    assert entry["version"] == 2 and torch.is_tensor(entry["features"]["stats"]["mu"]["__numpy__"])
    torch.save({"fingerprint": "x", "features": {"pool": _RunsCode()}, "version": 2}, stats[0])
    capsys.readouterr()
    report = run_eval(root, cfg, *sets(**SMALL), out="s2.json")
    assert not (root / "PWNED").exists()
    assert report["reference_cache"][0] == "unreadable" and report["judge"]["fid"] >= 0
    err = capsys.readouterr().err
    assert f"{stats[0].name}: unreadable as plain tensors (it holds objects other than tensors); recomputing" in err
    assert torch.load(stats[0], weights_only=True)["fingerprint"] != "x"  # rewritten with good statistics


def test_eval_report_on_stdout_is_json_even_when_the_judge_trains_first(tmp_path, trained, capsys):
    root, cfg = trained
    for cached in (root / "models/judges").glob("*.pt"):
        cached.unlink()  # the judge trains again, and says so
    cwd = os.getcwd()
    os.chdir(root)
    try:
        import ganstack.metrics.shapes_judge as judge
        with mock.patch.object(judge, "DEFAULT_EPOCHS", 1):
            capsys.readouterr()
            assert main(["eval", str(cfg), "--device", "cpu", *sets(**SMALL)]) == 0
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    assert "shapes judge: training on" in err
    assert json.loads(out)["object_accuracy"]["num_images"] == 24
