"""Training throughput of any config on the current device, in images/sec.

    .venv/bin/python benchmarks/train_speed.py cfg/damsm/shapes.yml [--set KEY=VALUE ...] [--steps 20]
    .venv/bin/python benchmarks/train_speed.py cfg/attngan/bird.yml --fake-data

--fake-data times a config whose dataset (and encoders) are not here. AttnGAN-layout configs:
64 random images with captions in the birds (CUB) layout at the config's resolution (OP-GAN: the
COCO layout with MAX_OBJECTS random boxes and labels per image in OP-GAN's pickles; StackGAN++:
plus random char-CNN-RNN embedding pickles, or the images alone when unconditional), and a
DAMSM text encoder plus an Inception image encoder (random weights, the authors' file format)
for TRAIN.NET_E. pix2pix configs: 32 random A|B pairs in the aligned (facades) layout at
DATA.LOAD_SIZE. Super-resolution configs: 16 random HR PNGs per split in DIV2K's layout (SRGAN:
from scratch, with a random VGG19 in torchvision's file format). Face aging: random faces with
CACD2000 names at ages 15-60 (IPCGAN: a random age classifier). Speed does not depend on the pixels
or the weights.

    .venv/bin/python benchmarks/train_speed.py cfg/pix2pix/facades.yml --fake-data   # unet_256, batch 1

Builds the run exactly as `ganstack train` does (same variant, trainer, precision),
then times `--steps` optimisation steps after `--warmup` untimed ones: once on a
batch already in memory (compute only) and once through the data loader
(end to end). Nothing is written to the run folder.
"""
from __future__ import annotations

import argparse
import json
import math
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganstack.config import load_config
from ganstack.engine.trainer import Trainer, _to_device


def significant(x: float) -> float:
    """Two decimals, or three significant digits below 1 image/s (0.114, not 0.11)."""
    return round(x, max(2, 2 - math.floor(math.log10(x)))) if x > 0 else x


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


WORDS = "this bird has a red crown white belly short beak black wings and long tail feathers small yellow".split()


def write_fake_birds(root: Path, size: int, count: int = 64, captions: int = 10) -> Path:
    """A CUB-layout folder (images, boxes, text, Python pickles) of random images and captions."""
    rng = np.random.default_rng(0)
    data, cub = root / "birds", root / "birds" / "CUB_200_2011"
    (cub / "images" / "001.Fake").mkdir(parents=True)
    (data / "text" / "001.Fake").mkdir(parents=True)
    lines, boxes = [], []
    for split in ("train", "test"):
        keys = [f"001.Fake/Fake_{split}_{i:04d}" for i in range(count)]
        for key in keys:
            pixels = rng.integers(0, 256, (size + size // 8, size + size // 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(cub / "images" / f"{key}.jpg")
            text = [" ".join(rng.choice(WORDS, size=int(rng.integers(8, 18)))) for _ in range(captions)]
            (data / "text" / f"{key}.txt").write_text("\n".join(text) + "\n")
            lines.append(f"{len(lines) + 1} {key}.jpg")
            boxes.append(f"{len(boxes) + 1} 0 0 {size} {size}")
        (data / split).mkdir()
        (data / split / "filenames.pickle").write_bytes(pickle.dumps(keys, protocol=2))
        (data / split / "class_info.pickle").write_bytes(pickle.dumps(list(range(count)), protocol=2))
    (cub / "images.txt").write_text("\n".join(lines) + "\n")
    (cub / "bounding_boxes.txt").write_text("\n".join(boxes) + "\n")
    write_fake_encoders(root, data, captions)
    return data


def write_fake_embeddings(data: Path, dim: int, captions: int) -> None:
    """StackGAN's char-CNN-RNN-embeddings.pickle for each split of a fake birds folder: random vectors."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        count = len(pickle.loads((data / split / "filenames.pickle").read_bytes()))
        arrays = [rng.standard_normal((captions, dim)).astype(np.float32) for _ in range(count)]
        (data / split / "char-CNN-RNN-embeddings.pickle").write_bytes(pickle.dumps(arrays, protocol=2))


def write_fake_encoders(root: Path, data: Path, captions: int) -> None:
    """DAMSM text and Inception image encoders with random weights over `data`'s vocabulary."""
    from ganstack.data.attngan import TextImageDataset
    from ganstack.nets.damsm import InceptionImageEncoder, TextEncoder
    vocab = TextImageDataset(data, "train", image_sizes=[64], words_num=18, captions_per_image=captions,
                             augment=False, flip=False).vocab
    torch.save(TextEncoder(len(vocab)).state_dict(), root / "text_encoder.pth")
    torch.save(InceptionImageEncoder(256, None).state_dict(), root / "image_encoder.pth")


def write_fake_coco_layouts(root: Path, size: int, count: int = 64, captions: int = 5, objects: int = 3,
                            classes: int = 80) -> Path:
    """A COCO-layout folder with OP-GAN's box and label pickles: random images, captions and
    `objects` random boxes per image (OP-GAN's cost grows with the object count, so all are full)."""
    rng = np.random.default_rng(0)
    data = root / "coco"
    (data / "images").mkdir(parents=True)
    (data / "text").mkdir()
    for split in ("train", "test"):
        keys = [f"COCO_{split}2014_{i:012d}" for i in range(count)]
        for key in keys:
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(data / "images" / f"{key}.jpg")
            text = [" ".join(rng.choice(WORDS, size=int(rng.integers(8, 18)))) for _ in range(captions)]
            (data / "text" / f"{key}.txt").write_text("\n".join(text) + "\n")
        xy = rng.uniform(0, 0.5, (count, objects, 2))
        boxes = np.concatenate([xy, rng.uniform(0.1, 0.5, (count, objects, 2))], -1)
        (data / split).mkdir()
        (data / split / "filenames.pickle").write_bytes(pickle.dumps(keys, protocol=2))
        (data / split / "bboxes.pickle").write_bytes(pickle.dumps(boxes, protocol=2))
        labels = rng.integers(0, classes, (count, objects, 1))
        (data / split / "labels.pickle").write_bytes(pickle.dumps(labels, protocol=2))
    write_fake_encoders(root, data, captions)
    return data


def write_fake_pairs(root: Path, load_size: int, count: int = 32) -> Path:
    """pix2pix's aligned layout: train/ and test/ of random A|B JPEGs, load_size x 2 load_size."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / "pairs" / split).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (load_size, 2 * load_size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "pairs" / split / f"{i}.jpg")
    return root / "pairs"


def write_fake_hr(root: Path, crop: int, count: int = 16) -> Path:
    """DIV2K's layout (DIV2K_train_HR/, DIV2K_valid_HR/) of random PNGs a little larger than the HR crop."""
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        folder = root / "DIV2K" / f"DIV2K_{split}_HR"
        folder.mkdir(parents=True)
        for i in range(count):
            side = crop + crop // 2
            pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i + 1:04d}.png")
    return root / "DIV2K"


def write_fake_cacd(root: Path, load_size: int, count: int = 64) -> Path:
    """CACD2000 names (age_Name_nnnn.jpg) in train/ and test/, random faces at ages 15-60: every
    IPCGAN group and both Fast-AgingGAN domains (18-29, 55+) hold count / 5 of them."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        folder = root / "CACD2000" / split
        folder.mkdir(parents=True)
        for i in range(count):
            age = (15, 25, 35, 45, 60)[i % 5]
            pixels = rng.integers(0, 256, (load_size, load_size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{age}_Fake_Person{i // 10}_{i:04d}.jpg")
    return root / "CACD2000"


def write_fake_vgg19(path: Path) -> None:
    """torchvision's VGG19 with random weights, saved as its state dict (the perceptual losses' file)."""
    from torchvision.models import vgg19
    torch.save(vgg19().state_dict(), path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cfg")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--fake-data", action="store_true", help="random data (and encoders): birds or COCO layout, aligned pairs for pix2pix, DIV2K layout for super-resolution, CACD names for face aging")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(args.cfg, args.overrides + [f"OUTPUT_DIR={out}"])
        largest = max(cfg.TRAIN.BATCH_SIZE) if isinstance(cfg.TRAIN.BATCH_SIZE, list) else cfg.TRAIN.BATCH_SIZE
        count = max(64, largest * (args.steps + 1))  # one epoch holds the timed steps: no worker restarts
        if args.fake_data and cfg.VARIANT == "pix2pix":
            data = write_fake_pairs(Path(out), max(cfg.DATA.LOAD_SIZE, cfg.DATA.CROP_SIZE), count)
            cfg = load_config(args.cfg, args.overrides + [f"OUTPUT_DIR={out}", f"DATA_DIR={data}"])
        elif args.fake_data and cfg.VARIANT in ("aging_cycle", "aging_conditional"):
            per_epoch = 5 * count if cfg.VARIANT == "aging_cycle" else count  # its epoch: the 18-29 faces
            data = write_fake_cacd(Path(out), max(cfg.DATA.LOAD_SIZE, cfg.DATA.CROP_SIZE), per_epoch)
            cfg = load_config(args.cfg, args.overrides + [f"OUTPUT_DIR={out}", f"DATA_DIR={data}"])
        elif args.fake_data and cfg.VARIANT in ("srresnet", "srgan", "srcnn"):
            data, sets = write_fake_hr(Path(out), cfg.SR.HR_CROP), []
            if cfg.VARIANT == "srgan":  # from scratch, with random VGG19 weights
                write_fake_vgg19(Path(out) / "vgg19.pth")
                sets = ["TRAIN.NET_G=", f"SR.VGG_WEIGHTS={Path(out) / 'vgg19.pth'}"]
            cfg = load_config(args.cfg, args.overrides + [f"OUTPUT_DIR={out}", f"DATA_DIR={data}", *sets])
        elif args.fake_data:
            size = cfg.TREE.BASE_SIZE * 2 ** (cfg.TREE.BRANCH_NUM - 1)
            if cfg.VARIANT == "opgan":
                data = write_fake_coco_layouts(Path(out), size, count, captions=cfg.TEXT.CAPTIONS_PER_IMAGE,
                                               objects=cfg.MAX_OBJECTS, classes=cfg.TEXT.CLASSES_NUM - 1)
            else:
                data = write_fake_birds(Path(out), size, count, captions=cfg.TEXT.CAPTIONS_PER_IMAGE)
            if cfg.VARIANT == "stackgan2":
                write_fake_embeddings(data, cfg.TEXT.EMBEDDING_DIM, cfg.TEXT.CAPTIONS_PER_IMAGE)
            sets = [f"TRAIN.NET_E={Path(out) / 'text_encoder.pth'}"]
            if cfg.VARIANT == "damsm":  # its image encoder starts from torchvision's Inception-v3 file
                from torchvision.models import inception_v3
                torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(),
                           Path(out) / "inception.pth")
                sets = [f"DAMSM.INCEPTION_WEIGHTS={Path(out) / 'inception.pth'}"]
            cfg = load_config(args.cfg, args.overrides + [f"OUTPUT_DIR={out}", f"DATA_DIR={data}", *sets])
        trainer = Trainer(cfg, device=args.device)
        variant, opt, dev = trainer.variant, trainer.updater, trainer.env.device
        if args.fake_data and cfg.VARIANT == "aging_conditional":  # its age classifier, random (not trained here)
            from ganstack.metrics.face_judge import AgeClassifier
            variant.classifier = AgeClassifier(len(variant.groups)).to(dev).eval().requires_grad_(False)
        variant.train(True)
        batches = iter(trainer._loader())
        batch = _to_device(next(batches), dev)
        for i in range(args.warmup):  # includes cuDNN's autotuning, whose trial workspaces are not kept
            variant.train_step(batch, i, opt)
        sync(dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        t0 = time.perf_counter()
        for i in range(args.steps):
            variant.train_step(batch, i, opt)
        sync(dev)
        compute = args.steps * cfg.TRAIN.BATCH_SIZE / (time.perf_counter() - t0)
        n, t0 = 0, time.perf_counter()
        for i in range(args.steps):
            b = next(batches, None)
            if b is None:
                batches = iter(trainer._loader())
                b = next(batches)
            variant.train_step(_to_device(b, dev), i, opt)
            n += b["size"] if "size" in b else cfg.TRAIN.BATCH_SIZE
        sync(dev)
        end_to_end = n / (time.perf_counter() - t0)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    report = {"config": args.cfg, "overrides": args.overrides, "device": name,
              "precision": trainer.updater.precision, "batch_size": cfg.TRAIN.BATCH_SIZE,
              "images_per_sec_compute": significant(compute),
              "images_per_sec_end_to_end": significant(end_to_end)}
    if dev.type == "cuda":
        report["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2 ** 30, 2)
    print(json.dumps(report))


if __name__ == "__main__":
    sys.exit(main())
