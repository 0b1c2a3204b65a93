"""OP-GAN's layouts beside AttnGAN's COCO layout (OP-GAN/code/datasets.py's files).

DATA_DIR/<split>/
  bboxes.pickle            (N, 3, 4) boxes [x, y, w, h] normalised to the image, padding rows -1
  labels.pickle            (N, 3, 1) class ids 0..C-2, padding -1 (C = TEXT.CLASSES_NUM, the last
                           one-hot class meaning "no object"; COCO: 80 classes, C = 81)
  bboxes_large.pickle      the same with 10 rows (MAX_OBJECTS above 3)
  labels_large.pickle
  bboxes_generated.pickle  (N, 5, 10, 4): five layouts per test image from a layout generator,
  labels_generated.pickle  (N, 5, 10[, 1]); TRAIN.GENERATED_BBOXES samples from them, one drawn per item

Python 2 pickles load through the restricted unpickler. Every layout is checked once when
the reader opens: a box outside [0, 1], a label outside the classes, or an image with more
objects than MAX_OBJECTS is a one-line error naming the file, the image and the value.
Boxes follow the image's crop and flip; an object cropped away becomes a padding row.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import GanstackError
from .attngan import TextImageDataset
from .pickles import load_pickle

SLACK = 1e-3  # rounding in files written by others: a box may end at 1.001


def layout_files(split_dir: Path, max_objects: int, generated: bool) -> tuple[Path, Path]:
    """Which pickles hold the split's layouts: the generated ones when asked, the 10-object
    `_large` files when MAX_OBJECTS is above 3 and they exist, else the 3-object files."""
    if generated:
        return split_dir / "bboxes_generated.pickle", split_dir / "labels_generated.pickle"
    large = split_dir / "bboxes_large.pickle", split_dir / "labels_large.pickle"
    if max_objects > 3 and large[0].is_file() and large[1].is_file():
        return large
    return split_dir / "bboxes.pickle", split_dir / "labels.pickle"


def _array(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise GanstackError(f"{path}: not found; OP-GAN needs {what} beside filenames.pickle (the shapes set writes "
                            "them: `ganstack prepare shapes`)")
    raw = load_pickle(path)
    try:
        return np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise GanstackError(f"{path}: expected a numeric array of {what}, got {type(raw).__name__}") from None


def load_layouts(split_dir: Path, keys: list[str], *, max_objects: int, classes: int, generated: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(N, [5,] M, 4) float32 boxes and (N, [5,] M) int64 labels with M = max_objects, valid
    objects first, padding rows -1, every value checked."""
    box_path, label_path = layout_files(split_dir, max_objects, generated)
    boxes, labels = _array(box_path, "object boxes"), _array(label_path, "object labels")
    lead = (len(keys), 5) if generated else (len(keys),)
    if labels.ndim == len(lead) + 2 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if boxes.ndim != len(lead) + 2 or boxes.shape[:len(lead)] != lead or boxes.shape[-1] != 4:
        raise GanstackError(f"{box_path}: shape {boxes.shape}, expected {lead + ('objects', 4)} for the "
                            f"{len(keys)} images of filenames.pickle")
    if labels.shape != boxes.shape[:-1]:
        raise GanstackError(f"{label_path}: shape {labels.shape} does not match {box_path.name}'s {boxes.shape[:-1]}")
    rows = boxes.shape[-2]
    flat_boxes, flat_labels = boxes.reshape(-1, rows, 4), labels.reshape(-1, rows)  # one row per layout
    flat_valid = flat_labels >= 0
    per = 5 if generated else 1  # layouts per image

    def key_of(row: int) -> str:
        return keys[row // per]

    bad_label = np.argwhere((flat_labels != np.round(flat_labels)) | (flat_labels < -1) | (flat_labels > classes - 2))
    if len(bad_label):
        r, k = bad_label[0]
        raise GanstackError(f"{label_path}: image {key_of(r)} object {k} has label {flat_labels[r, k]:g}, outside "
                            f"0..{classes - 2} (TEXT.CLASSES_NUM={classes} counts the 'no object' class); "
                            "set TEXT.CLASSES_NUM or fix the labels")
    x, y, w, h = np.moveaxis(flat_boxes, -1, 0)
    outside = flat_valid & ~((x >= -SLACK) & (y >= -SLACK) & (w > 0) & (h > 0)
                             & (x + w <= 1 + SLACK) & (y + h <= 1 + SLACK))
    if outside.any():
        r, k = np.argwhere(outside)[0]
        raise GanstackError(f"{box_path}: image {key_of(r)} object {k} has box {flat_boxes[r, k].round(4).tolist()} "
                            "outside [0, 1] (boxes are [x, y, w, h] normalised to the image, w and h > 0)")
    counts = flat_valid.sum(1)
    if counts.max(initial=0) > max_objects:
        r = int(np.argmax(counts))
        raise GanstackError(f"{label_path}: image {key_of(r)} has {counts[r]} objects, more than MAX_OBJECTS="
                            f"{max_objects}; raise MAX_OBJECTS (up to 10) or drop objects from the layout")
    out_boxes = np.full((len(flat_boxes), max_objects, 4), -1, np.float32)
    out_labels = np.full((len(flat_boxes), max_objects), -1, np.int64)
    for r in range(len(flat_boxes)):  # valid objects first, in the file's order
        rows = np.flatnonzero(flat_valid[r])
        out_boxes[r, :len(rows)] = np.clip(flat_boxes[r, rows], 0, 1)
        out_labels[r, :len(rows)] = flat_labels[r, rows]
    return out_boxes.reshape(*lead, max_objects, 4), out_labels.reshape(*lead, max_objects)


def compact(boxes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop objects whose box was cropped to nothing; valid objects first, -1 padding after."""
    keep = (labels >= 0) & (boxes[:, 2] > 1e-6) & (boxes[:, 3] > 1e-6)
    out_boxes, out_labels = np.full_like(boxes, -1, dtype=np.float32), np.full_like(labels, -1)
    out_boxes[:keep.sum()], out_labels[:keep.sum()] = boxes[keep], labels[keep]
    return out_boxes, out_labels


class LayoutDataset(TextImageDataset):
    """AttnGAN's captioned images plus each image's layout: samples gain `boxes` (M, 4) and
    `labels` (M,) (-1 padding), after the image's crop and flip."""

    def __init__(self, data_dir, split: str, *, max_objects: int, classes: int, generated: bool = False, **kwargs):
        super().__init__(data_dir, split, **kwargs)
        if self.boxes is not None:
            raise GanstackError(f"DATA_DIR={self.data_dir}: OP-GAN reads the COCO layout (images/<key>.jpg with "
                                "box pickles), not CUB's bird crops")
        self.max_objects, self.classes, self.generated = max_objects, classes, generated
        self.layout_boxes, self.layout_labels = load_layouts(self.data_dir / split, self.keys, max_objects=max_objects,
                                                             classes=classes, generated=generated)

    def batch_groups(self) -> np.ndarray:
        """Each item's object count: TRAIN.OPTIMIZE_DATA_LOADING batches items of one count together."""
        labels = self.layout_labels[:, 0] if self.generated else self.layout_labels
        return (labels >= 0).sum(-1)

    def layout(self, index: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The item's boxes and labels; of the generated ones, one of the five (drawn with rng, else the first)."""
        boxes, labels = self.layout_boxes[index], self.layout_labels[index]
        if self.generated:
            pick = int(rng.integers(boxes.shape[0])) if rng is not None else 0
            boxes, labels = boxes[pick], labels[pick]
        return boxes, labels

    def object_boxes(self, index: int, rng: np.random.Generator) -> np.ndarray:
        boxes, labels = self.layout(index, rng)
        # the labels ride along with the boxes through the crop: stash them with the boxes' rows
        return np.concatenate([boxes, labels[:, None].astype(np.float32)], 1)

    def load_images_and_boxes(self, index, rng, layout):
        if layout is None:
            return super().load_images_and_boxes(index, rng, None)
        images, boxes = super().load_images_and_boxes(index, rng, layout[:, :4])
        return images, np.concatenate([boxes, layout[:, 4:]], 1)

    def layout_fields(self, index: int, boxes: np.ndarray) -> dict:
        fitted, labels = compact(boxes[:, :4], boxes[:, 4].astype(np.int64))
        return {"boxes": torch.from_numpy(fitted.astype(np.float32)), "labels": torch.from_numpy(labels)}


# ------------------------------------------------------------------ layouts people write
def label_names(data_dir: str | Path, classes: int) -> list[str]:
    """Names of the classes 0..classes-2: the shapes set's ('red circle'), COCO's 80 (YOLOv3's
    coco.names order) when there are 80, else the numbers."""
    from .synthetic.shapes import NUM_CLASSES, class_name
    if (Path(data_dir) / "meta.json").is_file() and classes - 1 == NUM_CLASSES:
        return [class_name(c) for c in range(NUM_CLASSES)]
    if classes - 1 == 80:
        from ..nets.darknet import COCO_NAMES
        return list(COCO_NAMES)
    return [str(c) for c in range(classes - 1)]


def read_layout_file(path: str | Path, names: list[str], max_objects: int) -> list[dict]:
    """A --layout JSON file: one layout or a list of them, each
    {"caption": "...", "objects": [{"label": "red circle" or 3, "box": [x, y, w, h]}, ...]},
    boxes normalised to the image. Returns [{"caption", "boxes" (M, 4), "labels" (M,)}], padded."""
    import json
    path = Path(path)
    if not path.is_file():
        raise GanstackError(f"--layout {path}: file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise GanstackError(f"--layout {path}: not JSON ({e}); write "
                            '{"caption": "...", "objects": [{"label": "...", "box": [x, y, w, h]}]}') from None
    return parse_layouts(data, names, max_objects, f"--layout {path}")


def parse_layouts(data, names: list[str], max_objects: int, source: str = "layout") -> list[dict]:
    """Layouts already read from JSON (a --layout file's, or an API request's); errors name `source`."""
    layouts = data if isinstance(data, list) else [data]
    out = []
    for n, layout in enumerate(layouts):
        where = f"{source}: layout {n}"
        if not isinstance(layout, dict) or not isinstance(layout.get("caption"), str) or not layout["caption"].strip():
            raise GanstackError(f"{where}: needs a \"caption\" string and an \"objects\" list")
        objects = layout.get("objects", [])
        if not isinstance(objects, list) or len(objects) > max_objects:
            raise GanstackError(f"{where}: \"objects\" must be a list of at most MAX_OBJECTS={max_objects} objects")
        boxes, labels = np.full((max_objects, 4), -1, np.float32), np.full(max_objects, -1, np.int64)
        for k, obj in enumerate(objects):
            label = obj.get("label") if isinstance(obj, dict) else None
            if isinstance(label, str) and label in names:
                label = names.index(label)
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(names):
                raise GanstackError(f"{where} object {k}: unknown label {label!r}; use a class number 0.."
                                    f"{len(names) - 1} or a name such as {names[0]!r}")
            box = obj.get("box")
            if (not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, (int, float)) for v in box)
                    or not (box[0] >= 0 and box[1] >= 0 and box[2] > 0 and box[3] > 0
                            and box[0] + box[2] <= 1 + SLACK and box[1] + box[3] <= 1 + SLACK)):
                raise GanstackError(f"{where} object {k}: box {box!r} outside [0, 1]; give [x, y, w, h] normalised "
                                    "to the image, w and h > 0")
            boxes[k], labels[k] = np.clip(box, 0, 1), label
        out.append({"caption": layout["caption"].strip(), "boxes": boxes, "labels": labels})
    return out
