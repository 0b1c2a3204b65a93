"""AttnGAN and AttnDCGAN through their public entry points: train (losses of every stage,
TensorBoard grids and attention), sample with attention strips for unseen captions, eval
(R-precision under the paired DAMSM), exact resume, the authors' cfg files, torchrun."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from conftest import ROOT, torchrun_train, write_random_damsm
from ganstack.cli import main
from ganstack.config import load_config
from ganstack.data.attngan import TextImageDataset
from ganstack.data.synthetic.shapes import prepare_shapes
from ganstack.engine.checkpoint import latest_checkpoint, load_checkpoint
from ganstack.engine.evaluate import load_variant
from ganstack.variants import get_variant
from ganstack.variants.attngan import build_networks

from test_gan_int_cls import logged, sets

MANIFEST = json.loads((ROOT / "tests/fixtures/attngan_state_dict_manifest.json").read_text())


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory) -> Path:
    return prepare_shapes(tmp_path_factory.mktemp("shapes"), num_train=24, num_test=8, size=64, seed=0)


@pytest.fixture(scope="module")
def damsm_dir(shapes_dir, tmp_path_factory) -> Path:
    """Randomly initialised DAMSM encoders saved as the DAMSM job exports them (with its config.yml)."""
    return write_random_damsm(shapes_dir, tmp_path_factory.mktemp("damsm"))


def tiny_cfg(tmp_path: Path, data_dir: Path, damsm_dir: Path) -> Path:
    lines = [
        f"_BASE_: {ROOT / 'cfg/attngan/_base.yml'}",
        "DATASET_NAME: shapes",
        f"DATA_DIR: {data_dir}",
        f"OUTPUT_DIR: {tmp_path / 'output'}",
        "RUN_NAME: tiny",
        "WORKERS: 0",
        "TREE: {BRANCH_NUM: 2, BASE_SIZE: 32}",
        f"TRAIN: {{BATCH_SIZE: 6, MAX_STEPS: 3, SNAPSHOT_INTERVAL: 100, LOG_INTERVAL: 1, IMAGE_INTERVAL: 2, "
        f"FLIP: false, NET_E: '{damsm_dir / 'text_encoder.pth'}'}}",
        "GAN: {GF_DIM: 8, DF_DIM: 8, CONDITION_DIM: 16, Z_DIM: 16, R_NUM: 1}",
        "TEXT: {CAPTIONS_PER_IMAGE: 10, WORDS_NUM: 24, EMBEDDING_DIM: 32}",
        "EVAL: {BATCH_SIZE: 16, R_PRECISION_CANDIDATES: 4, R_PRECISION_RUNS: 2}",
    ]
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "tiny.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_attngan_trains_every_stage_with_the_damsm_loss_and_logs_attention(tmp_path, shapes_dir, damsm_dir):
    cfg = tiny_cfg(tmp_path, shapes_dir, damsm_dir)
    assert main(["train", str(cfg), "--device", "cpu"]) == 0
    run = tmp_path / "output" / "tiny"
    scalars = logged(run)
    losses = {k: v for k, v in scalars.items() if k.startswith("loss/")}
    assert set(losses) == {"loss/D0", "loss/D1", "loss/G_D0", "loss/G_D1", "loss/G_damsm_words",
                           "loss/G_damsm_sentence", "loss/G_kl"}
    assert all(math.isfinite(x) for v in losses.values() for x in v) and len(losses["loss/D1"]) == 3
    assert {"samples/stage0", "samples/stage1", "attention/words"} <= set(scalars["_images"])
    state = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert set(state["nets"]) == {"G", "D0", "D1"} and set(state["ema"]) == {"G", "_updates"}


def test_attndcgan_has_one_image_and_one_discriminator(tmp_path, shapes_dir, damsm_dir):
    cfg = tiny_cfg(tmp_path, shapes_dir, damsm_dir)
    assert main(["train", str(cfg), "--device", "cpu", *sets(GAN__B_DCGAN="true", GAN__R_NUM=0)]) == 0
    state = load_checkpoint(latest_checkpoint(tmp_path / "output/tiny/checkpoints"))
    assert set(state["nets"]) == {"G", "D0"}
    assert "img_net.img.0.weight" in state["nets"]["G"] and "img_net1.img.0.weight" not in state["nets"]["G"]
    assert state["nets"]["D0"]["img_code_s16.8.weight"].shape[-1] == 4  # D judges the 64 px image (D_NET64)


def test_a_16_to_32_px_tree_trains_with_a_16_px_discriminator(tmp_path, shapes_dir, damsm_dir):
    # CPU-sized trees start at 16 px: D_NET16 halves twice and keeps a 4x4 code with 3x3 convs
    cfg = tiny_cfg(tmp_path, shapes_dir, damsm_dir)
    assert main(["train", str(cfg), "--device", "cpu", *sets(TREE__BASE_SIZE=16)]) == 0
    nets = load_checkpoint(latest_checkpoint(tmp_path / "output/tiny/checkpoints"))["nets"]
    strided = {name: [w.shape[-1] for k, w in nets[name].items() if k.startswith("img_code_s16") and w.dim() == 4]
               for name in ("D0", "D1")}
    assert strided == {"D0": [4, 4, 3, 3], "D1": [4, 4, 4, 3]}  # 16 -> 4 px and 32 -> 4 px


def test_attention_strip_and_gallery_for_unseen_captions_and_eval_r_precision(tmp_path, shapes_dir, damsm_dir,
                                                                              capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the judge caches under ./models/judges
    import ganstack.metrics.shapes_judge as judge
    monkeypatch.setattr(judge, "DEFAULT_EPOCHS", 1)
    cfg = tiny_cfg(tmp_path, shapes_dir, damsm_dir)
    assert main(["train", str(cfg), "--device", "cpu"]) == 0
    unseen = "a large violet star in the middle and a tiny green circle at the top"
    assert main(["sample", str(cfg), "--device", "cpu", "--caption", unseen, "--n", "2", "--attention",
                 "--interpolate", "a red circle", "a blue square", "--steps", "3"]) == 0
    out = tmp_path / "output/tiny/samples"
    index = json.loads((out / "index.json").read_text())
    row = index["rows"][0]
    assert row["attention"] == "caption_000_attention.png" and "caption_000_attention.png" in (
        out / "index.html").read_text()
    strip = Image.open(out / row["attention"])
    vocab = TextImageDataset(shapes_dir, "train", image_sizes=[32], words_num=24, captions_per_image=10,
                             augment=False, flip=False).vocab
    words = [w for w in unseen.split() if w in vocab.wordtoix]  # the ones the model can see
    assert strip.width == (len(words) + 1) * (96 + 2)  # the stage image, then one map per word
    assert Image.open(out / row["files"][0]).size == (64, 64)
    assert (out / "interpolation.png").is_file()

    capsys.readouterr()
    assert main(["eval", str(cfg), "--device", "cpu", "--set", "EVAL.KID_SUBSET_SIZE=8",
                 "--set", "EVAL.IS_SPLITS=4"]) == 0
    report = json.loads((tmp_path / "output/tiny/eval/checkpoint_00000003.json").read_text())
    assert report["object_accuracy"]["num_images"] == 80  # every test caption once
    assert 0 <= report["r_precision"]["mean"] <= 1 and 0 <= report["r_precision_real"]["mean"] <= 1


def test_stop_and_resume_gives_the_same_networks_and_ema(tmp_path, shapes_dir, damsm_dir):
    straight = tiny_cfg(tmp_path / "straight", shapes_dir, damsm_dir)
    assert main(["train", str(straight), "--device", "cpu", *sets(TRAIN__MAX_STEPS=4)]) == 0
    halves = tiny_cfg(tmp_path / "halves", shapes_dir, damsm_dir)
    assert main(["train", str(halves), "--device", "cpu", *sets(TRAIN__MAX_STEPS=2)]) == 0
    assert main(["train", str(halves), "--device", "cpu", *sets(TRAIN__MAX_STEPS=4)]) == 0  # auto-resumes
    a, b = (load_checkpoint(latest_checkpoint(p / "output/tiny/checkpoints"))
            for p in (tmp_path / "straight", tmp_path / "halves"))
    assert a["step"] == b["step"] == 4
    for group, nets in (("nets", ("G", "D0", "D1")), ("ema", ("G",))):
        for net in nets:
            for key, value in a[group][net].items():
                assert torch.equal(value, b[group][net][key]), f"{group}.{net}.{key} differs"


def test_sampling_takes_the_averaged_generator_unless_ema_decay_is_zero(tmp_path, shapes_dir, damsm_dir):
    cfg = tiny_cfg(tmp_path, shapes_dir, damsm_dir)
    assert main(["train", str(cfg), "--device", "cpu"]) == 0
    path = latest_checkpoint(tmp_path / "output/tiny/checkpoints")
    state = load_checkpoint(path)
    for decay, group in (("0.999", "ema"), ("0", "nets")):  # 0: G as trained, as `--set TRAIN.EMA_DECAY=0` says
        variant, _, _ = load_variant(load_config(cfg, [f"TRAIN.EMA_DECAY={decay}"]), path, device="cpu")
        loaded = variant.nets["G"].state_dict()
        assert all(torch.equal(loaded[k], state[group]["G"][k]) for k in loaded), f"EMA_DECAY {decay}"
    assert any(not torch.equal(state["ema"]["G"][k], state["nets"]["G"][k]) for k in state["nets"]["G"])


def test_diff_augment_reaches_every_discriminator(tmp_path, shapes_dir, damsm_dir):
    """GAN.DIFF_AUGMENT (shared with GAN-INT-CLS) changes what each stage's D learns from one step."""
    runs = {}
    for policy in ("", "cutout"):
        cfg = tiny_cfg(tmp_path / (policy or "plain"), shapes_dir, damsm_dir)
        assert main(["train", str(cfg), "--device", "cpu", *sets(TRAIN__MAX_STEPS=1, GAN__DIFF_AUGMENT=policy)]) == 0
        runs[policy] = load_checkpoint(latest_checkpoint(cfg.parent / "output/tiny/checkpoints"))["nets"]
    for name in ("D0", "D1"):
        first = next(k for k in runs[""][name] if k.endswith("weight"))
        assert not torch.equal(runs[""][name][first], runs["cutout"][name][first]), name


@pytest.mark.parametrize("args, message", [
    (["--set", "TREE.BASE_SIZE=48"], "TREE.BASE_SIZE=48"),
    (["--set", "TEXT.EMBEDDING_DIM=64"], "TEXT.EMBEDDING_DIM"),
    (["--set", "TRAIN.NET_E="], "TRAIN.NET_E is empty"),
])
def test_bad_attngan_settings_are_one_line_errors(tmp_path, shapes_dir, damsm_dir, capsys, args, message):
    cfg = tiny_cfg(tmp_path, shapes_dir, damsm_dir)
    assert main(["train", str(cfg), "--device", "cpu", *args]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_missing_paired_image_encoder_is_a_one_line_error(tmp_path, shapes_dir, damsm_dir, capsys):
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "text_encoder.pth").write_bytes((damsm_dir / "text_encoder.pth").read_bytes())
    cfg = tiny_cfg(tmp_path, shapes_dir, damsm_dir)
    assert main(["train", str(cfg), "--device", "cpu", "--set", f"TRAIN.NET_E={lonely / 'text_encoder.pth'}"]) != 0
    err = capsys.readouterr().err.strip()
    assert "no image_encoder.pth beside it" in err and len(err.splitlines()) == 1


# The authors' cfg files (taoxugit/AttnGAN code/cfg/), key for key, with a VARIANT line added.
ORIGINAL_CFGS = {
    "bird_attn2": """CONFIG_NAME: 'attn2'
DATASET_NAME: 'birds'
DATA_DIR: '../data/birds'
GPU_ID: 0
WORKERS: 4
TREE:
    BRANCH_NUM: 3
TRAIN:
    FLAG: True
    NET_G: ''
    B_NET_D: True
    BATCH_SIZE: 20
    MAX_EPOCH: 600
    SNAPSHOT_INTERVAL: 50
    DISCRIMINATOR_LR: 0.0002
    GENERATOR_LR: 0.0002
    NET_E: '../DAMSMencoders/bird/text_encoder200.pth'
    SMOOTH:
        GAMMA1: 4.0
        GAMMA2: 5.0
        GAMMA3: 10.0
        LAMBDA: 5.0
GAN:
    DF_DIM: 64
    GF_DIM: 32
    Z_DIM: 100
    R_NUM: 2
TEXT:
    EMBEDDING_DIM: 256
    CAPTIONS_PER_IMAGE: 10
""",
    "coco_attn2": """CONFIG_NAME: 'attn2'
DATASET_NAME: 'coco'
DATA_DIR: '../data/coco'
GPU_ID: 0
WORKERS: 4
TREE:
    BRANCH_NUM: 3
TRAIN:
    FLAG: True
    NET_G: ''
    B_NET_D: True
    BATCH_SIZE: 14
    MAX_EPOCH: 120
    SNAPSHOT_INTERVAL: 5
    DISCRIMINATOR_LR: 0.0002
    GENERATOR_LR: 0.0002
    NET_E: '../DAMSMencoders/coco/text_encoder100.pth'
    SMOOTH:
        GAMMA1: 4.0
        GAMMA2: 5.0
        GAMMA3: 10.0
        LAMBDA: 50.0
GAN:
    DF_DIM: 96
    GF_DIM: 48
    Z_DIM: 100
    R_NUM: 3
TEXT:
    EMBEDDING_DIM: 256
    CAPTIONS_PER_IMAGE: 5
    WORDS_NUM: 12
""",
    "bird_attnDCGAN2": """CONFIG_NAME: 'attn2-dcgan'
DATASET_NAME: 'birds'
DATA_DIR: '../data/birds'
GPU_ID: 0
WORKERS: 4
TREE:
    BRANCH_NUM: 3
TRAIN:
    FLAG: True
    NET_G: ''
    B_NET_D: True
    BATCH_SIZE: 30
    MAX_EPOCH: 400
    SNAPSHOT_INTERVAL: 50
    DISCRIMINATOR_LR: 0.0002
    GENERATOR_LR: 0.0002
    NET_E: '../DAMSMencoders/bird/text_encoder200.pth'
    SMOOTH:
        GAMMA1: 4.0
        GAMMA2: 5.0
        GAMMA3: 10.0
        LAMBDA: 1.0
GAN:
    DF_DIM: 64
    GF_DIM: 32
    Z_DIM: 100
    R_NUM: 0
    B_DCGAN: True
TEXT:
    EMBEDDING_DIM: 256
    CAPTIONS_PER_IMAGE: 10
""",
    "eval_bird": """CONFIG_NAME: 'attn2'
DATASET_NAME: 'birds'
DATA_DIR: '../data/birds'
GPU_ID: 3
WORKERS: 1
B_VALIDATION: False
TREE:
    BRANCH_NUM: 3
TRAIN:
    FLAG: False
    NET_G: '../models/bird_AttnGAN2.pth'
    B_NET_D: False
    BATCH_SIZE: 100
    NET_E: '../DAMSMencoders/bird/text_encoder200.pth'
GAN:
    DF_DIM: 64
    GF_DIM: 32
    Z_DIM: 100
    R_NUM: 2
TEXT:
    EMBEDDING_DIM: 256
    CAPTIONS_PER_IMAGE: 10
    WORDS_NUM: 25
""",
}


@pytest.mark.parametrize("name", sorted(ORIGINAL_CFGS))
def test_original_cfg_files_load_and_describe_the_published_networks(tmp_path, name):
    path = tmp_path / f"{name}.yml"
    path.write_text("VARIANT: attngan\n" + ORIGINAL_CFGS[name])
    # shapes only: PyTorch's init spares the seconds the orthogonal init takes at these widths
    cfg = load_config(path, ["GAN.INIT=pytorch"])
    assert cfg.VARIANT == "attngan" and cfg.TREE.BASE_SIZE == 64 and cfg.TREE.BRANCH_NUM == 3
    reference = MANIFEST[{"eval_bird": "bird_attn2"}.get(name, name)]  # the same network
    nets = build_networks(cfg, cfg.TEXT.EMBEDDING_DIM)
    assert {k: list(v.shape) for k, v in nets["G"].state_dict().items()} == reference["nets"]["netG"]
    for i, d in enumerate(n for k, n in nets.items() if k.startswith("D")):
        key = "netD" if cfg.GAN.B_DCGAN else f"netD{i}"
        assert {k: list(v.shape) for k, v in d.state_dict().items()} == reference["nets"][key], key


def test_two_process_torchrun_trains_attngan(tmp_path, shapes_dir, damsm_dir):
    cfg = tiny_cfg(tmp_path, shapes_dir, damsm_dir)
    done = torchrun_train(cfg, tmp_path / "torchrun_logs", "TRAIN.BATCH_SIZE=4", "TRAIN.MAX_STEPS=2")
    assert "4 x 2 process(es) = 8" in done.stdout and done.stdout.count("step 2 ") == 1
    state = load_checkpoint(latest_checkpoint(tmp_path / "output/tiny/checkpoints"))
    assert state["step"] == 2 and len(state["rng"]) == 2


def _orthonormal(weight: torch.Tensor) -> bool:
    """W reshaped to (out, -1) has orthonormal rows (W W^T = I) or, when taller than wide, columns."""
    w = weight.detach().reshape(weight.shape[0], -1).double()
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    return torch.allclose(gram, torch.eye(gram.shape[0], dtype=gram.dtype), atol=1e-4)


def test_nets_start_from_the_authors_init_and_gan_init_pytorch_keeps_the_defaults(tmp_path, shapes_dir, damsm_dir):
    """GAN.INIT: authors (default) is miscc/utils.py weights_init on G and every D: orthogonal
    conv and linear weights (gain 1), BatchNorm weights N(1, 0.02) and biases 0; the frozen DAMSM
    encoders keep the weights of their files. GAN.INIT=pytorch leaves PyTorch's layer defaults."""
    cfg = load_config(tiny_cfg(tmp_path, shapes_dir, damsm_dir))
    assert cfg.GAN.INIT == "authors"
    torch.manual_seed(0)
    variant = get_variant("attngan")(cfg, torch.device("cpu"))
    variant.build(variant.dataset("train", train=False))
    assert set(variant.nets) == {"G", "D0", "D1"}
    counts = {"weights": 0, "norms": 0}
    for name, net in variant.nets.items():
        for layer_name, m in net.named_modules():
            where = f"{name}.{layer_name}"
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                assert _orthonormal(m.weight), f"{where}: weight not orthogonal"
                if isinstance(m, nn.Linear) and m.bias is not None:
                    assert not m.bias.any(), f"{where}: linear bias not 0"
                counts["weights"] += 1
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                assert (m.weight - 1).abs().max() < 0.1 and m.weight.std() > 0, f"{where}: BN weight not N(1, 0.02)"
                assert not m.bias.any(), f"{where}: BN bias not 0"
                counts["norms"] += 1
    assert counts["weights"] > 20 and counts["norms"] > 10  # every G and D layer kind was seen
    text_file = torch.load(damsm_dir / "text_encoder.pth")
    text_now = variant.embedder.encoder.state_dict()
    assert all(torch.equal(v, text_now[k]) for k, v in text_file.items())
    image_file, image_now = torch.load(damsm_dir / "image_encoder.pth"), variant.image_encoder.state_dict()
    assert all(torch.equal(v, image_now[k]) for k, v in image_file.items())

    plain = build_networks(load_config(tiny_cfg(tmp_path, shapes_dir, damsm_dir), ["GAN.INIT=pytorch"]),
                           cfg.TEXT.EMBEDDING_DIM)
    for net in plain.values():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):  # kaiming_uniform(a=sqrt(5)): |w| <= 1/sqrt(fan_in)
                fan_in = m.weight[0].numel()
                assert m.weight.abs().max() <= fan_in ** -0.5 + 1e-6
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                assert torch.all(m.weight == 1) and not m.bias.any()
    some_conv = plain["G"].img_net2.img[0].weight
    assert not _orthonormal(some_conv)


def test_spectral_norm_discriminators_and_r1_train_and_resume_exactly(tmp_path, shapes_dir, damsm_dir):
    """GAN.D_NORM=spectral: every D conv spectral-normalised with a bias, no batch norm left in
    any D, G untouched; GAN.R1_GAMMA adds a logged R1 term per stage (lazily with R1_INTERVAL);
    with those and GAN.HARD_MISMATCH the run still resumes to the same weights as a straight one."""
    on = ["GAN.D_NORM=spectral", "GAN.R1_GAMMA=1", "GAN.R1_INTERVAL=2", "GAN.HARD_MISMATCH=0.5", "GAN.HARD_MISMATCH_K=3"]
    nets = build_networks(load_config(tiny_cfg(tmp_path, shapes_dir, damsm_dir), on), 32)
    for name in ("D0", "D1"):
        convs = [m for m in nets[name].modules() if isinstance(m, nn.Conv2d)]
        assert convs and all(nn.utils.parametrize.is_parametrized(m, "weight") and m.bias is not None for m in convs)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in nets[name].modules())
    assert not any(nn.utils.parametrize.is_parametrized(m) for m in nets["G"].modules())

    straight = tiny_cfg(tmp_path / "straight", shapes_dir, damsm_dir)
    assert main(["train", str(straight), "--device", "cpu", *[a for s in on for a in ("--set", s)],
                 *sets(TRAIN__MAX_STEPS=4)]) == 0
    scalars = logged(tmp_path / "straight/output/tiny")
    assert len(scalars["loss/D0_r1"]) == 2 and len(scalars["loss/D1_r1"]) == 2  # steps 0 and 2 of 0..3
    assert all(v > 0 for v in scalars["loss/D0_r1"])
    halves = tiny_cfg(tmp_path / "halves", shapes_dir, damsm_dir)
    for steps in (2, 4):
        assert main(["train", str(halves), "--device", "cpu", *[a for s in on for a in ("--set", s)],
                     *sets(TRAIN__MAX_STEPS=steps)]) == 0
    a, b = (load_checkpoint(latest_checkpoint(p / "output/tiny/checkpoints"))
            for p in (tmp_path / "straight", tmp_path / "halves"))
    for net in ("G", "D0", "D1"):
        for key, value in a["nets"][net].items():
            assert torch.equal(value, b["nets"][net][key]), f"{net}.{key} differs"


def test_r1_changes_what_the_discriminator_learns(tmp_path, shapes_dir, damsm_dir):
    runs = {}
    for gamma in (0, 10):
        cfg = tiny_cfg(tmp_path / f"g{gamma}", shapes_dir, damsm_dir)
        assert main(["train", str(cfg), "--device", "cpu", *sets(TRAIN__MAX_STEPS=1, GAN__R1_GAMMA=gamma)]) == 0
        runs[gamma] = load_checkpoint(latest_checkpoint(cfg.parent / "output/tiny/checkpoints"))["nets"]["D0"]
    assert not torch.equal(runs[0]["img_code_s16.0.weight"], runs[10]["img_code_s16.0.weight"])


def test_hard_mismatches_are_the_nearest_other_class_captions_and_change_what_d_learns(tmp_path, shapes_dir,
                                                                                      damsm_dir):
    """GAN.HARD_MISMATCH: the training set hands each image a caption of another class; with
    fraction 1 always one of the K images whose captions the text encoder finds nearest."""
    from ganstack.data.attngan import nearest_other_class
    codes = torch.tensor([[1.0, 0.0], [0.9, 0.1], [1.0, 0.05], [0.0, 1.0], [0.1, 1.0]])
    classes = torch.tensor([0, 0, 1, 1, 2]).numpy()
    assert nearest_other_class(codes, classes, 2).tolist() == [[2, 4], [2, 4], [0, 1], [4, 1], [3, 1]]

    cfg = tiny_cfg(tmp_path, shapes_dir, damsm_dir)
    variant = get_variant("attngan")(load_config(cfg, ["GAN.HARD_MISMATCH=1", "GAN.HARD_MISMATCH_K=2"]), "cpu")
    dataset = variant.dataset("train", train=True)
    variant.build(dataset)
    assert dataset.partners.shape == (len(dataset), 2)
    for index in range(len(dataset)):
        sample = dataset[(index, index)]
        partner_captions = {tuple(dataset.split_captions[p * 10 + s]) for p in dataset.partners[index]
                            for s in range(10)}
        assert tuple(sample["wrong_caption"][:sample["wrong_cap_len"]].tolist()) in partner_captions
        assert all(dataset.class_ids[p] != dataset.class_ids[index] for p in dataset.partners[index])
    assert "wrong_caption" not in variant.dataset("test", train=False)[0]  # evaluation draws no mismatches

    runs = {}
    for fraction in (0, 1):
        run = tiny_cfg(tmp_path / f"h{fraction}", shapes_dir, damsm_dir)
        assert main(["train", str(run), "--device", "cpu", *sets(TRAIN__MAX_STEPS=1, GAN__HARD_MISMATCH=fraction)]) == 0
        runs[fraction] = load_checkpoint(latest_checkpoint(run.parent / "output/tiny/checkpoints"))["nets"]["D0"]
    changed = [k for k, v in runs[0].items() if v.is_floating_point() and not torch.equal(v, runs[1][k])]
    assert any(k.startswith("COND_DNET") for k in changed)


@pytest.mark.parametrize("setting, message", [("GAN.D_NORM=layer", "GAN.D_NORM=layer"),
                                              ("GAN.R1_GAMMA=-1", "GAN.R1_GAMMA"),
                                              ("GAN.HARD_MISMATCH=1.5", "GAN.HARD_MISMATCH")])
def test_bad_stabiliser_settings_are_one_line_errors(tmp_path, shapes_dir, damsm_dir, capsys, setting, message):
    cfg = tiny_cfg(tmp_path, shapes_dir, damsm_dir)
    assert main(["train", str(cfg), "--device", "cpu", "--set", setting]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
