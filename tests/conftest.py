"""Small datasets written in the original on-disk formats (nothing is downloaded)."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}
SHAPES = ("square", "bar")


def _scene(rng: np.random.Generator, size: int) -> tuple[Image.Image, str, str]:
    colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
    img = Image.new("RGB", (size, size), (128, 128, 128))
    s = size // 3
    x, y = rng.integers(0, size - s, size=2)
    w = s if shape == "square" else s // 3
    img.paste(COLOURS[colour], (int(x), int(y), int(x) + w, int(y) + s))
    return img, colour, shape


def _captions(rng, colour, shape, n) -> str:
    forms = ["a {c} {s}", "there is a {c} {s}", "one {c} {s} on grey", "the {s} is {c}", "a picture of a {c} {s}"]
    return "\n".join(forms[i % len(forms)].format(c=colour, s=shape) for i in range(n)) + "\n"


def write_coco(root: Path, n_train=24, n_test=8, size=40, seed=0) -> Path:
    """AttnGAN's COCO layout: images/<key>.jpg, text/<key>.txt (5 captions), {split}/filenames.pickle."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "text").mkdir()
    for split, n in (("train", n_train), ("test", n_test)):
        keys = [f"COCO_{split}2014_{i:012d}" for i in range(n)]
        for key in keys:
            img, colour, shape = _scene(rng, size)
            img.save(root / "images" / f"{key}.jpg", quality=95)
            (root / "text" / f"{key}.txt").write_text(_captions(rng, colour, shape, 5))
        (root / split).mkdir()
        with open(root / split / "filenames.pickle", "wb") as f:
            pickle.dump(keys, f, protocol=2)
    return root


def write_random_damsm(data_dir: Path, folder: Path, *, image_encoder: bool = True, captions_per_image: int = 10
                       ) -> Path:
    """Randomly initialised DAMSM encoders over a captioned set's vocabulary, saved as the DAMSM job
    writes them: text_encoder.pth and, with image_encoder, image_encoder.pth (R-precision, the DAMSM
    loss) and config.yml. Returns the folder."""
    import torch
    import yaml
    from ganstack.data.attngan import TextImageDataset
    from ganstack.nets.damsm import SmallImageEncoder, TextEncoder
    vocab = TextImageDataset(data_dir, "train", image_sizes=[32], words_num=24, captions_per_image=captions_per_image,
                             augment=False, flip=False).vocab
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(TextEncoder(len(vocab), ninput=16, nhidden=32).state_dict(), folder / "text_encoder.pth")
    if image_encoder:
        torch.save(SmallImageEncoder(32, ndf=8, image_size=32).state_dict(), folder / "image_encoder.pth")
        (folder / "config.yml").write_text(yaml.safe_dump({"TREE": {"BASE_SIZE": 32, "BRANCH_NUM": 1}}))
    return folder


def py2_pickle_of_strings(items: list[str]) -> bytes:
    """A list of str pickled exactly as Python 2's cPickle (protocol 2, SHORT_BINSTRING)."""
    body = b"".join(b"U" + bytes([len(s)]) + s.encode("latin1") + b"q" + bytes([i + 1])
                    for i, s in enumerate(items))
    return b"\x80\x02]q\x00(" + body + b"e."


def write_cub(root: Path, n_train=12, n_test=6, size=60, seed=1) -> Path:
    """AttnGAN's birds layout, with Python 2 pickles and CUB bounding boxes."""
    rng = np.random.default_rng(seed)
    cub = root / "CUB_200_2011"
    (cub / "images").mkdir(parents=True)
    (root / "text").mkdir()
    lines, boxes, index = [], [], 1
    for split, n in (("train", n_train), ("test", n_test)):
        keys, classes = [], []
        for i in range(n):
            cls = 1 + i % 3
            key = f"{cls:03d}.Bird_{cls}/Bird_{cls}_{split}_{i:04d}"
            (cub / "images" / key.split("/")[0]).mkdir(exist_ok=True)
            (root / "text" / key.split("/")[0]).mkdir(exist_ok=True)
            img, colour, shape = _scene(rng, size)
            img.save(cub / "images" / f"{key}.jpg", quality=95)
            (root / "text" / f"{key}.txt").write_text(_captions(rng, colour, shape, 10))
            lines.append(f"{index} {key}.jpg")
            boxes.append(f"{index} 10.0 12.0 30.0 20.0")
            keys.append(key)
            classes.append(cls)
            index += 1
        (root / split).mkdir()
        (root / split / "filenames.pickle").write_bytes(py2_pickle_of_strings(keys))
        with open(root / split / "class_info.pickle", "wb") as f:
            pickle.dump(classes, f, protocol=2)
    (cub / "images.txt").write_text("\n".join(lines) + "\n")
    (cub / "bounding_boxes.txt").write_text("\n".join(boxes) + "\n")
    return root


@pytest.fixture
def coco_dir(tmp_path) -> Path:
    return write_coco(tmp_path / "coco")


@pytest.fixture
def cub_dir(tmp_path) -> Path:
    return write_cub(tmp_path / "birds")


def tiny_damsm_cfg(tmp_path: Path, data_dir: Path, **extra: str) -> Path:
    """A DAMSM config small enough to train a few steps in seconds."""
    lines = [
        f"_BASE_: {ROOT / 'cfg/damsm/_base.yml'}",
        "DATASET_NAME: coco",
        f"DATA_DIR: {data_dir}",
        f"OUTPUT_DIR: {tmp_path / 'output'}",
        "RUN_NAME: tiny",
        "WORKERS: 0",
        "TREE: {BASE_SIZE: 32}",
        "TRAIN: {BATCH_SIZE: 6, MAX_STEPS: 8, SNAPSHOT_INTERVAL: 100, LOG_INTERVAL: 1, IMAGE_INTERVAL: 4}",
        "TEXT: {CAPTIONS_PER_IMAGE: 5, WORDS_NUM: 8, EMBEDDING_DIM: 32, WORD_EMB_DIM: 16}",
        "DAMSM: {IMAGE_ENCODER: cnn, CNN_DIM: 8}",
        "EVAL: {R_PRECISION_CANDIDATES: 4, R_PRECISION_RUNS: 3}",
    ]
    path = tmp_path / "tiny.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def torchrun_train(cfg: Path, logs: Path, *sets: str) -> subprocess.CompletedProcess:
    """`ganstack train` in two CPU processes under torchrun; fails showing each rank's own streams,
    because the launcher's summary of a crashed rank hides its cause (a crash also dumps every
    thread's Python stack there: PYTHONFAULTHANDLER)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--log-dir", str(logs), "--tee", "3", "-m", "ganstack", "train", str(cfg), "--device", "cpu"]
    for s in sets:
        cmd += ["--set", s]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, "\n".join([done.stderr[-1500:]] + [
        f"--- {f.relative_to(logs)}\n{f.read_text()[-3000:]}" for f in sorted(logs.rglob("*.log"))])
    return done


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    """The fault suite's (tests/faults/) small shapes set, its aligned pairs, one config per family
    and a text encoder: scripts/fault_soak.py's Workspace."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import fault_soak
    return fault_soak.Workspace(tmp_path_factory.mktemp("faults"))


def assert_resume_is_exact(make_cfg, tmp_path: Path, flags: list[str], groups) -> None:
    """4 steps straight and 2 + 2 with a resume give equal weights in every (group, nets) of `groups`;
    make_cfg(folder) writes a config whose run lands in folder/output/tiny."""
    import torch
    from ganstack.cli import main
    from ganstack.engine.checkpoint import latest_checkpoint, load_checkpoint
    straight, halves = make_cfg(tmp_path / "straight"), make_cfg(tmp_path / "halves")
    assert main(["train", str(straight), "--device", "cpu", *flags, "--set", "TRAIN.MAX_STEPS=4"]) == 0
    for steps in (2, 4):
        assert main(["train", str(halves), "--device", "cpu", *flags, "--set", f"TRAIN.MAX_STEPS={steps}"]) == 0
    a, b = (load_checkpoint(latest_checkpoint(p / "output/tiny/checkpoints"))
            for p in (tmp_path / "straight", tmp_path / "halves"))
    for group, names in groups:
        for net in names:
            for key, value in a[group][net].items():
                assert torch.equal(value, b[group][net][key]), f"{group}.{net}.{key} differs"
