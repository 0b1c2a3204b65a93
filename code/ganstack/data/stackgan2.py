"""Readers of StackGAN++'s on-disk formats (the authors' code/datasets.py).

Text-conditional, with the embeddings the authors ship (birds, flowers):
  DATA_DIR/{train,test}/filenames.pickle            image keys
  DATA_DIR/{train,test}/class_info.pickle           class id per key (optional)
  DATA_DIR/{train,test}/char-CNN-RNN-embeddings.pickle   (N, captions, 1024), Python 2 pickles;
      EMBEDDING_TYPE cnn-gru: char-CNN-GRU-embeddings.pickle; skip-thought: skip-thought-embeddings.pickle
  DATA_DIR/CUB_200_2011/images/<key>.jpg + bounding boxes (birds), else DATA_DIR/images/<key>.jpg
  DATA_DIR/text/<key>.txt                           captions (optional; shown beside samples)
Text from the framework's DAMSM encoder instead (EMBEDDING_TYPE: damsm) reads AttnGAN's layout
(data/attngan.py) and so takes free text.

Unconditional, found by what DATA_DIR holds (the first that applies):
  LSUN lmdb     DATA_DIR/<DATASET_NAME>_<split>_lmdb/ (or DATA_DIR itself): key -> encoded image
                (webp as LSUN ships, or any format PIL reads); the test split reads _val_ when
                there is no _test_
  keys layout   DATA_DIR/<split>/filenames.pickle: the images of an AttnGAN/StackGAN folder, no text
  image folder  DATA_DIR/<split>/<class>/*.jpg (ImageNet-style; the test split reads val/ when
                there is no test/)

Every sample is the authors' pyramid: the image (birds: cropped to 1.5x its box) enlarged to 76/64
of the last stage's size and randomly cropped back, flipped at random (training), then resized for
each earlier stage. Every random choice comes from the (index, seed) item of data.sampler.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import GanstackError
from .attngan import KeyedImages, fit_image, image_pyramid
from .pickles import load_pickle
from .sampler import unpack

EMBEDDING_FILES = {"cnn-rnn": "char-CNN-RNN-embeddings.pickle", "cnn-gru": "char-CNN-GRU-embeddings.pickle",
                   "skip-thought": "skip-thought-embeddings.pickle"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".webp")


def load_embeddings(path: Path, count: int) -> np.ndarray:
    """(N, captions, D) float32 from a StackGAN embedding pickle (a list of (captions, D) arrays
    or one array), checked against the split's N images."""
    raw = load_pickle(path)
    try:
        arr = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError):
        raise GanstackError(f"{path}: expected one (captions, dim) array of embeddings per image, got "
                            f"{type(raw).__name__} of unequal rows") from None
    if arr.ndim == 2:    # one embedding per image
        arr = arr[:, None, :]
    if arr.ndim != 3 or arr.shape[0] != count or arr.shape[1] == 0:
        raise GanstackError(f"{path}: holds embeddings of shape {tuple(arr.shape)}; expected ({count}, captions, dim) "
                            f"for the {count} images of filenames.pickle")
    if not np.isfinite(arr).all():
        raise GanstackError(f"{path}: holds NaN or infinite values; re-create the embeddings")
    return arr


def read_captions(data_dir: Path, key: str) -> list[str]:
    path = data_dir / "text" / f"{key}.txt"
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]


class EmbeddingImageDataset(KeyedImages):
    """TextDataset: the image pyramid, one of its caption embeddings (random when training, the
    first otherwise) and, when training, the pyramid of a mismatched image (another class's; the
    authors draw a second time when the first draw shares the class)."""

    def __init__(self, data_dir: str | Path, split: str, *, embedding_type: str, image_sizes: list[int],
                 augment: bool, flip: bool, crop: bool = True, wrong_image: bool = False):
        super().__init__(data_dir, split, image_sizes=image_sizes, augment=augment, flip=flip, crop=crop)
        path = self.data_dir / split / EMBEDDING_FILES[embedding_type]
        if not path.is_file():
            raise GanstackError(f"{path}: not found; EMBEDDING_TYPE={embedding_type} reads the authors' embedding "
                                "pickles (or set EMBEDDING_TYPE: damsm with TRAIN.NET_E for captions in AttnGAN's layout)")
        self.embeddings = load_embeddings(path, len(self.keys))
        self.dim = self.embeddings.shape[2]
        self.captions_per_image = self.embeddings.shape[1]
        self.wrong_image = wrong_image
        self.random_caption = augment

    def captions_of(self, index: int) -> list[str]:
        """The image's captions from text/<key>.txt, or placeholders naming the embedding."""
        texts = read_captions(self.data_dir, self.keys[index])
        if len(texts) < self.captions_per_image:
            texts += [f"{self.keys[index]} #{k}" for k in range(len(texts), self.captions_per_image)]
        return texts[:self.captions_per_image]

    def wrong_index(self, index: int, rng: np.random.Generator) -> int:
        wrong = int(rng.integers(len(self)))
        if self.class_ids[wrong] == self.class_ids[index]:
            wrong = int(rng.integers(len(self)))
        return wrong

    def __getitem__(self, item):
        index, seed = unpack(item)
        rng = np.random.default_rng(seed)
        current = index
        try:
            sample = {"images": self.load_images(index, rng)}
            if self.wrong_image:
                current = self.wrong_index(index, rng)
                sample["wrong_images"] = self.load_images(current, rng)
        except (OSError, ValueError, SyntaxError) as e:
            warnings.warn(f"{self.image_path(current)}: unreadable image skipped ({e})", stacklevel=2)
            return None
        sent = int(rng.integers(self.captions_per_image)) if self.random_caption else 0
        sample.update(embedding=torch.from_numpy(self.embeddings[index, sent]), sent_ix=sent, index=index,
                      class_id=int(self.class_ids[index]))
        return sample


class _Pyramids(torch.utils.data.Dataset):
    """Unconditional readers: subclasses say how many images there are and how to open one."""

    def __init__(self, *, image_sizes: list[int], augment: bool, flip: bool, crop: bool):
        self.image_sizes = list(image_sizes)
        self.augment, self.flip, self.crop = augment, flip, crop

    def open(self, index: int) -> Image.Image:
        raise NotImplementedError

    def name(self, index: int) -> str:
        raise NotImplementedError

    def load_images(self, index: int, rng: np.random.Generator) -> list[torch.Tensor]:
        img = fit_image(self.open(index).convert("RGB"), self.image_sizes[-1], augment=self.augment,
                        flip=self.flip, rng=rng, crop=self.crop)
        return image_pyramid(img, self.image_sizes)

    def __getitem__(self, item):
        index, seed = unpack(item)
        try:
            images = self.load_images(index, np.random.default_rng(seed))
        except (OSError, ValueError, SyntaxError) as e:
            warnings.warn(f"{self.name(index)}: unreadable image skipped ({e})", stacklevel=2)
            return None
        return {"images": images, "index": index}


class LsunDataset(_Pyramids):
    """LSUNClass: an lmdb whose values are encoded images; keys in the database's order."""

    def __init__(self, db_path: str | Path, **kwargs):
        super().__init__(**kwargs)
        import lmdb
        self.db_path = Path(db_path)
        try:
            env = lmdb.open(str(self.db_path), readonly=True, lock=False, readahead=False, meminit=False,
                            subdir=self.db_path.is_dir())
        except lmdb.Error as e:
            raise GanstackError(f"{self.db_path}: not a readable lmdb ({e}); LSUN ships <category>_<split>_lmdb "
                                "folders holding data.mdb") from None
        with env.begin(write=False) as txn:
            self.keys = list(txn.cursor().iternext(keys=True, values=False))
        env.close()
        if not self.keys:
            raise GanstackError(f"{self.db_path}: the lmdb holds no images")
        self._env = None   # opened in each worker process: an lmdb handle does not survive a fork

    def __getstate__(self):
        return {**self.__dict__, "_env": None}

    def __len__(self) -> int:
        return len(self.keys)

    def name(self, index: int) -> str:
        return f"{self.db_path}[{self.keys[index].decode('latin-1')}]"

    def open(self, index: int) -> Image.Image:
        if self._env is None:
            import lmdb
            self._env = lmdb.open(str(self.db_path), readonly=True, lock=False, readahead=False, meminit=False,
                                  max_readers=1, subdir=self.db_path.is_dir())
        with self._env.begin(write=False) as txn:
            value = txn.get(self.keys[index])
        if value is None:
            raise OSError("key vanished from the database")
        return Image.open(io.BytesIO(value))


class ImageFolderDataset(_Pyramids):
    """ImageFolder: every image under <root>/<class>/ (sorted classes, then sorted paths)."""

    def __init__(self, root: str | Path, **kwargs):
        super().__init__(**kwargs)
        self.root = Path(root)
        classes = sorted(d for d in self.root.iterdir() if d.is_dir())
        found = [(p, k) for k, d in enumerate(classes) for p in sorted(d.rglob("*"))
                 if p.suffix.lower() in IMAGE_SUFFIXES]
        self.paths, self.class_ids = [p for p, _ in found], [k for _, k in found]
        if not self.paths:
            raise GanstackError(f"{self.root}: no images in class folders (<class>/*.jpg); an image folder holds "
                                f"one folder per class ({', '.join(IMAGE_SUFFIXES)})")

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, index: int) -> str:
        return str(self.paths[index])

    def open(self, index: int) -> Image.Image:
        return Image.open(self.paths[index])


class KeyedImagesOnly(_Pyramids):
    """The images of an AttnGAN/StackGAN-layout folder without their text."""

    def __init__(self, data_dir: str | Path, split: str, **kwargs):
        super().__init__(**kwargs)
        self.images = KeyedImages(data_dir, split, **kwargs)

    def __len__(self) -> int:
        return len(self.images)

    def name(self, index: int) -> str:
        return str(self.images.image_path(index))

    def load_images(self, index: int, rng: np.random.Generator) -> list[torch.Tensor]:
        return self.images.load_images(index, rng)  # its box crop, jitter and flip


def _split_names(split: str) -> list[str]:
    return [split, "val"] if split == "test" else [split]


def unconditional_dataset(data_dir: str | Path, dataset_name: str, split: str, **kwargs) -> _Pyramids:
    """The reader for DATA_DIR's layout (see the module's docstring); kwargs: image_sizes, augment, flip, crop."""
    root = Path(data_dir)
    if not root.exists():
        raise GanstackError(f"DATA_DIR={root}: not found")
    for name in _split_names(split):
        db = root / f"{dataset_name}_{name}_lmdb"
        if (db / "data.mdb").is_file():
            return LsunDataset(db, **kwargs)
    if (root / "data.mdb").is_file():
        return LsunDataset(root, **kwargs)
    if (root / split / "filenames.pickle").is_file():
        return KeyedImagesOnly(root, split, **kwargs)
    for name in _split_names(split):
        if (root / name).is_dir() and any(d.is_dir() for d in (root / name).iterdir()):
            return ImageFolderDataset(root / name, **kwargs)
    raise GanstackError(f"DATA_DIR={root}: no images for the {split} split; an unconditional StackGAN++ reads an "
                        f"LSUN lmdb ({dataset_name}_{split}_lmdb/), an AttnGAN-layout folder ({split}/filenames.pickle "
                        f"+ images/) or class folders ({split}/<class>/*.jpg)")
