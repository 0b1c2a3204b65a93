"""The shared trainer through the CLI: run folder, logs, exact resume, signals, NaN stop, torchrun."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import tiny_damsm_cfg, torchrun_train
from ganstack.cli import main
from ganstack.engine.checkpoint import (checkpoint_path, latest_checkpoint, list_checkpoints, load_checkpoint,
                                        save_checkpoint)


def run_cli(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ganstack", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def final_nets(run: Path) -> dict:
    return load_checkpoint(latest_checkpoint(run / "checkpoints"))["nets"]


def assert_same_weights(a: dict, b: dict) -> None:
    for net in a:
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), f"{net}.{key} differs"


def scalar_tags(run: Path) -> tuple[set, set, set]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    return set(tags["scalars"]), set(tags["images"]), set(tags["tensors"])


def test_train_writes_run_folder_logs_and_encoders(tmp_path, coco_dir, capsys):
    cfg = tiny_damsm_cfg(tmp_path, coco_dir)
    assert main(["train", str(cfg), "--device", "cpu"]) == 0
    run = tmp_path / "output" / "tiny"
    assert (run / "config.yml").read_text().startswith("VARIANT: damsm")
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["checkpoint_00000008.pth"]
    state = load_checkpoint(run / "checkpoints" / "checkpoint_00000008.pth")
    assert state["step"] == 8 and state["config"]["TRAIN"]["BATCH_SIZE"] == 6
    text_encoder = torch.load(run / "text_encoder.pth", weights_only=True)
    assert "encoder.weight" in text_encoder and "rnn.weight_ih_l0_reverse" in text_encoder
    scalars, images, texts = scalar_tags(run)
    assert {"loss/words", "loss/sentence", "lr/E", "speed/images_per_sec", "speed/data_time_fraction"} <= scalars
    assert "attention/words" in images
    assert any(t.startswith("config") for t in texts) and any(t.startswith("attention/captions") for t in texts)
    out = capsys.readouterr().out
    assert "step 8" in out and "24 training images" in out

    # eval: R-precision of the real test images under the trained encoders, in a JSON report
    assert main(["eval", str(cfg), "--device", "cpu"]) == 0
    report = json.loads((run / "eval" / "checkpoint_00000008.json").read_text())
    rp = report["r_precision"]
    assert report["images"] == 8 and 0.0 <= rp["mean"] <= 1.0 and len(rp["runs"]) == 3
    assert report["val_loss"]["words"] > 0
    # same seed, same report
    assert main(["eval", str(cfg), "--device", "cpu", "--out", str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["r_precision"] == rp


def test_sigterm_then_resume_gives_identical_weights(tmp_path, coco_dir):
    # word-swap negatives on: their draws must resume too
    steps = ["--set", "TRAIN.MAX_STEPS=24", "--set", "WORKERS=1", "--set", "DAMSM.SWAP_NEGATIVES=1"]
    cfg = tiny_damsm_cfg(tmp_path, coco_dir)
    assert main(["train", str(cfg), "--device", "cpu", "--set", "RUN_NAME=straight", *steps]) == 0

    # SIGTERM to the whole process group, data-loader worker included, as Slurm and `docker stop` do
    proc = run_cli("train", str(cfg), "--device", "cpu", "--set", "RUN_NAME=stopped", *steps, start_new_session=True)
    for line in proc.stdout:
        if line.startswith("step 3 "):
            os.killpg(proc.pid, signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    stopped = tmp_path / "output" / "stopped"
    stop_step = load_checkpoint(latest_checkpoint(stopped / "checkpoints"))["step"]
    assert 3 <= stop_step < 24 and "SIGTERM received" in out

    assert main(["train", str(cfg), "--device", "cpu", "--set", "RUN_NAME=stopped", *steps]) == 0
    assert_same_weights(final_nets(tmp_path / "output" / "straight"), final_nets(stopped))


def test_optimizers_use_fused_adam_and_a_for_each_checkpoint_resumes_onto_it(tmp_path, coco_dir):
    cfg = tiny_damsm_cfg(tmp_path, coco_dir)
    steps = ["--set", "TRAIN.MAX_STEPS=4", "--set", "TRAIN.SNAPSHOT_INTERVAL=2"]
    assert main(["train", str(cfg), "--device", "cpu", *steps]) == 0
    folder = tmp_path / "output" / "tiny" / "checkpoints"
    state = load_checkpoint(latest_checkpoint(folder))
    assert all(g["fused"] for g in state["updater"]["optimizers"]["E"]["param_groups"])
    # a checkpoint written before fused Adam (torch's for-each kernels) continues on the fused kernel
    old = load_checkpoint(checkpoint_path(folder, 2))
    for group in old["updater"]["optimizers"]["E"]["param_groups"]:
        group.update(fused=None, foreach=None)
    for path in list_checkpoints(folder):
        path.unlink()
    save_checkpoint(old, folder, 2, keep=3)
    assert main(["train", str(cfg), "--device", "cpu", *steps]) == 0
    state = load_checkpoint(latest_checkpoint(folder))
    assert state["step"] == 4 and all(g["fused"] for g in state["updater"]["optimizers"]["E"]["param_groups"])


def test_kill_9_mid_write_leaves_a_loadable_latest_checkpoint(tmp_path, coco_dir):
    cfg = tiny_damsm_cfg(tmp_path, coco_dir)
    proc = run_cli("train", str(cfg), "--device", "cpu", "--set", "TRAIN.MAX_STEPS=100000",
                   "--set", "TRAIN.SNAPSHOT_INTERVAL=1", "--set", "TRAIN.KEEP_CHECKPOINTS=2")
    folder = tmp_path / "output" / "tiny" / "checkpoints"
    for line in proc.stdout:
        if line.startswith("step 12 "):
            proc.kill()
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    latest = latest_checkpoint(folder)
    assert load_checkpoint(latest)["step"] >= 10 and len(list_checkpoints(folder)) <= 3
    # and the run continues from it
    assert main(["train", str(cfg), "--device", "cpu", "--set", "TRAIN.MAX_STEPS=20"]) == 0
    assert load_checkpoint(latest_checkpoint(folder))["step"] == 20
    assert not list(folder.glob(".*.tmp"))


def test_non_finite_loss_stops_naming_the_loss_and_keeps_the_last_good_checkpoint(tmp_path, coco_dir, capsys):
    cfg = tiny_damsm_cfg(tmp_path, coco_dir)
    code = main(["train", str(cfg), "--device", "cpu", "--set", "TRAIN.ENCODER_LR=1e35",
                 "--set", "TRAIN.SNAPSHOT_INTERVAL=1", "--set", "TRAIN.MAX_STEPS=50"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0, err
    assert "non-finite loss for optimizer E at step" in err and "loss/" in err and "last good checkpoint" in err
    last = latest_checkpoint(tmp_path / "output" / "tiny" / "checkpoints")
    assert last is not None and str(last) in err
    nets = load_checkpoint(last)["nets"]
    assert all(torch.isfinite(v).all() for net in nets.values() for v in net.values() if v.is_floating_point())


def test_deterministic_setting_chooses_the_kernels_and_gives_the_same_weights(tmp_path, coco_dir):
    cfg = tiny_damsm_cfg(tmp_path, coco_dir)
    runs = []
    for name in ("a", "b"):
        assert main(["train", str(cfg), "--device", "cpu", "--set", "TRAIN.MAX_STEPS=2",
                     "--set", f"RUN_NAME={name}", "--set", "TRAIN.DETERMINISTIC=true"]) == 0
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark
        runs.append(final_nets(tmp_path / "output" / name))
    assert_same_weights(*runs)
    assert main(["train", str(cfg), "--device", "cpu", "--set", "TRAIN.MAX_STEPS=2", "--set", "RUN_NAME=c"]) == 0
    assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark


def test_mlflow_logs_params_scalars_images_and_eval_reports_and_a_resume_continues_the_run(tmp_path, coco_dir):
    mlflow = pytest.importorskip("mlflow", reason="TRAIN.LOGGERS mlflow needs mlflow (requirements.txt)")
    cfg = tiny_damsm_cfg(tmp_path, coco_dir)
    sets = ["--set", "TRAIN.LOGGERS=[tensorboard, mlflow]", "--set", "TRAIN.EVAL_INTERVAL=4"]
    assert main(["train", str(cfg), "--device", "cpu", "--set", "TRAIN.MAX_STEPS=4", *sets]) == 0
    run_dir = tmp_path / "output" / "tiny"
    run_id = (run_dir / "mlflow_run_id.txt").read_text().strip()
    assert main(["train", str(cfg), "--device", "cpu", "--set", "TRAIN.MAX_STEPS=8", *sets]) == 0  # resumes
    assert (run_dir / "mlflow_run_id.txt").read_text().strip() == run_id

    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'output' / 'mlflow.db'}")  # the default URI
    run = client.get_run(run_id)
    assert run.info.run_name == "tiny" and run.info.status == "FINISHED"
    assert run.data.params["TRAIN.BATCH_SIZE"] == "6" and run.data.params["VARIANT"] == "damsm"
    words = client.get_metric_history(run_id, "loss/words")
    assert [m.step for m in words] == list(range(1, 9))  # LOG_INTERVAL 1, both halves
    assert {m.step for m in client.get_metric_history(run_id, "eval/r_precision/mean")} == {4, 8}
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"eval", "images", "text"} <= artifacts
    reports = [a.path for a in client.list_artifacts(run_id, "eval")]
    assert reports == ["eval/eval_00000004.json", "eval/eval_00000008.json"]
    local = client.download_artifacts(run_id, reports[-1], str(tmp_path / "dl"))
    assert "r_precision" in json.loads(Path(local).read_text())
    scalars, _, _ = scalar_tags(run_dir)  # TensorBoard still gets the same scalars
    assert "loss/words" in scalars


def test_a_bad_mlflow_uri_or_logger_name_is_one_line(tmp_path, coco_dir, capsys):
    cfg = tiny_damsm_cfg(tmp_path, coco_dir)
    assert main(["train", str(cfg), "--device", "cpu", "--set", "TRAIN.LOGGERS=[wandb]"]) == 2
    assert "TRAIN.LOGGERS names 'wandb'" in capsys.readouterr().err
    pytest.importorskip("mlflow")
    assert main(["train", str(cfg), "--device", "cpu", "--set", "TRAIN.LOGGERS=mlflow",
                 "--set", "MLFLOW.TRACKING_URI=nosuchscheme://x"]) == 2
    err = capsys.readouterr().err
    assert "MLFLOW.TRACKING_URI=nosuchscheme://x: cannot log there" in err and len(err.strip().splitlines()) == 1


def test_max_minutes_stops_training_and_counts_the_time_over_resumes(tmp_path, coco_dir, capsys):
    cfg = tiny_damsm_cfg(tmp_path, coco_dir)
    endless = ["--set", "TRAIN.MAX_STEPS=100000", "--set", "TRAIN.SNAPSHOT_INTERVAL=100000"]
    assert main(["train", str(cfg), "--device", "cpu", *endless, "--set", "TRAIN.MAX_MINUTES=0.02"]) == 0
    assert "TRAIN.MAX_MINUTES=0.02 of training reached" in capsys.readouterr().out
    folder = tmp_path / "output" / "tiny" / "checkpoints"
    first = load_checkpoint(latest_checkpoint(folder))
    assert 0 < first["step"] < 100000 and first["train_seconds"] >= 1.2
    # the same command again: the budget is spent, so not one step more
    assert main(["train", str(cfg), "--device", "cpu", *endless, "--set", "TRAIN.MAX_MINUTES=0.02"]) == 0
    assert load_checkpoint(latest_checkpoint(folder))["step"] == first["step"]
    # a larger budget continues the run from where it stopped
    assert main(["train", str(cfg), "--device", "cpu", *endless, "--set", "TRAIN.MAX_MINUTES=0.04"]) == 0
    second = load_checkpoint(latest_checkpoint(folder))
    assert second["step"] > first["step"] and second["train_seconds"] >= 2.4


def test_restart_sets_the_old_run_aside(tmp_path, coco_dir):
    cfg = tiny_damsm_cfg(tmp_path, coco_dir)
    assert main(["train", str(cfg), "--device", "cpu", "--set", "TRAIN.MAX_STEPS=2"]) == 0
    assert main(["train", str(cfg), "--device", "cpu", "--set", "TRAIN.MAX_STEPS=2", "--restart"]) == 0
    runs = sorted(p.name for p in (tmp_path / "output").iterdir())
    assert runs[0] == "tiny" and runs[1].startswith("tiny.") and len(runs) == 2


def test_resume_of_a_missing_or_foreign_checkpoint_is_one_line(tmp_path, coco_dir, capsys):
    cfg = tiny_damsm_cfg(tmp_path, coco_dir)
    assert main(["train", str(cfg), "--device", "cpu", "--resume", str(tmp_path / "nope.pth")]) == 2
    (tmp_path / "junk.pth").write_bytes(b"garbage")
    assert main(["train", str(cfg), "--device", "cpu", "--resume", str(tmp_path / "junk.pth")]) == 2
    assert main(["eval", str(cfg), "--device", "cpu"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3
    assert "nope.pth: checkpoint not found" in lines[0] and "junk.pth: not a loadable checkpoint" in lines[1]
    assert "no checkpoint in" in lines[2]


def test_two_process_torchrun_trains_logs_once_checkpoints_and_resumes(tmp_path, coco_dir):
    cfg = tiny_damsm_cfg(tmp_path, coco_dir)
    sets = ("TRAIN.BATCH_SIZE=4", "TRAIN.SNAPSHOT_INTERVAL=3")
    first = torchrun_train(cfg, tmp_path / "logs_first", *sets, "TRAIN.MAX_STEPS=6")
    run = tmp_path / "output" / "tiny"
    assert first.stdout.count("step 6 ") == 1 and "4 x 2 process(es) = 8" in first.stdout
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["checkpoint_00000003.pth",
                                                                         "checkpoint_00000006.pth"]
    assert len(load_checkpoint(latest_checkpoint(run / "checkpoints"))["rng"]) == 2
    second = torchrun_train(cfg, tmp_path / "logs_second", *sets, "TRAIN.MAX_STEPS=8")
    assert "resumed from" in second.stdout and "step 8 " in second.stdout and "step 2 " not in second.stdout
    assert load_checkpoint(latest_checkpoint(run / "checkpoints"))["step"] == 8
