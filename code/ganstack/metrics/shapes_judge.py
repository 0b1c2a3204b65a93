"""The shapes judge: an offline stand-in for SOA's YOLOv3 on the embedded shapes set.

A small CNN trained once per dataset on its real training images to say
which (shape, colour) classes are present (multi-label, sigmoid per class).
Its scores on generated images are read beside its score on held-out real
images (`evaluate_real`), as SOA reports real COCO images. Its pooled
penultimate features (`features`) serve a domain FID/KID.

Metrics (`object_accuracy`), with a class predicted present when its
probability is above 0.5 and each image's true classes taken as a set
(two red circles name the class once):
  exact_match      fraction of images whose predicted set equals the true set
  object_recall    mean over images of the fraction of its classes detected
  class_recall     mean over classes that occur of the fraction of their images
                   in which they are detected
  soa_c, soa_i     SOA's two scores (metrics/soa.py) with the judge as the detector:
                   soa_c = class_recall, soa_i = all detected (image, class) pairs
                   over all pairs (every class an image's caption names counts)
  colour_accuracy  mean over images of the fraction of its classes whose colour
                   is detected on some shape (shape may be wrong)
  shape_accuracy   likewise for the shape, in some colour
  soa_c_iou, soa_i_iou
                   SOA's IoU scores, given detected boxes (the shapes segmenter's regions,
                   metrics/shapes_segmenter.detect_boxes) and the split's boxes: per image and
                   named class the best IoU between its true and detected boxes, averaged over
                   the images having both (0 for a class with none), then per class / per image
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import pickle
import sys
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..data.pickles import load_pickle
from ..data.synthetic.shapes import COLOURS, NUM_CLASSES, class_name, load_meta
from ..errors import GanstackError
from ..io import atomic_path
from .soa import ClassResult, class_iou, soa_scores

JUDGE_VERSION = 1
JUDGE_SIZE = 64
DEFAULT_EPOCHS = 12


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ShapesJudge(nn.Module):
    """Multi-label presence classifier for the NUM_CLASSES (shape, colour) classes.

    A 1x1 conv scores every class at every cell of a 16x16 map and the image
    logit is the maximum over cells ("present somewhere"): colour and shape
    are bound at one place, which learns far faster than pooling first.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.body = nn.Sequential(_block(3, w, 1), _block(w, 2 * w, 2), _block(2 * w, 2 * w, 1),
                                  _block(2 * w, 4 * w, 2), _block(4 * w, 4 * w, 1), _block(4 * w, 8 * w, 1))
        self.feature_dim = 16 * w
        self.head = nn.Conv2d(8 * w, NUM_CLASSES, 1)
        # Start at the prior (about 2 of NUM_CLASSES present), not at 0.5 for all.
        nn.init.constant_(self.head.bias, math.log(2 / (NUM_CLASSES - 2)))

    @staticmethod
    def prepare(images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] of any size -> JUDGE_SIZE px."""
        if images.shape[-1] != JUDGE_SIZE or images.shape[-2] != JUDGE_SIZE:
            images = F.interpolate(images.float(), size=(JUDGE_SIZE, JUDGE_SIZE), mode="bilinear",
                                   align_corners=False, antialias=True)
        return images

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.prepare(images))).amax(dim=(2, 3))

    forward = logits

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """(B, NUM_CLASSES) presence probabilities."""
        return torch.sigmoid(self.logits(images.to(self.head.weight.device)))

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, feature_dim) penultimate features (max and mean pooled), for domain FID/KID."""
        h = self.body(self.prepare(images.to(self.head.weight.device)))
        return torch.cat([h.amax(dim=(2, 3)), h.mean(dim=(2, 3))], dim=1)


# ------------------------------------------------------------------ data
def load_split(data_dir: str | Path, split: str) -> tuple[torch.Tensor, np.ndarray]:
    """(uint8 images (N, 3, S, S), labels (N, 3, 1) with -1 padding) of a shapes split."""
    data_dir = Path(data_dir)
    keys = [str(k) for k in load_pickle(data_dir / split / "filenames.pickle")]
    labels = load_labels(data_dir, split)
    if len(labels) != len(keys):
        raise GanstackError(f"{data_dir / split / 'labels.pickle'}: {len(labels)} rows for {len(keys)} images")
    arrays = []
    for key in keys:
        path = data_dir / "images" / f"{key}.jpg"
        try:
            arrays.append(np.asarray(Image.open(path).convert("RGB")))
        except OSError as e:
            raise GanstackError(f"{path}: unreadable ({e}); prepare the set again") from None
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return images, labels


def to_unit_range(images_u8: torch.Tensor) -> torch.Tensor:
    return images_u8.float() / 127.5 - 1.0


def true_sets(labels) -> list[set[int]]:
    """Class sets from (B, K, 1) / (B, K) arrays or tensors with -1 padding, or lists of class lists."""
    if isinstance(labels, (torch.Tensor, np.ndarray)):
        arr = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(len(labels), -1)
        return [{int(c) for c in row if c >= 0} for row in arr]
    return [{int(c) for c in row} for row in labels]


def multi_hot(labels) -> torch.Tensor:
    out = torch.zeros(len(labels), NUM_CLASSES)
    for i, classes in enumerate(true_sets(labels)):
        out[i, list(classes)] = 1.0
    return out


# ------------------------------------------------------------------ training
@contextlib.contextmanager
def _deterministic(device: torch.device, seed: int):
    """Seeded, deterministic section that leaves the caller's RNG and cuDNN settings as they were."""
    devices = [device.index or 0] if device.type == "cuda" else []
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        try:
            yield
        finally:
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def fit_small_net(make_net, count: int, batch_loss, *, seed: int, steps: int, batch_size: int, lr: float,
                  device: torch.device) -> nn.Module:
    """The judges' training loop: the net built and trained deterministically (its initial weights
    too) for `steps` minibatches of shuffled indices of `count` examples; AdamW (weight decay 1e-4),
    a linear warm-up over the first 5 % then cosine to 0. batch_loss(net, indices) -> loss draws
    its own augmentation. Returns the net in train mode; callers finish it."""
    with _deterministic(device, seed), torch.enable_grad():  # callers may sit inside torch.no_grad()
        net = make_net().to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
        warmup = max(1, steps // 20)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warmup, 0.5 * (
            1 + math.cos(math.pi * min(s, steps) / steps))))
        net.train()
        step = 0
        while step < steps:
            for idx in torch.randperm(count).split(batch_size):
                if step == steps:
                    break
                loss = batch_loss(net, idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
    return net


def train_judge(images_u8: torch.Tensor, labels, *, seed: int = 0, epochs: int = DEFAULT_EPOCHS,
                max_steps: int | None = None, batch_size: int = 32, lr: float = 2e-3,
                device: str | torch.device = "cpu") -> ShapesJudge:
    """Train a judge on uint8 images with BCE; augmentation: horizontal flips and small shifts."""
    device = torch.device(device)
    x_all = ShapesJudge.prepare(to_unit_range(images_u8))
    y_all = multi_hot(labels)
    n = len(x_all)
    steps = epochs * math.ceil(n / batch_size)
    steps = min(steps, max_steps) if max_steps else steps

    def batch_loss(judge, idx):
        x, y = x_all[idx].to(device), y_all[idx].to(device)
        flip = torch.rand(len(x), device=device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        dx, dy = (int(v) for v in torch.randint(-3, 4, (2,)))
        x = F.pad(x, (3, 3, 3, 3), mode="replicate")[..., 3 + dy:3 + dy + JUDGE_SIZE, 3 + dx:3 + dx + JUDGE_SIZE]
        return F.binary_cross_entropy_with_logits(judge(x), y)
    judge = fit_small_net(ShapesJudge, n, batch_loss, seed=seed, steps=steps, batch_size=batch_size, lr=lr,
                          device=device)
    judge.eval().requires_grad_(False)
    return judge


def load_labels(data_dir: str | Path, split: str) -> np.ndarray:
    """Object labels (N, 3, 1) of a shapes split, -1 padded, in file order."""
    return np.asarray(load_pickle(Path(data_dir) / split / "labels.pickle"))


def judge_cache_file(data_dir: str | Path, cache_dir: str | Path = "models/judges", seed: int = 0) -> Path:
    """Where load_or_train_judge keeps the default judge of `data_dir` (its name hashes data and settings)."""
    return cache_path(data_dir, cache_dir, seed, DEFAULT_EPOCHS, None)


def cache_path(data_dir: str | Path, cache_dir: str | Path, seed: int, epochs: int, max_steps: int | None) -> Path:
    return trained_model_file("shapes_", f"judge{JUDGE_VERSION}", data_dir, cache_dir, seed, epochs, max_steps)


def trained_model_file(prefix: str, kind: str, data_dir: str | Path, cache_dir: str | Path, seed: int, epochs: int,
                       max_steps: int | None) -> Path:
    """cache_dir/<prefix><hash>.pt: the name hashes the data set's meta.json and the training settings,
    so a changed data set or setting trains a new model (judges and segmenters alike)."""
    meta = (Path(data_dir) / "meta.json").read_bytes()
    digest = hashlib.sha256(meta + f"|{kind}|seed{seed}|epochs{epochs}|steps{max_steps}".encode())
    return Path(cache_dir) / f"{prefix}{digest.hexdigest()[:16]}.pt"


def load_or_train_judge(data_dir: str | Path, cache_dir: str | Path = "models/judges", device: str = "cpu",
                        seed: int = 0, *, epochs: int = DEFAULT_EPOCHS, max_steps: int | None = None) -> ShapesJudge:
    """The judge of a shapes set, trained on its train split once and cached under `cache_dir`."""
    load_meta(data_dir)  # a clear error when data_dir is not a complete shapes set
    path = cache_path(data_dir, cache_dir, seed, epochs, max_steps)
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            judge = ShapesJudge()
            judge.load_state_dict(state["judge"])
        except (RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as e:
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise GanstackError(f"{path}: unreadable judge ({reason}); delete it to train it again") from None
        return judge.to(device).eval().requires_grad_(False)
    print(f"shapes judge: training on {data_dir} (once; cached as {path})", file=sys.stderr, flush=True)
    images, labels = load_split(data_dir, "train")
    judge = train_judge(images, labels, seed=seed, epochs=epochs, max_steps=max_steps, device=device)
    with atomic_path(path) as tmp:
        torch.save({"judge": judge.state_dict(), "version": JUDGE_VERSION, "seed": seed}, tmp)
    return judge


# ------------------------------------------------------------------ scoring
def score_predictions(pred: torch.Tensor, labels, boxes: torch.Tensor | None = None, true_boxes=None) -> dict:
    """Metrics (module docstring) from boolean predictions (B, NUM_CLASSES) and true labels; with
    detected `boxes` (B, NUM_CLASSES, K, 4 xyxy, zero rows: none) and the images' `true_boxes`
    (B, objects, 4 [x, y, w, h] normalised, rows in label order, -1 padding) also SOA's IoU scores."""
    truth = true_sets(labels)
    pred = pred.bool().cpu().numpy()
    if len(truth) != len(pred):
        raise GanstackError(f"judge: {len(pred)} images but {len(truth)} label rows")
    shape_of = np.arange(NUM_CLASSES) // len(COLOURS)
    colour_of = np.arange(NUM_CLASSES) % len(COLOURS)
    exact, recall, colour_acc, shape_acc = [], [], [], []
    hits, counts = np.zeros(NUM_CLASSES), np.zeros(NUM_CLASSES)
    for p, t in zip(pred, truth):
        exact.append(set(np.flatnonzero(p).tolist()) == t)
        if not t:
            continue
        found = [bool(p[c]) for c in t]
        colours, shapes = set(colour_of[p].tolist()), set(shape_of[p].tolist())
        recall.append(np.mean(found))
        colour_acc.append(np.mean([colour_of[c] in colours for c in t]))
        shape_acc.append(np.mean([shape_of[c] in shapes for c in t]))
        for c, f in zip(t, found):
            counts[c] += 1
            hits[c] += f
    seen = counts > 0
    mean = lambda v: float(np.mean(v)) if len(v) else float("nan")  # noqa: E731
    out = {"exact_match": mean(exact), "object_recall": mean(recall),
           "class_recall": mean(hits[seen] / counts[seen]), "colour_accuracy": mean(colour_acc),
           "shape_accuracy": mean(shape_acc), "num_images": len(pred)}
    if seen.any():  # the judge as SOA's detector: each image counts for every class its caption names
        classes = [ClassResult(int(c), class_name(int(c)), int(counts[c]), int(hits[c]))
                   for c in np.flatnonzero(seen)]
        if boxes is not None:
            ious = _class_ious(boxes, labels, true_boxes, [r.label for r in classes])
            for r in classes:
                r.iou, r.iou_images = ious[r.label]
        soa = soa_scores(classes).scores
        out.update(soa_c=soa["SOA-C"], soa_i=soa["SOA-I"])
        if boxes is not None:
            out.update(soa_c_iou=soa["SOA-C-IoU"], soa_i_iou=soa["SOA-I-IoU"])
    return out


def _class_ious(boxes: torch.Tensor, labels, true_boxes, classes) -> dict[int, tuple[float, int]]:
    """class -> (mean IoU, images) by SOA's own per-class rule (metrics/soa.class_iou), detections being
    the non-empty rows of `boxes` and ground truth the images' true boxes."""
    if true_boxes is None:
        raise GanstackError("judge: detected boxes need the images' true boxes (bboxes.pickle) to score IoU")
    boxes = np.asarray(boxes.cpu() if torch.is_tensor(boxes) else boxes)
    rows = np.asarray(labels.cpu() if torch.is_tensor(labels) else labels).reshape(len(boxes), -1)
    true_boxes = np.asarray(true_boxes, dtype=np.float64).reshape(len(boxes), -1, 4)
    found, truth = {}, {}
    for i, (per_class, row, gt) in enumerate(zip(boxes, rows, true_boxes)):
        hits = [(c, box.tolist()) for c, rows_c in enumerate(per_class) for box in rows_c if box[2] > box[0]]
        found[i] = ([box for _, box in hits], [c for c, _ in hits])
        truth[i] = [[], [int(c) for c in row if c >= 0], [b.tolist() for c, b in zip(row, gt) if c >= 0]]
    return {int(c): class_iou(found, truth, int(c)) for c in classes}


def score_images(judge: ShapesJudge, batches: Iterable[torch.Tensor], labels, threshold: float = 0.5) -> dict:
    """Stream image batches (in [-1, 1], in label order) through the judge and score them."""
    pred = torch.cat([judge.predict(b) > threshold for b in batches])
    return score_predictions(pred, labels)


def object_accuracy(judge: ShapesJudge, images: torch.Tensor, labels, batch_size: int = 256) -> dict:
    """Metrics for a (B, 3, H, W) tensor of images in [-1, 1] and their labels."""
    return score_images(judge, images.split(batch_size), labels)


def evaluate_real(judge: ShapesJudge, data_dir: str | Path, split: str = "test", batch_size: int = 256) -> dict:
    """The judge on the real images of a split: the reference row beside generated-image scores."""
    images, labels = load_split(data_dir, split)
    return score_images(judge, (to_unit_range(b) for b in images.split(batch_size)), labels)
