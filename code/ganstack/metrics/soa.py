"""Semantic Object Accuracy (SOA; Hinz, Heinrich, Wermter, TPAMI 2020).

The protocol of the official scripts (SOA/calculate_soa.py):
- one caption file per COCO class, ``label_XX_<name>.pkl``: a pickled list of
  ``{'image_id', 'id', 'idx', 'caption'}`` whose captions mention the class;
- generate 3 images per caption; for label 00 (person) draw 30,000 captions at random
  and generate 1 image each;
- a detector (YOLOv3, conf 0.5, NMS 0.4, 256 px) looks at every image; an image of
  class XX is a hit when any detection has label XX;
- per-class recall = hits / images; SOA-C = mean of the per-class recalls; SOA-I =
  all hits / all images;
- Top-40 / Bottom-40: classes sorted by how many images they were scored on (the
  caption count, i.e. how common the class is); the 40 with fewest are "Bottom-40",
  the rest "Top-40" (40 of them with COCO's 80);
- IoU mode: per image, the largest IoU between a ground-truth box of the class (the
  layout given to the generator, [x, y, w, h] normalised) and a detected box of the
  class; averaged over the images having both (a class without such images scores 0);
  then averaged per class (SOA-C-IoU) and weighted by images (SOA-I-IoU).
The official IoU snaps boxes to a 256-pixel grid first; we compute it exactly.

The detector is duck-typed: anything with ``detect(images) -> [Detections]``
(``ganstack.nets.darknet``), so a shapes judge can stand in for YOLOv3.
"""
from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from ..data.pickles import load_pickle
from ..errors import GanstackError

__all__ = [
    "PERSON", "IMAGES_PER_CAPTION", "PERSON_CAPTIONS", "CaptionFile", "find_caption_files",
    "read_captions", "copies_per_caption", "class_recall", "box_iou", "class_iou",
    "ClassResult", "SoaReport", "soa_scores", "run_soa",
]

PERSON = 0
IMAGES_PER_CAPTION = 3
PERSON_CAPTIONS = 30_000
SPLIT = 40
_CAPTION_FILE = re.compile(r"^label_(\d+)_(.+)\.pkl$")


# ---------------------------------------------------------------- caption files


@dataclass(frozen=True)
class CaptionFile:
    label: int
    name: str
    path: Path

    @property
    def folder(self) -> str:
        """The official per-label image folder name, e.g. ``label_01_bicycle``."""
        return self.path.stem


def find_caption_files(folder: str | os.PathLike) -> list[CaptionFile]:
    """The ``label_XX_<name>.pkl`` files of a folder, by label; other files are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GanstackError(f"{folder}: SOA caption folder not found; copy SOA/captions from the "
                            "semantic-object-accuracy repository there")
    found = []
    for path in sorted(folder.iterdir()):
        m = _CAPTION_FILE.match(path.name)
        if m and path.is_file():
            found.append(CaptionFile(int(m.group(1)), m.group(2), path))
    if not found:
        raise GanstackError(f"{folder}: no label_XX_<name>.pkl caption files; copy SOA/captions there")
    labels = [c.label for c in found]
    if len(set(labels)) != len(labels):
        raise GanstackError(f"{folder}: two caption files share a label number; keep one per label")
    return sorted(found, key=lambda c: c.label)


def read_captions(path: str | os.PathLike) -> list[dict[str, Any]]:
    """One caption file: a list of dicts with at least a string 'caption'."""
    entries = load_pickle(path)  # restricted unpickler: plain data only
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("caption"), str)
                                                for e in entries):
        raise GanstackError(f"{path}: not an SOA caption file (a list of dicts with 'caption'); "
                            "use the files of SOA/captions")
    return entries


def copies_per_caption(label: int, default: int = IMAGES_PER_CAPTION) -> int:
    """3 per caption, but 1 for person, whose 30,000 captions already give plenty."""
    return 1 if label == PERSON else default


# ---------------------------------------------------------------- per-class scores


def _labels(det) -> list[int]:
    labels = det.labels if hasattr(det, "labels") else det[1]
    return [int(v) for v in (labels.tolist() if torch.is_tensor(labels) else labels)]


def _boxes(det) -> list[list[float]]:
    boxes = det.boxes if hasattr(det, "boxes") else det[0]
    return [list(map(float, b)) for b in (boxes.tolist() if torch.is_tensor(boxes) else boxes)]


def class_recall(detections: Iterable, label: int) -> tuple[int, int]:
    """(hits, images): in how many images does some detection carry ``label``."""
    hits = total = 0
    for det in detections:
        total += 1
        hits += label in _labels(det)
    return hits, total


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two xyxy boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def class_iou(detections: Mapping[str, Any], ground_truth: Mapping[str, Sequence], label: int) -> tuple[float, int]:
    """(mean IoU, images used) for one class.

    ``detections``: image key -> Detections (xyxy boxes); ``ground_truth``: image key ->
    ``[[], labels, boxes]`` with boxes [x, y, w, h] normalised (the official layout).
    An image counts when it has a ground-truth box and a detection of ``label``; its IoU
    is the best over all such pairs. No such image: (0.0, 0), as the official script.
    """
    ious = []
    for key, det in detections.items():
        if key not in ground_truth:
            raise GanstackError(f"SOA IoU: no ground truth for image {key!r}; give a layout for every image")
        _, gt_labels, gt_boxes = ground_truth[key][:3]
        truth = [[x, y, x + w, y + h] for lab, (x, y, w, h) in zip(gt_labels or [], gt_boxes or [])
                 if int(lab) == label]
        found = [box for lab, box in zip(_labels(det), _boxes(det)) if lab == label]
        if truth and found:
            ious.append(max(box_iou(t, f) for t in truth for f in found))
    return (sum(ious) / len(ious) if ious else 0.0), len(ious)


# ---------------------------------------------------------------- aggregation


@dataclass
class ClassResult:
    label: int
    name: str
    images: int = 0
    hits: int = 0
    iou: float | None = None  # None: no ground truth given
    iou_images: int = 0

    @property
    def recall(self) -> float:
        return self.hits / self.images if self.images else 0.0


@dataclass
class SoaReport:
    classes: list[ClassResult]
    scores: dict[str, float]
    note: str = ""

    def lines(self) -> list[str]:
        out = [f"{k:>16} {v:7.4f}" for k, v in self.scores.items()]
        return out + ([f"note: {self.note}"] if self.note else [])


def _split(classes: list[ClassResult], rank_by: str) -> tuple[list[ClassResult], list[ClassResult]]:
    """(top, bottom) 40. Ties broken by label (the official order is os.listdir's)."""
    key = (lambda c: (c.images, c.label)) if rank_by == "images" else (lambda c: (c.recall, c.label))
    ranked = sorted(classes, key=key)
    return ranked[-SPLIT:], ranked[:SPLIT]


def soa_scores(classes: Sequence[ClassResult], rank_by: str = "images") -> SoaReport:
    """SOA-C, SOA-I, Top-40/Bottom-40 and, when IoUs are present, their IoU versions.

    ``rank_by="images"`` ranks classes by image count as the official script;
    ``"recall"`` by their recall instead (best / worst 40).
    """
    classes = list(classes)  # a class with no images counts as recall 0, as in the official script
    images = sum(c.images for c in classes)
    if not images:
        raise GanstackError("SOA: no class has any image; generate images for the caption files first")
    if rank_by not in ("images", "recall"):
        raise GanstackError(f"SOA: rank_by={rank_by!r}; use 'images' or 'recall'")

    def mean(values):
        values = list(values)
        return sum(values) / len(values)

    scores = {"SOA-C": mean(c.recall for c in classes), "SOA-I": sum(c.hits for c in classes) / images}
    with_iou = all(c.iou is not None for c in classes)
    if with_iou:
        scores["SOA-C-IoU"] = mean(c.iou for c in classes)
        scores["SOA-I-IoU"] = sum(c.images * c.iou for c in classes) / images
    note = ""
    if len(classes) >= 2 * SPLIT:
        top, bottom = _split(classes, rank_by)
        scores["SOA-C-Top40"], scores["SOA-C-Bot40"] = mean(c.recall for c in top), mean(c.recall for c in bottom)
        if with_iou:
            scores["SOA-C-Top40-IoU"] = mean(c.iou for c in top)
            scores["SOA-C-Bot40-IoU"] = mean(c.iou for c in bottom)
    else:
        note = f"Top-40/Bottom-40 skipped: {len(classes)} classes scored, they need at least {2 * SPLIT}"
    if len(classes) != 80:
        note = "; ".join(filter(None, [note, f"{len(classes)} of COCO's 80 classes: not comparable to papers"]))
    return SoaReport(classes, scores, note)


# ---------------------------------------------------------------- runner

# generate(entries) -> images (N, 3, H, W) in [0, 1], or (images, layouts) where layouts[i] =
# (labels, boxes [x, y, w, h] normalised) given to the generator, for the IoU scores.
Generate = Callable[[list[dict]], Any]


def _select(cf: CaptionFile, entries: list[dict], person_captions: int | None, max_captions: int | None,
            seed: int) -> list[dict]:
    if cf.label == PERSON and person_captions and len(entries) > person_captions:
        entries = random.Random(seed).sample(entries, person_captions)
    return entries[:max_captions] if max_captions else entries


def run_soa(detector, generate: Generate, caption_dir: str | os.PathLike, *, labels: Iterable[int] | None = None,
            images_per_caption: int = IMAGES_PER_CAPTION, person_captions: int | None = PERSON_CAPTIONS,
            max_captions: int | None = None, batch_size: int = 50, seed: int = 0, rank_by: str = "images",
            log: Callable[[str], None] | None = None) -> SoaReport:
    """Generate images for every caption file in ``caption_dir`` and score them.

    ``labels`` restricts the classes; ``max_captions`` caps captions per class (quick runs,
    not comparable to papers); the person captions are drawn with ``seed``.
    """
    files = find_caption_files(caption_dir)
    if labels is not None:
        wanted = set(labels)
        files = [cf for cf in files if cf.label in wanted]
    results = []
    for cf in files:
        entries = _select(cf, read_captions(cf.path), person_captions, max_captions, seed)
        copies = copies_per_caption(cf.label, images_per_caption)
        jobs = [(f"{cf.folder}/{i}_{k}", e) for i, e in enumerate(entries) for k in range(copies)]
        detections, truth = {}, {}
        for start in range(0, len(jobs), batch_size):
            batch = jobs[start:start + batch_size]
            with torch.no_grad():
                made = generate([e for _, e in batch])
                images, layouts = made if isinstance(made, tuple) else (made, None)
                if not torch.is_tensor(images) or images.dim() != 4 or len(images) != len(batch):
                    raise GanstackError(f"SOA: the generator returned {getattr(images, 'shape', type(images))} "
                                        f"for {len(batch)} captions; return one (3, H, W) image per caption")
                found = detector.detect(images)
            detections.update((key, det) for (key, _), det in zip(batch, found))
            if layouts is not None:
                truth.update({key: [[], list(lab), list(box)] for (key, _), (lab, box) in zip(batch, layouts)})
        hits, total = class_recall(detections.values(), cf.label)
        result = ClassResult(cf.label, cf.name, total, hits)
        if truth:
            result.iou, result.iou_images = class_iou(detections, truth, cf.label)
        results.append(result)
        if log:
            log(f"SOA {cf.folder}: {hits}/{total} images = {result.recall:.4f}")
    return soa_scores(results, rank_by)
