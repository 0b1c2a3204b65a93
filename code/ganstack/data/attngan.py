"""Reader of AttnGAN's on-disk layout (CUB birds, COCO, and our shapes).

DATA_DIR/
  captions.pickle                 built from text/ when missing (data/text.py)
  {train,test}/filenames.pickle   image keys
  {train,test}/class_info.pickle  optional class id per key (else one id per image, as COCO)
  text/<key>.txt                  captions, one per line
  images/<key>.jpg                COCO / shapes
  CUB_200_2011/images/<key>.jpg   birds, cropped to 1.5x the bounding box
  CUB_200_2011/{images,bounding_boxes}.txt

Every random choice of a sample (caption, crop, flip, word subset) comes from
a seed the sampler passes with the index, so a sample is the same whatever the
worker count and after resuming.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import GanstackError
from .pickles import load_pickle
from .sampler import unpack
from .text import CaptionSet, load_or_build_captions, pad_caption


def load_keys(data_dir: Path, split: str) -> list[str]:
    path = data_dir / split / "filenames.pickle"
    if not path.is_file():
        raise GanstackError(f"{path}: not found; DATA_DIR={data_dir} is not an AttnGAN-layout dataset "
                            "(run `ganstack prepare shapes` or point DATA_DIR at the data)")
    keys = load_pickle(path)
    if not isinstance(keys, (list, tuple)) or not all(isinstance(k, (str, bytes)) for k in keys):
        raise GanstackError(f"{path}: expected a list of image keys (strings), got {type(keys).__name__}; "
                            "re-create it with `ganstack prepare` or the dataset's own files")
    return [k.decode("latin-1") if isinstance(k, bytes) else k for k in keys]


def load_class_ids(data_dir: Path, split: str, n: int) -> np.ndarray:
    path = data_dir / split / "class_info.pickle"
    if not path.is_file():
        return np.arange(n)
    raw = load_pickle(path)
    try:
        ids = np.asarray(raw, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise GanstackError(f"{path}: expected a list of integer class ids, got {type(raw).__name__}") from None
    if len(ids) != n:
        raise GanstackError(f"{path}: has {len(ids)} class ids for {n} images in filenames.pickle")
    return ids


def load_cub_boxes(cub_dir: Path) -> dict[str, list[float]]:
    """key (class/name without .jpg) -> [x, y, w, h] in pixels."""
    names = (cub_dir / "images.txt").read_text().split("\n")
    boxes = (cub_dir / "bounding_boxes.txt").read_text().split("\n")
    names = dict(line.split()[:2] for line in names if line.strip())
    out = {}
    for line in boxes:
        parts = line.split()
        if parts:
            out[names[parts[0]].rsplit(".", 1)[0]] = [float(v) for v in parts[1:5]]
    return out


def crop_to_box(img: Image.Image, box: list[float]) -> Image.Image:
    """AttnGAN's birds crop: a square of 1.5x the box's longer side around its centre."""
    w, h = img.size
    r = int(max(box[2], box[3]) * 0.75)
    cx, cy = int((2 * box[0] + box[2]) / 2), int((2 * box[1] + box[3]) / 2)
    return img.crop((max(0, cx - r), max(0, cy - r), min(w, cx + r), min(h, cy + r)))


def fit_image(img: Image.Image, size: int, *, augment: bool, flip: bool, rng: np.random.Generator,
              crop: bool = True) -> Image.Image:
    """size x size. With augment: crop jitter (AttnGAN's and Reed et al.'s resize to 76/64 of
    the size and random size x size crop; crop=False resizes only, as the GAN-INT-CLS PyTorch
    port), then a random horizontal flip when flip. Without augment: a plain resize."""
    return fit_image_and_boxes(img, None, size, augment=augment, flip=flip, rng=rng, crop=crop)[0]


def fit_image_and_boxes(img: Image.Image, boxes: np.ndarray | None, size: int, *, augment: bool, flip: bool,
                        rng: np.random.Generator, crop: bool = True) -> tuple[Image.Image, np.ndarray | None]:
    """fit_image, and the same crop and flip applied to (M, 4) boxes [x, y, w, h] normalised to
    the image (OP-GAN's layouts): clipped to the crop window; a box cropped away has w or h 0."""
    if boxes is not None:
        boxes = boxes.astype(np.float64, copy=True)
    if augment and crop:
        load = int(size * 76 / 64)
        img = img.resize((load, load), Image.BILINEAR)
        x, y = rng.integers(0, load - size + 1, size=2)
        img = img.crop((int(x), int(y), int(x) + size, int(y) + size))
        if boxes is not None:
            x0 = np.clip((boxes[:, 0] * load - x) / size, 0, 1)
            y0 = np.clip((boxes[:, 1] * load - y) / size, 0, 1)
            x1 = np.clip(((boxes[:, 0] + boxes[:, 2]) * load - x) / size, 0, 1)
            y1 = np.clip(((boxes[:, 1] + boxes[:, 3]) * load - y) / size, 0, 1)
            boxes = np.stack([x0, y0, x1 - x0, y1 - y0], 1)
    elif img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    if augment and flip and rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
        if boxes is not None:
            boxes[:, 0] = 1 - boxes[:, 0] - boxes[:, 2]
    return img, boxes


def other_class_index(class_ids: np.ndarray, index: int, rng: np.random.Generator) -> int:
    """A random item of another class: the mismatched pair of matching-aware discriminators
    (any other item when there is a single class)."""
    others = np.flatnonzero(class_ids != class_ids[index])
    if len(others) == 0:
        others = np.delete(np.arange(len(class_ids)), index)
    return int(others[rng.integers(len(others))]) if len(others) else index


def nearest_other_class(codes: torch.Tensor, class_ids: np.ndarray, k: int, chunk: int = 512) -> np.ndarray:
    """(N, k) indices: for every item the k items of other classes whose codes are the most
    similar (cosine), nearest first. With a single class, any other item."""
    unit = torch.nn.functional.normalize(codes.float(), dim=1)
    classes = torch.as_tensor(np.asarray(class_ids))
    k = min(k, len(unit) - 1)
    rows = []
    for start in range(0, len(unit), chunk):
        sim = unit[start:start + chunk] @ unit.T
        same = classes[start:start + chunk, None] == classes[None, :]
        if bool((~same).any(dim=1).all()):
            sim = sim.masked_fill(same, -2.0)  # other classes first; same-class items only if too few
        idx = torch.arange(start, start + len(sim))
        sim[torch.arange(len(sim)), idx] = -3.0  # never the item itself
        rows.append(sim.topk(k, dim=1).indices)
    return torch.cat(rows).numpy() if rows else np.zeros((0, k), dtype=np.int64)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> float tensor in [-1, 1], CHW."""
    arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    return arr.float().div_(127.5).sub_(1.0)


def image_pyramid(img: Image.Image, sizes: list[int]) -> list[torch.Tensor]:
    """One tensor per size, the largest as it is and the others resized from it (bilinear), as
    StackGAN's and AttnGAN's loaders feed every stage."""
    top = sizes[-1]
    return [to_tensor(img if s == top else img.resize((s, s), Image.BILINEAR)) for s in sizes]


class KeyedImages(torch.utils.data.Dataset):
    """The images of a split named by filenames.pickle (and their class ids), read as AttnGAN's
    and StackGAN's loaders read them: CUB birds cropped around their bounding boxes, then the
    crop jitter and flip of training, then one tensor per stage size."""

    def __init__(self, data_dir: str | Path, split: str, *, image_sizes: list[int], augment: bool, flip: bool,
                 crop: bool = True):
        self.data_dir = Path(data_dir)
        if not self.data_dir.is_dir():
            raise GanstackError(f"DATA_DIR={self.data_dir}: folder not found")
        self.split = split
        self.keys = load_keys(self.data_dir, split)
        self.class_ids = load_class_ids(self.data_dir, split, len(self.keys))
        self.image_sizes = list(image_sizes)
        self.augment, self.flip, self.crop = augment, flip, crop  # crop: TRAIN.CROP_JITTER
        cub = self.data_dir / "CUB_200_2011"
        self.boxes = load_cub_boxes(cub) if (cub / "bounding_boxes.txt").is_file() else None
        self.image_dir = cub / "images" if self.boxes is not None else self.data_dir / "images"

    def __len__(self) -> int:
        return len(self.keys)

    def image_path(self, index: int) -> Path:
        return self.image_dir / f"{self.keys[index]}.jpg"

    def load_images(self, index: int, rng: np.random.Generator) -> list[torch.Tensor]:
        """One tensor per image size (AttnGAN's per-branch pyramid)."""
        return self.load_images_and_boxes(index, rng, None)[0]

    def load_images_and_boxes(self, index: int, rng: np.random.Generator, layout: np.ndarray | None
                              ) -> tuple[list[torch.Tensor], np.ndarray | None]:
        """The image pyramid, and (M, 4) normalised object boxes moved by the same crop and flip."""
        img = Image.open(self.image_path(index)).convert("RGB")
        if self.boxes is not None:
            img = crop_to_box(img, self.boxes[self.keys[index]])
        img, layout = fit_image_and_boxes(img, layout, self.image_sizes[-1], augment=self.augment, flip=self.flip,
                                          rng=rng, crop=self.crop)
        return image_pyramid(img, self.image_sizes), layout


class TextImageDataset(KeyedImages):
    """Images with their captions; one random caption of the image per sample.

    Items are ``(index, seed)`` pairs from data.sampler (a plain int index uses
    seed 0 and no augmentation randomness across calls).
    """

    def __init__(self, data_dir: str | Path, split: str, *, image_sizes: list[int], words_num: int,
                 captions_per_image: int, augment: bool, flip: bool, captions: CaptionSet | None = None,
                 wrong_image: bool = False, wrong_caption: bool = False, crop: bool = True):
        super().__init__(data_dir, split, image_sizes=image_sizes, augment=augment, flip=flip, crop=crop)
        if captions is None:
            other = load_keys(self.data_dir, "test" if split == "train" else "train")
            train_keys, test_keys = (self.keys, other) if split == "train" else (other, self.keys)
            captions = load_or_build_captions(self.data_dir, train_keys, test_keys, captions_per_image)
        self.captions = captions
        self.split_captions = captions.split(split)
        self.captions_per_image = captions_per_image
        self.words_num = words_num
        self.wrong_image = wrong_image  # add an image of another class (GAN-INT-CLS's mismatched pair)
        self.wrong_caption = wrong_caption  # add a caption of another class's image (AttnGAN's, with hard mismatches)
        self.partners: np.ndarray | None = None  # use_hard_mismatches: each item's nearest other-class items
        self.hard_fraction = 0.0
        self.random_caption = augment  # evaluation sets it to draw one random true caption per image

    @property
    def vocab(self):
        return self.captions.vocab

    def object_boxes(self, index: int, rng: np.random.Generator) -> np.ndarray | None:
        """Layout readers (OP-GAN's) return the item's (M, 4) boxes; this reader has none."""
        return None

    def layout_fields(self, index: int, boxes: np.ndarray) -> dict:
        """The sample's layout entries from its boxes after the crop and flip (layout readers)."""
        return {}

    def use_hard_mismatches(self, partners: np.ndarray, fraction: float) -> None:
        """Draw that fraction of the mismatched items from each item's row of `partners` (its
        nearest other-class items, nearest_other_class), the rest from every other class."""
        if len(partners) != len(self):
            raise GanstackError(f"{self.data_dir}: {len(partners)} rows of hard mismatches for {len(self)} images")
        self.partners, self.hard_fraction = partners, fraction

    def mismatched_index(self, index: int, rng: np.random.Generator) -> int:
        """The item whose image or caption makes the mismatched pair of item `index`."""
        if self.partners is not None and rng.random() < self.hard_fraction:
            row = self.partners[index]
            return int(row[rng.integers(len(row))])
        return other_class_index(self.class_ids, index, rng)

    def caption(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
        sent = int(rng.integers(self.captions_per_image)) if self.random_caption else 0
        ids, length = pad_caption(self.split_captions[index * self.captions_per_image + sent], self.words_num, rng)
        return ids, length, sent

    def encode(self, caption: str) -> tuple[torch.Tensor, int]:
        """Free text -> (padded word ids, length), as a training caption is fed."""
        ids, length = pad_caption(self.vocab.encode(caption), self.words_num, np.random.default_rng(0))
        return torch.from_numpy(ids), length

    def __getitem__(self, item):
        index, seed = unpack(item)
        rng = np.random.default_rng(seed)
        current = index
        try:
            images, boxes = self.load_images_and_boxes(index, rng, self.object_boxes(index, rng))
            if self.wrong_image:
                current = self.mismatched_index(index, rng)
                wrong = self.load_images(current, rng)  # one per image size, as "images"
        except (OSError, ValueError, SyntaxError) as e:
            # A damaged file must not kill an epoch: collate drops it and counts it.
            warnings.warn(f"{self.image_path(current)}: unreadable image skipped ({e})", stacklevel=2)
            return None
        ids, length, sent = self.caption(index, rng)
        sample = {"images": images, "caption": torch.from_numpy(ids), "cap_len": length,
                  "class_id": int(self.class_ids[index]), "index": index, "sent_ix": sent}
        if boxes is not None:
            sample.update(self.layout_fields(index, boxes))
        if self.wrong_image:
            sample["wrong_images"] = wrong
        if self.wrong_caption:
            other = self.mismatched_index(index, rng)
            sent = int(rng.integers(self.captions_per_image))
            ids, length = pad_caption(self.split_captions[other * self.captions_per_image + sent], self.words_num, rng)
            sample["wrong_caption"], sample["wrong_cap_len"] = torch.from_numpy(ids), length
        return sample


def image_codes(embedder, dataset: TextImageDataset) -> torch.Tensor:
    """(N, D): the mean sentence code of each image's captions (what hard mismatches compare)."""
    per_image = dataset.captions_per_image
    codes = embedder.embed_all(list(dataset.split_captions[:len(dataset) * per_image]))
    return codes.reshape(len(dataset), per_image, -1).mean(1)


def attach_hard_mismatches(dataset: TextImageDataset, embedder, fraction: float, k: int) -> None:
    """GAN.HARD_MISMATCH: the dataset draws that fraction of its mismatched pairs from the k
    other-class images whose captions the text encoder finds nearest (an image's caption set
    differing in one attribute), so a matching-aware D must check every attribute, not only
    the one that happens to differ most often between random pairs. Nothing to do when the
    fraction is 0 or the dataset draws no mismatched pairs (evaluation sets)."""
    if fraction <= 0 or not (dataset.wrong_image or dataset.wrong_caption):
        return
    dataset.use_hard_mismatches(nearest_other_class(image_codes(embedder, dataset), dataset.class_ids, k), fraction)


def collate(samples: list) -> dict:
    """Stack samples (tensors, lists of tensors, numbers), dropping unreadable ones (None)
    and counting them in 'skipped'."""
    good = [s for s in samples if s is not None]
    if not good:
        return {"skipped": len(samples), "size": 0}
    batch = {}
    for key, first in good[0].items():
        values = [s[key] for s in good]
        if isinstance(first, list):  # one tensor per image size
            batch[key] = [torch.stack([v[i] for v in values]) for i in range(len(first))]
        elif torch.is_tensor(first):
            batch[key] = torch.stack(values)
        else:
            batch[key] = torch.tensor(values)
    batch["skipped"] = len(samples) - len(good)
    batch["size"] = len(good)
    return batch
