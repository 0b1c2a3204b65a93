"""Conversions between on-disk formats (`ganstack convert`)."""
from __future__ import annotations

from pathlib import Path

from ..errors import GanstackError
from .attngan import load_class_ids, load_keys
from .embeddings import SentenceEmbedder
from .reed_h5 import write_reed_h5
from .text import load_or_build_captions


def attngan_to_reed_h5(data_dir: str | Path, out: str | Path, *, net_e: str | Path,
                       captions_per_image: int = 10, words_num: int = 24) -> int:
    """An AttnGAN-layout dataset (shapes, COCO, birds) as a Reed et al. HDF5 file.

    train and test keep their images; valid is written empty. Every caption is one
    example, its embedding the DAMSM sentence code from `net_e`; the image is stored
    as its original file bytes. The encoder path and vocabulary go into the file's
    attributes so that models trained on it can encode free text.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise GanstackError(f"{data_dir}: dataset folder not found")
    keys = {split: load_keys(data_dir, split) for split in ("train", "test")}
    captions = load_or_build_captions(data_dir, keys["train"], keys["test"], captions_per_image)
    embedder = SentenceEmbedder(net_e, captions.vocab, words_num)
    cub = data_dir / "CUB_200_2011" / "images"
    image_dir = cub if cub.is_dir() else data_dir / "images"

    def examples(split: str):
        split_caps = captions.split(split)
        codes = embedder.embed_all(split_caps)
        class_ids = load_class_ids(data_dir, split, len(keys[split]))
        for i, key in enumerate(keys[split]):
            path = image_dir / f"{key}.jpg"
            try:
                image_bytes = path.read_bytes()
            except OSError as e:
                raise GanstackError(f"{path}: unreadable ({e})") from None
            class_name = key.split("/")[0] if "/" in key else f"{int(class_ids[i]):06d}"
            for c in range(captions_per_image):
                j = i * captions_per_image + c
                yield {"name": key.replace("/", "_"), "image_bytes": image_bytes, "embedding": codes[j].numpy(),
                       "class": class_name, "caption": captions.vocab.decode(split_caps[j])}

    words = [captions.vocab.ixtoword[i] for i in range(1, len(captions.vocab))]
    return write_reed_h5(out, {"train": examples("train"), "test": examples("test")},
                         attrs={"text_encoder": str(net_e), "vocabulary": words})
