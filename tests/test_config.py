"""Config: schema defaults, _BASE_, --set, original AttnGAN files, one-line errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ganstack.cli import main
from ganstack.config import load_config
from ganstack.errors import GanstackError

ROOT = Path(__file__).resolve().parents[1]

# AttnGAN's code/cfg/DAMSM/bird.yml, key for key, plus the one line ganstack needs.
ATTNGAN_DAMSM_BIRD = """
VARIANT: damsm
CONFIG_NAME: 'DAMSM'

DATASET_NAME: 'birds'
DATA_DIR: '../data/birds'
GPU_ID: 0
WORKERS: 1


TREE:
    BRANCH_NUM: 1
    BASE_SIZE: 299


TRAIN:
    FLAG: True
    NET_E: ''  # '../DAMSMencoders/bird/text_encoder200.pth'
    BATCH_SIZE: 48
    MAX_EPOCH: 600
    SNAPSHOT_INTERVAL: 50
    ENCODER_LR: 0.002  # 0.0002best; 0.002good; scott: 0.0007 with 0.98decay
    RNN_GRAD_CLIP: 0.25
    SMOOTH:
        GAMMA1: 4.0  # 1,2,5 good 4 best  10&100bad
        GAMMA2: 5.0
        GAMMA3: 10.0  # 10good 1&100bad


TEXT:
    EMBEDDING_DIM: 256
    CAPTIONS_PER_IMAGE: 10
"""


@pytest.mark.parametrize("name", ["shapes", "bird", "coco"])
def test_shipped_configs_load(name):
    cfg = load_config(ROOT / "cfg/damsm" / f"{name}.yml")
    assert cfg.VARIANT == "damsm" and cfg.TRAIN.ENCODER_LR == 0.002
    assert cfg.RUN_NAME == f"damsm_{name}"


def test_original_attngan_file_loads(tmp_path):
    path = tmp_path / "bird.yml"
    path.write_text(ATTNGAN_DAMSM_BIRD)
    cfg = load_config(path)
    assert cfg.TREE.BASE_SIZE == 299 and cfg.TRAIN.SMOOTH.GAMMA1 == 4.0 and cfg.TEXT.WORDS_NUM == 18
    assert isinstance(cfg.TRAIN.ENCODER_LR, float)


def test_base_inheritance_and_overrides(tmp_path):
    (tmp_path / "base.yml").write_text("TRAIN: {BATCH_SIZE: 8, MAX_EPOCH: 3}\nTEXT: {WORDS_NUM: 9}\n")
    (tmp_path / "child.yml").write_text("_BASE_: base.yml\nTRAIN: {MAX_EPOCH: 5}\n")
    cfg = load_config(tmp_path / "child.yml", ["TEXT.WORDS_NUM=11", "TRAIN.GENERATOR_LR=1e-3", "RNN_TYPE=GRU"])
    assert (cfg.TRAIN.BATCH_SIZE, cfg.TRAIN.MAX_EPOCH, cfg.TEXT.WORDS_NUM) == (8, 5, 11)
    assert cfg.TRAIN.GENERATOR_LR == 1e-3 and cfg.RNN_TYPE == "GRU"
    assert cfg.TRAIN.DISCRIMINATOR_LR == 2e-4  # untouched default


@pytest.mark.parametrize("text, overrides, expected", [
    ("TRAIN: {BATCHSIZE: 4}\n", [], r"unknown key TRAIN.BATCHSIZE; did you mean TRAIN.BATCH_SIZE\?"),
    ("TRAIN: {BATCH_SIZE: four}\n", [], r"TRAIN.BATCH_SIZE must be int"),
    ("TRAIN: [1, 2\n", [], r"bad YAML"),
    ("- a\n- b\n", [], r"must be a mapping"),
    ("", ["TRAIN.BACH_SIZE=3"], r"--set TRAIN.BACH_SIZE: unknown key .*did you mean TRAIN.BATCH_SIZE"),
    ("", ["TRAIN.BATCH_SIZE"], r"expected KEY=VALUE"),
    ("VARIANT: damsn\n", [], r"VARIANT='damsn' is not one of .*did you mean damsm"),
    ("TRAIN: {PRECISION: fp8}\n", [], r"TRAIN.PRECISION='fp8' is not one of fp32, bf16, fp16"),
    ("_BASE_: nowhere.yml\n", [], r"nowhere.yml: config file not found"),
    ("TRAIN:\n  BATCH_SIZE: 4\n  MAX_EPOCH: 3\n  BATCH_SIZE: 8\n", [],
     r"line 4: key BATCH_SIZE given twice in one mapping \(first on line 2\)"),
    ("TRAIN: {BATCH_SIZE: 4, BATCH_SIZE: 8}\n", [], r"line 1: key BATCH_SIZE given twice"),
    ("TRAIN: {BATCH_SIZE: 4}\nTRAIN: {MAX_EPOCH: 3}\n", [], r"line 2: key TRAIN given twice"),
])
def test_bad_configs_name_file_and_key(tmp_path, text, overrides, expected):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(GanstackError, match=expected) as err:
        load_config(path, overrides)
    assert "\n" not in str(err.value)
    if not overrides and "nowhere" not in text and "VARIANT" not in text and "PRECISION" not in text:
        assert str(path) in str(err.value)


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    (tmp_path / "bad.yml").write_text("TRAIN: {MAX_EPOHC: 3}\n")
    assert main(["train", str(tmp_path / "bad.yml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "TRAIN.MAX_EPOCH" in err and str(tmp_path / "bad.yml") in err


def test_console_command_missing_file_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ganstack", "train", str(tmp_path / "none.yml")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
    assert "none.yml: config file not found" in result.stderr


def test_a_binary_file_given_as_config_is_one_line(tmp_path, capsys):
    binary = tmp_path / "weights.pth"
    binary.write_bytes(bytes([0x80, 0x02, 0xff, 0x00]) * 64)
    assert main(["train", str(binary)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert str(binary) in err and "not UTF-8 text (byte 0x80 at offset 0)" in err
