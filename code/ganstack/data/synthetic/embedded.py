"""The embedded datasets behind one small interface (shared/DESIGN.md, "Judges").

The CLI and evaluation look a config's DATASET_NAME up with `embedded(cfg)` and ask the answer what
it offers; they never branch on a dataset's name. An embedded dataset says:
  prepare(cfg)      write the data where the config points when it is missing (rank 0 writes,
                    other torchrun ranks wait for its meta.json, which is written last)
  ready(cfg)        its data is on disk, so its judges can be asked
  caption_judge(cfg, device)
                    text-to-image: an extractor whose "pool" features give domain FID/KID/IS and
                    whose "probs" (and "boxes", where it locates objects) give object accuracy, or None
  object_accuracy(cfg, split, judged, indices)
                    that judge's object accuracy from its outputs `judged` for images drawn for the
                    split's images `indices` (None: every real image of the split, in order)
  real_report(cfg, split, device)
                    the judge's scores of the real split alone (a config without a generator: DAMSM)
  pair_scores(cfg, inputs, outputs, targets, device)
                    image-to-image: segmenter scores of translated images against their inputs,
                    or None where the dataset (or the config's direction) has no segmenter
  protocol_images(cfg)
                    images generated for IS/FID when EVAL.NUM_IMAGES is 0
A real dataset (CUB, COCO, facades...) is not registered: it offers no judges, nothing is
generated for it, and its published protocol's image count (30000 on birds, COCO, bedrooms) applies;
evaluation then reports what the standard pretrained networks give.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ...errors import GanstackError

SHAPES_DEFAULTS = {"num_train": 2400, "num_test": 600, "seed": 0}
FACES_DEFAULTS = {"num_train": 240, "num_test": 60, "per_identity": 10, "size": 128, "dir": "data/faces"}
# Images generated for IS/FID on the big real sets, as AttnGAN / OP-GAN / DM-GAN / StackGAN++ report them.
PROTOCOL_IMAGES = {"birds": 30000, "cub": 30000, "coco": 30000, "bedroom": 30000}


def _is_writer() -> bool:
    from ...engine.distributed import launch_rank
    return launch_rank() == 0


def wait_for(data_dir: Path) -> None:
    """Other torchrun ranks wait for rank 0's generator (meta.json is written last)."""
    deadline = time.time() + 1800
    while not (data_dir / "meta.json").is_file():
        if time.time() > deadline:
            raise GanstackError(f"{data_dir}: rank 0 did not finish preparing the embedded data in 30 min")
        time.sleep(1)


class EmbeddedDataset:
    """Defaults: generated data with a meta.json, and no judges."""

    name = ""

    def ready(self, cfg) -> bool:
        return (Path(cfg.DATA_DIR) / "meta.json").is_file()

    def prepare(self, cfg) -> None:
        if not self.ready(cfg) and _is_writer():
            self.generate(cfg)
        wait_for(Path(cfg.DATA_DIR))

    def generate(self, cfg) -> None:
        raise NotImplementedError

    def caption_judge(self, cfg, device):
        return None

    def object_accuracy(self, cfg, split: str, judged: dict, indices=None) -> dict | None:
        return None

    def real_report(self, cfg, split: str, device) -> dict:
        return {}

    def pair_scores(self, cfg, inputs, outputs_u8, targets, device) -> dict | None:
        return None

    def protocol_images(self, cfg) -> int:
        """Images generated for IS/FID when EVAL.NUM_IMAGES is 0 (0: every caption of the split once)."""
        return 0


class Shapes(EmbeddedDataset):
    """The shapes levels: captions, boxes and labels; the shapes judge scores objects and domain."""

    name = "shapes"

    def prepare(self, cfg) -> None:
        data_dir = Path(cfg.DATA_DIR)
        if data_dir.is_file():
            return  # a converted file (e.g. shapes.h5 for GAN-INT-CLS)
        if self.ready(cfg):
            from .shapes import default_dir, level_of, load_meta
            have = level_of(load_meta(data_dir))
            if have != cfg.SHAPES.LEVEL:
                raise GanstackError(f"{data_dir}: holds the shapes level {have!r} but the config asks SHAPES.LEVEL "
                                    f"{cfg.SHAPES.LEVEL!r}; point DATA_DIR at another folder "
                                    f"(e.g. {default_dir(cfg.SHAPES.LEVEL)}) or set SHAPES.LEVEL={have}")
            return
        super().prepare(cfg)

    def generate(self, cfg) -> None:
        prepare_shapes_level(Path(cfg.DATA_DIR), cfg)

    def _judge(self, cfg, device):
        from ...metrics.shapes_judge import load_or_train_judge
        return load_or_train_judge(cfg.DATA_DIR, device=str(device), seed=0)

    def caption_judge(self, cfg, device):
        if not self.ready(cfg):
            return None
        from ...metrics.shapes_judge import judge_cache_file
        from ...metrics.suite import JudgeFeatures
        segmenter = segmenter_file = None
        if cfg.EVAL.BOX_IOU:  # the level's segmenter locates the objects (trained once, cached as the judge)
            from ...metrics.shapes_segmenter import load_or_train_segmenter, segmenter_cache_file
            segmenter = load_or_train_segmenter(cfg.DATA_DIR, device=str(device))
            segmenter_file = segmenter_cache_file(cfg.DATA_DIR)
        return JudgeFeatures(self._judge(cfg, device), judge_cache_file(cfg.DATA_DIR), segmenter, segmenter_file)

    def object_accuracy(self, cfg, split: str, judged: dict, indices=None) -> dict | None:
        from ...data.pickles import load_pickle
        from ...metrics.shapes_judge import load_labels, score_predictions
        labels = load_labels(cfg.DATA_DIR, split)
        boxes = true_boxes = None
        if "boxes" in judged:
            boxes, true_boxes = judged["boxes"], np.asarray(load_pickle(Path(cfg.DATA_DIR) / split / "bboxes.pickle"))
        if indices is not None:
            labels = labels[indices]
            true_boxes = None if true_boxes is None else true_boxes[indices]
        return score_predictions(judged["probs"] > 0.5, labels, boxes, true_boxes)

    def real_report(self, cfg, split: str, device) -> dict:
        if not self.ready(cfg):
            return {}
        from ...metrics.shapes_judge import evaluate_real
        return {"object_accuracy_real": evaluate_real(self._judge(cfg, device), cfg.DATA_DIR, split=split)}


class ShapesPairs(EmbeddedDataset):
    """pix2pix pairs cut from a shapes level (label map | photo); the shapes segmenter gives the FCN-score."""

    name = "shapes_aligned"

    def prepare(self, cfg) -> None:
        data_dir = Path(cfg.DATA_DIR)
        if data_dir.is_file() or self.ready(cfg):
            return
        super().prepare(cfg)

    def generate(self, cfg) -> None:
        from .shapes import default_dir
        from .shapes_aligned import export_aligned
        data_dir = Path(cfg.DATA_DIR)
        scenes = data_dir.parent / Path(default_dir(cfg.SHAPES.LEVEL)).name
        if not (scenes / "meta.json").is_file():
            prepare_shapes_level(scenes, cfg)
        print(f"exporting label-map -> photo pairs of {scenes} into {data_dir} (first run only)", flush=True)
        export_aligned(scenes, data_dir)

    def pair_scores(self, cfg, inputs, outputs_u8, targets, device) -> dict | None:
        if not self.ready(cfg) or cfg.DATA.DIRECTION != "AtoB":
            return None  # the segmenter reads photos and scores them against label maps
        from ...metrics.translation import shapes_pair_scores
        return shapes_pair_scores(cfg, inputs, outputs_u8, targets, device)


class Photos(EmbeddedDataset):
    """High-resolution photos from pip packages (super-resolution); their judge is dataset-agnostic."""

    name = "photos"

    def generate(self, cfg) -> None:
        from .photos import prepare_photos
        print(f"preparing photos in {cfg.DATA_DIR} (first run only)", flush=True)
        prepare_photos(cfg.DATA_DIR)


class Faces(EmbeddedDataset):
    """Drawn faces with UTKFace names (face aging); the age judges read any UTKFace-named set."""

    name = "faces"

    def generate(self, cfg) -> None:
        from .faces import prepare_faces
        print(f"preparing faces in {cfg.DATA_DIR} (first run only)", flush=True)
        f = FACES_DEFAULTS
        prepare_faces(cfg.DATA_DIR, num_train=f["num_train"], num_test=f["num_test"], per_identity=f["per_identity"],
                      size=f["size"], seed=SHAPES_DEFAULTS["seed"])


def prepare_shapes_level(out: Path, cfg) -> None:
    from .shapes import prepare_shapes
    level = cfg.SHAPES.LEVEL
    print(f"preparing shapes ({level}) in {out} (first run only)", flush=True)
    prepare_shapes(out, level=level, num_train=cfg.SHAPES.NUM_TRAIN, num_test=cfg.SHAPES.NUM_TEST,
                   size=cfg.SHAPES.SIZE or None, seed=SHAPES_DEFAULTS["seed"])


class RealDataset(EmbeddedDataset):
    """Any dataset not generated here (CUB, COCO, facades...): nothing to write, no judges."""

    def ready(self, cfg) -> bool:
        return False

    def prepare(self, cfg) -> None:
        pass

    def protocol_images(self, cfg) -> int:
        return PROTOCOL_IMAGES.get(cfg.DATASET_NAME.lower(), 0)


DATASETS = {d.name: d for d in (Shapes(), ShapesPairs(), Photos(), Faces())}


def embedded(cfg) -> EmbeddedDataset:
    """The embedded dataset the config's DATASET_NAME names, or a real dataset that offers nothing."""
    return DATASETS.get(cfg.DATASET_NAME) or RealDataset()


def ensure_data(cfg) -> None:
    """Generate the embedded dataset the config points at when it is missing (nothing for real datasets)."""
    embedded(cfg).prepare(cfg)
