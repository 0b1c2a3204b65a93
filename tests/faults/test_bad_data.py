"""Bad data met mid-epoch (truncated and empty images, a caption file that is not UTF-8, NaN in
precomputed embeddings) and SIGTERM during evaluation and sampling, through the CLI."""
from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ganstack.cli import main
from ganstack.engine.checkpoint import latest_checkpoint, load_checkpoint


def copy_of(workspace, name: str, tmp_path: Path) -> Path:
    data = tmp_path / name
    shutil.copytree(workspace.root / name, data)
    return data


def train(workspace, family: str, tmp_path: Path, *sets: str) -> int:
    args = ["train", str(workspace.cfgs[family]), "--device", "cpu", "--set", f"OUTPUT_DIR={tmp_path / 'output'}",
            "--set", "RUN_NAME=bad"]
    for s in sets:
        args += ["--set", s]
    return main(args)


def finite_weights(tmp_path: Path) -> bool:
    nets = load_checkpoint(latest_checkpoint(tmp_path / "output/bad/checkpoints"))["nets"]
    return all(torch.isfinite(v).all() for net in nets.values() for v in net.values() if v.is_floating_point())


def last_step_line(out: str) -> str:
    return [line for line in out.splitlines() if line.startswith("step ")][-1]


def warned(recwarn) -> str:
    return "\n".join(str(w.message) for w in recwarn)


def test_truncated_and_empty_images_are_skipped_and_counted_every_epoch(workspace, tmp_path, capsys, recwarn):
    data = copy_of(workspace, "shapes", tmp_path)
    images = sorted((data / "images").iterdir())
    images[0].write_bytes(images[0].read_bytes()[:200])  # truncated PNG
    images[1].write_bytes(b"")                              # zero bytes
    # 24 images, batch 6: four steps an epoch, so 12 steps meet each damaged file three times
    assert train(workspace, "attngan", tmp_path, f"DATA_DIR={data}") == 0
    out, err = capsys.readouterr()
    assert "skipped_images 6" in last_step_line(out)
    err = warned(recwarn)
    assert images[0].name in err and images[1].name in err and "unreadable image skipped" in err
    assert finite_weights(tmp_path)


def test_a_damaged_pair_is_skipped_and_counted(workspace, tmp_path, capsys, recwarn):
    data = copy_of(workspace, "shapes_aligned", tmp_path)
    first = sorted((data / "train").iterdir())[0]
    first.write_bytes(first.read_bytes()[:100])
    assert train(workspace, "pix2pix", tmp_path, f"DATA_DIR={data}") == 0
    out = capsys.readouterr().out
    assert "skipped_images 3" in last_step_line(out) and first.name in warned(recwarn)
    assert finite_weights(tmp_path)


def test_a_caption_file_that_is_not_utf8_is_named_and_its_other_words_kept(workspace, tmp_path, recwarn):
    data = copy_of(workspace, "shapes", tmp_path)
    (data / "captions.pickle").unlink()  # rebuilt from text/ on first use, as AttnGAN does
    text = sorted((data / "text").iterdir())[0]
    text.write_bytes(text.read_bytes().replace(b"a ", "\u00e0 ".encode("latin-1"), 1))
    assert train(workspace, "damsm", tmp_path, f"DATA_DIR={data}", "TRAIN.MAX_STEPS=2") == 0
    assert [str(w.message).split(" (")[0] for w in recwarn] == [f"{text}: not UTF-8"]


def test_nan_in_precomputed_embeddings_is_skipped_not_trained_on(workspace, tmp_path, capsys, recwarn):
    h5 = tmp_path / "shapes.h5"
    net_e = workspace.root / "output/encoders/text_encoder.pth"
    assert main(["convert", "reed-h5", str(workspace.root / "shapes"), str(h5), "--net-e", str(net_e)]) == 0
    with h5py.File(h5, "r+") as f:
        keys = sorted(f["train"])[::4]  # a quarter of the 240 pairs
        for key in keys:
            emb = f["train"][key]["embeddings"]
            emb[...] = np.full(emb.shape, np.nan, dtype=emb.dtype)
    capsys.readouterr()
    assert train(workspace, "gan_int_cls", tmp_path, f"DATA_DIR={h5}", "TRAIN.NET_E=''") == 0
    out = capsys.readouterr().out
    skipped = int(last_step_line(out).split("skipped_images ")[1].split()[0])
    assert 6 <= skipped <= 30  # of the 72 pairs drawn in 12 steps of 6, about 18
    assert any(f"train/{key}: embedding holds NaN" in warned(recwarn) for key in keys)
    assert finite_weights(tmp_path)


def _sigterm_when(cmd: list[str], ready, cwd: Path) -> subprocess.CompletedProcess:
    """Run `cmd`, SIGTERM it as soon as ready() holds."""
    proc = subprocess.Popen([sys.executable, "-m", "ganstack", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd, env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 120
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_sigterm_during_sampling_leaves_no_gallery_that_looks_complete(workspace, tmp_path):
    cfg = workspace.cfgs["attngan"]
    run = ["--set", f"OUTPUT_DIR={tmp_path / 'output'}", "--set", "RUN_NAME=bad"]
    assert main(["train", str(cfg), "--device", "cpu", *run, "--set", "TRAIN.MAX_STEPS=1"]) == 0
    out = tmp_path / "gallery"
    sample = ["sample", str(cfg), "--device", "cpu", *run, "--from-split", "test", "--count", "8", "--n", "8",
              "--out", str(out)]
    assert main(sample) == 0 and (out / "index.json").is_file()  # a complete gallery first
    (out / "caption_000_00.png").unlink()
    stopped = _sigterm_when(sample, lambda: (out / "caption_000_00.png").is_file(), tmp_path)
    assert stopped.returncode == 143, stopped.stderr
    assert stopped.stderr.strip().endswith("incomplete (a gallery without index.json, no report)")
    assert "Traceback" not in stopped.stderr
    assert not (out / "index.json").exists() and not (out / "index.html").exists()
    assert not list(out.glob(".*.tmp"))


def test_sigterm_during_evaluation_writes_no_report(workspace, tmp_path):
    cfg = workspace.cfgs["attngan"]
    run = ["--set", f"OUTPUT_DIR={tmp_path / 'output'}", "--set", "RUN_NAME=bad"]
    assert main(["train", str(cfg), "--device", "cpu", *run, "--set", "TRAIN.MAX_STEPS=1"]) == 0
    report = tmp_path / "report.json"
    # the shapes judge is trained on first use (under ./models/judges): SIGTERM while it trains
    proc = subprocess.Popen([sys.executable, "-m", "ganstack", "eval", str(cfg), "--device", "cpu", *run,
                             "--out", str(report)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"))
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "judge" in line:
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=120)
    err = "".join(seen) + err
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert err.strip().endswith("incomplete (a gallery without index.json, no report)")
    assert not report.exists() and not out.strip()
    assert not list(tmp_path.rglob(".*.tmp"))


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _images(data: Path) -> list[Path]:
    return sorted(p for p in (data / "images").iterdir())


BROKEN_SETS = {  # name: (family, what breaks it, what the one line says)
    "filenames.pickle garbage": ("attngan", lambda d: _write(d / "train/filenames.pickle", b"garbage"),
                                 "filenames.pickle: not a readable data pickle"),
    "filenames.pickle an int": ("attngan", lambda d: _write(d / "train/filenames.pickle", pickle.dumps(5)),
                                "filenames.pickle: expected a list of image keys"),
    "class_info.pickle a string": ("attngan", lambda d: _write(d / "train/class_info.pickle", pickle.dumps("x")),
                                   "class_info.pickle: expected a list of integer class ids"),
    "class_info.pickle too short": ("attngan", lambda d: _write(d / "train/class_info.pickle", pickle.dumps([1])),
                                    "class_info.pickle: has 1 class ids for 24 images"),
    "captions.pickle garbage": ("damsm", lambda d: _write(d / "captions.pickle", b"\x80\x04garbage"),
                                "captions.pickle: not a readable data pickle"),
    "captions.pickle a dict": ("damsm", lambda d: _write(d / "captions.pickle", pickle.dumps({"a": 1})),
                               "captions.pickle: expected [train_captions, test_captions, ixtoword, wordtoix]"),
    "no captions at all": ("damsm", lambda d: ((d / "captions.pickle").unlink(), shutil.rmtree(d / "text")),
                           "caption file not found"),
    "meta.json broken": ("attngan", lambda d: _write(d / "meta.json", b"{not json"), "meta.json: not valid JSON"),
    "meta.json a list": ("attngan", lambda d: _write(d / "meta.json", b"[1, 2]"), "meta.json: expected a JSON object"),
    "every image empty": ("attngan", lambda d: [_write(p, b"") for p in _images(d)],
                          "not one readable training batch in a whole epoch (24 images skipped"),
    "no images folder": ("gan_int_cls", lambda d: shutil.rmtree(d / "images"), "not one readable training batch"),
    "pairs: no train folder": ("pix2pix", lambda d: shutil.rmtree(d / "train"), "train: folder not found"),
    "pairs: every file broken": ("pix2pix", lambda d: [_write(p, b"xx") for p in (d / "train").iterdir()],
                                 "not one readable training batch"),
    "reed h5 garbage": ("gan_int_cls", None, "not a readable HDF5 file"),
}


@pytest.mark.parametrize("name", list(BROKEN_SETS))
def test_a_broken_dataset_is_one_line_naming_the_file(workspace, tmp_path, capsys, name):
    family, breaks, says = BROKEN_SETS[name]
    if breaks is None:
        data = tmp_path / "shapes.h5"
        data.write_bytes(b"garbage")
    else:
        data = copy_of(workspace, "shapes_aligned" if family == "pix2pix" else "shapes", tmp_path)
        breaks(data)
    sets = [f"DATA_DIR={data}", "TRAIN.MAX_STEPS=8"] + (["TRAIN.NET_E=''"] if breaks is None else [])
    assert train(workspace, family, tmp_path, *sets) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("warning:")]
    assert len(err) == 1 and says in err[0], err


def test_exporting_pairs_over_a_broken_meta_json_is_one_line(workspace, tmp_path, capsys):
    pairs = copy_of(workspace, "shapes_aligned", tmp_path)
    (pairs / "meta.json").write_bytes(b"\xff\xfe")
    assert main(["prepare", "shapes", "--aligned", "--source", str(workspace.root / "shapes"), "--level", "single",
                 "--num-train", "24", "--num-test", "8", "--size", "64", "--out", str(pairs)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{pairs / 'meta.json'}: not valid JSON" in err
