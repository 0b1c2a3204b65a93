"""The embedded "shapes" dataset: 1-3 coloured geometric objects per scene.

Written in the AttnGAN/COCO layout plus OP-GAN's box files, so the real
readers read it unchanged:

    out_dir/images/<key>.jpg              RGB, quality 95
    out_dir/text/<key>.txt                10 captions, one per line
    out_dir/labelmaps/<key>.png           'L': 0 background, class_id + 1 per object pixel
    out_dir/{train,test}/filenames.pickle keys "s_00000012"
    out_dir/{train,test}/class_info.pickle one id per image for its sorted multiset of classes
    out_dir/{train,test}/bboxes.pickle    float32 (N, 3, 4) [x, y, w, h] in [0, 1], -1 padding
    out_dir/{train,test}/labels.pickle    int64 (N, 3, 1) class ids, -1 padding
    out_dir/meta.json                     written last: its presence means the set is complete

The canvas is a 3x3 grid; each object lies wholly inside its own cell (so
objects never overlap and the cell names its position in the captions).
Scenes are drawn at 4x resolution and box-filtered down, so small images
stay clean. Every image draws from its own generator seeded by
(seed, index), so a set is byte-identical for a seed.
"""
from __future__ import annotations

import colorsys
import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from ...errors import GanstackError
from ...io import atomic_path, write_text_atomic
from ..pickles import dump_pickle
from ..text import tokenize

VERSION = 1
SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
COLOURS = ("red", "green", "blue", "yellow", "purple", "cyan")
SIZES = ("small", "large")
# Cell index = row * 3 + col.
POSITIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")
NUM_CLASSES = len(SHAPES) * len(COLOURS)
MAX_OBJECTS = 3
CAPTIONS_PER_IMAGE = 10
MAX_CAPTION_WORDS = 24
SUPERSAMPLE = 4

_RGB = {"red": (220, 35, 35), "green": (35, 170, 45), "blue": (35, 75, 230),
        "yellow": (240, 215, 30), "purple": (175, 45, 210), "cyan": (30, 205, 215)}
# Diameter of an object as a fraction of its grid cell.
_SIZE_RANGE = {"small": (0.48, 0.6), "large": (0.82, 0.95)}

# Caption vocabulary: canonical name -> words that name it (the first is the usual one).
SHAPE_WORDS = {"circle": ("circle", "disc"), "square": ("square", "block"), "triangle": ("triangle",),
               "star": ("star",), "cross": ("cross", "plus"), "diamond": ("diamond", "rhombus")}
COLOUR_WORDS = {"red": ("red",), "green": ("green",), "blue": ("blue",), "yellow": ("yellow",),
                "purple": ("purple", "violet"), "cyan": ("cyan", "turquoise")}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
_ROW_WORDS = {0: ("top", "upper"), 2: ("bottom", "lower")}
_COL_WORDS = {0: ("left",), 2: ("right",)}
_CENTRE_WORDS = ("centre", "center", "middle")

# word -> (kind, canonical value), for parse_caption
_LEXICON: dict[str, tuple[str, object]] = {
    word: (kind, value)
    for kind, table in (("shape", SHAPE_WORDS), ("colour", COLOUR_WORDS), ("size", SIZE_WORDS),
                        ("row", _ROW_WORDS), ("col", _COL_WORDS))
    for value, words in table.items() for word in words}
_LEXICON.update({word: ("centre", None) for word in _CENTRE_WORDS})


def class_id(shape_idx: int, colour_idx: int) -> int:
    return shape_idx * len(COLOURS) + colour_idx


def class_name(c: int) -> str:
    """e.g. 'red circle'."""
    return f"{COLOURS[c % len(COLOURS)]} {SHAPES[c // len(COLOURS)]}"


def multiset_id(classes) -> int:
    """One id per sorted multiset of classes: its digits (class + 1) in base NUM_CLASSES + 1."""
    return sum((c + 1) * (NUM_CLASSES + 1) ** i for i, c in enumerate(sorted(int(c) for c in classes)))


# ------------------------------------------------------------------ scenes
def sample_scene(rng: np.random.Generator) -> list[dict]:
    """1-3 objects {shape, colour, size, position}, each in its own grid cell."""
    n = int(rng.integers(1, MAX_OBJECTS + 1))
    cells = rng.choice(9, size=n, replace=False)
    return [{"shape": SHAPES[int(rng.integers(len(SHAPES)))], "colour": COLOURS[int(rng.integers(len(COLOURS)))],
             "size": SIZES[int(rng.integers(len(SIZES)))], "position": POSITIONS[int(c)]} for c in cells]


def _neutral(rng: np.random.Generator, light: bool) -> np.ndarray:
    """A low-saturation colour, so a background never looks like an object colour."""
    value = rng.uniform(0.72, 0.95) if light else rng.uniform(0.08, 0.32)
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.15), value)) * 255.0


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """float (size, size, 3): plain, gradient, smooth texture or grain."""
    light = rng.random() < 0.6
    base = _neutral(rng, light)
    kind = rng.integers(4)
    if kind == 1:  # linear gradient between two neutral colours of the same lightness
        other = _neutral(rng, light)
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1) - 0.5
        t = np.clip((xx * math.cos(angle) + yy * math.sin(angle)) / math.sqrt(0.5) + 0.5, 0, 1)[..., None]
        return base * (1 - t) + other * t
    img = np.broadcast_to(base, (size, size, 3)).astype(np.float64)
    if kind == 2:  # smooth luminance blobs: coarse noise upsampled
        coarse = rng.normal(0, 14, size=(6, 6)).astype(np.float32)
        smooth = np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.BICUBIC))
        img = img + smooth[..., None]
    elif kind == 3:  # fine grain
        img = img + rng.normal(0, 7, size=(size, size, 1))
    return img


def _polygon(shape: str, rng: np.random.Generator) -> list[tuple[float, float]] | None:
    """Unit-circle outline of a shape (None for the circle), slightly rotated."""
    if shape == "square":
        h = 0.7
        pts, tilt = [(-h, -h), (h, -h), (h, h), (-h, h)], 12
    elif shape == "diamond":
        pts, tilt = [(0, -1), (0.68, 0), (0, 1), (-0.68, 0)], 8
    elif shape == "triangle":
        pts, tilt = [(0, -1), (0.866, 0.5), (-0.866, 0.5)], 12
    elif shape == "star":
        pts = [((1.0 if i % 2 == 0 else 0.46) * math.sin(i * math.pi / 5),
                -(1.0 if i % 2 == 0 else 0.46) * math.cos(i * math.pi / 5)) for i in range(10)]
        tilt = 15
    elif shape == "cross":
        a, w = 0.95, 0.32
        pts = [(-w, -a), (w, -a), (w, -w), (a, -w), (a, w), (w, w), (w, a), (-w, a), (-w, w), (-a, w), (-a, -w),
               (-w, -w)]
        tilt = 10
    else:
        return None
    t = math.radians(rng.uniform(-tilt, tilt))
    c, s = math.cos(t), math.sin(t)
    return [(x * c - y * s, x * s + y * c) for x, y in pts]  # every point stays inside the unit circle


def render_scene(objects: list[dict], size: int,
                 rng: np.random.Generator) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """(RGB image, uint8 label map, float32 (n, 4) boxes [x, y, w, h] in [0, 1]) of one scene."""
    big = size * SUPERSAMPLE
    bg = np.clip(np.rint(_background(rng, size)), 0, 255).astype(np.uint8)
    # Nearest upsampling then box downsampling gives the background back exactly.
    canvas = Image.fromarray(bg.repeat(SUPERSAMPLE, 0).repeat(SUPERSAMPLE, 1))
    index = Image.new("L", (big, big), 0)
    draw, draw_index = ImageDraw.Draw(canvas), ImageDraw.Draw(index)
    cell = big / 3
    for i, obj in enumerate(objects):
        row, col = divmod(POSITIONS.index(obj["position"]), 3)
        radius = rng.uniform(*_SIZE_RANGE[obj["size"]]) * cell / 2
        slack = max(0.0, cell / 2 - radius - 1)
        cx, cy = (col + 0.5) * cell + rng.uniform(-slack, slack), (row + 0.5) * cell + rng.uniform(-slack, slack)
        rgb = tuple(int(v) for v in np.clip(np.array(_RGB[obj["colour"]]) + rng.integers(-12, 13, size=3), 0, 255))
        outline = _polygon(obj["shape"], rng)
        for d, fill in ((draw, rgb), (draw_index, i + 1)):
            if outline is None:
                d.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
            else:
                d.polygon([(cx + x * radius, cy + y * radius) for x, y in outline], fill=fill)
    image = canvas.resize((size, size), Image.BOX)
    # A pixel belongs to an object when the object covers at least half of it.
    index = np.asarray(index).reshape(size, SUPERSAMPLE, size, SUPERSAMPLE)
    labelmap = np.zeros((size, size), np.uint8)
    boxes = np.zeros((len(objects), 4), np.float32)
    for i, obj in enumerate(objects):
        hit = index == i + 1
        labelmap[hit.mean(axis=(1, 3)) >= 0.5] = _class_of(obj) + 1
        ys, xs = np.nonzero(hit.any(axis=(1, 3)))  # the box covers every pixel the object touches
        boxes[i] = [xs.min() / size, ys.min() / size, (xs.max() + 1 - xs.min()) / size,
                    (ys.max() + 1 - ys.min()) / size]
    return image, labelmap, boxes


def _class_of(obj: dict) -> int:
    return class_id(SHAPES.index(obj["shape"]), COLOURS.index(obj["colour"]))


# ------------------------------------------------------------------ captions
def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def _position_phrase(position: str, rng: np.random.Generator) -> str:
    row, col = divmod(POSITIONS.index(position), 3)
    if row == 1 and col == 1:
        return _pick(rng, ("in the centre", "in the middle", "at the center", "in the centre of the image"))
    if row != 1 and col != 1:
        place = f"{_pick(rng, _ROW_WORDS[row])} {_COL_WORDS[col][0]}"
        return _pick(rng, (f"in the {place}", f"at the {place}", f"in the {place} corner", place))
    if row == 1:
        side = _COL_WORDS[col][0]
        return _pick(rng, (f"on the {side}", f"at the {side}", f"on the {side} side", f"middle {side}"))
    edge = _ROW_WORDS[row][0]
    return _pick(rng, (f"at the {edge}", f"near the {edge}", f"at the {edge} centre", f"in the {edge} middle"))


def _object_phrase(obj: dict, rng: np.random.Generator) -> str:
    size, colour, shape = (_pick(rng, SIZE_WORDS[obj["size"]]), _pick(rng, COLOUR_WORDS[obj["colour"]]),
                           _pick(rng, SHAPE_WORDS[obj["shape"]]))
    article = "one" if rng.random() < 0.15 else "a"
    if rng.random() < 0.2:
        return f"{article} {size} {shape} in {colour}"
    return f"{article} {size} {colour} {shape}"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _compose(objects: list[dict], rng: np.random.Generator) -> str:
    order = rng.permutation(len(objects)) if rng.random() < 0.5 else range(len(objects))
    objs = [objects[i] for i in order]
    n = len(objs)
    style = int(rng.integers(6))
    if style == 5:  # position first: "in the top left a small red circle and at the bottom ..."
        parts = [f"{_position_phrase(o['position'], rng)} {'there is ' if rng.random() < 0.3 else ''}"
                 f"{_object_phrase(o, rng)}" for o in objs]
        return _join(parts)
    body = _join([f"{_object_phrase(o, rng)} {_position_phrase(o['position'], rng)}" for o in objs])
    if style == 1:
        return f"there is {body}"
    if style == 2:
        return f"{('one object', 'two objects', 'three objects')[n - 1]}: {body}"
    if style == 3:
        return f"{_pick(rng, ('an image with', 'a picture of', 'this image shows'))} {body}"
    if style == 4:
        return f"a scene with {body}"
    return body


def make_captions(objects: list[dict], rng: np.random.Generator, count: int = CAPTIONS_PER_IMAGE) -> list[str]:
    """`count` varied captions, each naming every object's size, colour, shape and position."""
    captions = []
    for _ in range(count):
        for _attempt in range(50):
            caption = _compose(objects, rng)
            if len(tokenize(caption)) <= MAX_CAPTION_WORDS:
                break
        else:  # the most compact form always fits: 3 x (size colour shape row col) + 2 joiners
            caption = _join([f"{o['size']} {o['colour']} {o['shape']} {o['position']}" for o in objects])
        captions.append(caption)
    return captions


def parse_caption(text: str) -> list[dict]:
    """The objects a caption names: [{"shape", "colour", "size", "position"}], canonical names.

    The inverse of the caption templates. Words of one object are contiguous;
    a repeated attribute kind (a second colour, shape, size or position)
    starts the next object, so both "a small red circle in the top left" and
    "in the top left a small red circle" parse. Attributes a free-text caption
    leaves out are None; an object that names no shape is an error.
    """
    items: list[tuple[str, str]] = []
    run: dict[str, object] | None = None  # consecutive position words form one position
    for token in tokenize(text):
        kind, value = _LEXICON.get(token, (None, None))
        if kind in ("row", "col", "centre"):
            run = run if run is not None else {}
            if kind != "centre":
                run[kind] = value
            continue
        if run is not None:
            items.append(("position", POSITIONS[run.get("row", 1) * 3 + run.get("col", 1)]))
            run = None
        if kind is not None:
            items.append((kind, value))
    if run is not None:
        items.append(("position", POSITIONS[run.get("row", 1) * 3 + run.get("col", 1)]))
    objects: list[dict] = []
    for kind, value in items:
        if not objects or objects[-1][kind] is not None:
            objects.append({"shape": None, "colour": None, "size": None, "position": None})
        objects[-1][kind] = value
    for obj in objects:
        if obj["shape"] is None:
            raise GanstackError(f"caption {text!r}: an object names no shape; use one of {', '.join(SHAPES)}")
    return objects


# ------------------------------------------------------------------ writing
def _params(num_train: int, num_test: int, size: int, seed: int) -> dict:
    return {"dataset": "shapes", "version": VERSION, "size": size, "num_train": num_train, "num_test": num_test,
            "seed": seed}


def load_meta(data_dir: str | Path) -> dict:
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise GanstackError(f"{path}: not found; {data_dir} is not a complete shapes set "
                            f"(run `ganstack prepare shapes --out {data_dir}`)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise GanstackError(f"{path}: not valid JSON ({e}); delete the folder and prepare it again") from None


def _write_sample(out: Path, key: str, image: Image.Image, labelmap: np.ndarray, captions: list[str]) -> None:
    with atomic_path(out / "images" / f"{key}.jpg") as tmp:
        image.save(tmp, format="JPEG", quality=95, subsampling=0)  # 4:4:4 keeps small colour shapes clean
    with atomic_path(out / "labelmaps" / f"{key}.png") as tmp:
        Image.fromarray(labelmap, mode="L").save(tmp, format="PNG")
    write_text_atomic(out / "text" / f"{key}.txt", "\n".join(captions) + "\n")


def prepare_shapes(out_dir: str | Path, *, num_train: int = 2400, num_test: int = 600, size: int = 64,
                   seed: int = 0, progress: Callable[[int, int], None] | None = None) -> Path:
    """Generate the set in `out_dir` (nothing to do when it is already there); returns the folder.

    Image number i (key s_<i>, train first) draws everything, its scene
    first, from ``np.random.default_rng([seed, i])``. `progress(done, total)`
    is called after each image.
    """
    out = Path(out_dir)
    if num_train < 1 or num_test < 1:
        raise GanstackError(f"shapes: need at least one train and one test image (got {num_train}, {num_test})")
    if size < 16:
        raise GanstackError(f"shapes: --size {size} is too small; use at least 16")
    params = _params(num_train, num_test, size, seed)
    if (out / "meta.json").is_file():
        meta = load_meta(out)
        have = {k: meta.get(k) for k in params}
        if have == params:
            return out
        diff = ", ".join(f"{k} {have[k]} (asked {params[k]})" for k in params if have[k] != params[k])
        raise GanstackError(f"{out}: holds a shapes set with other parameters: {diff}; delete the folder or "
                            "choose another DATA_DIR / --out")
    marker = out / ".shapes-in-progress"
    if out.is_dir() and any(out.iterdir()) and not marker.is_file():
        raise GanstackError(f"{out}: not empty and holds no shapes set; choose an empty or new folder")
    write_text_atomic(marker, json.dumps(params) + "\n")
    (out / "captions.pickle").unlink(missing_ok=True)  # built by the reader from text/, stale if any

    total, done = num_train + num_test, 0
    for split, start, count in (("train", 0, num_train), ("test", num_train, num_test)):
        keys, classes = [], []
        boxes = np.full((count, MAX_OBJECTS, 4), -1, np.float32)
        labels = np.full((count, MAX_OBJECTS, 1), -1, np.int64)
        for i in range(count):
            rng = np.random.default_rng([seed, start + i])
            objects = sample_scene(rng)
            image, labelmap, obj_boxes = render_scene(objects, size, rng)
            key = f"s_{start + i:08d}"
            _write_sample(out, key, image, labelmap, make_captions(objects, rng))
            obj_classes = [_class_of(o) for o in objects]
            boxes[i, :len(objects)] = obj_boxes
            labels[i, :len(objects), 0] = obj_classes
            keys.append(key)
            classes.append(multiset_id(obj_classes))
            done += 1
            if progress is not None:
                progress(done, total)
        dump_pickle(keys, out / split / "filenames.pickle")
        dump_pickle(classes, out / split / "class_info.pickle")
        dump_pickle(boxes, out / split / "bboxes.pickle")
        dump_pickle(labels, out / split / "labels.pickle")

    meta = {**params, "shapes": list(SHAPES), "colours": list(COLOURS), "sizes": list(SIZES),
            "positions": list(POSITIONS), "num_classes": NUM_CLASSES, "max_objects": MAX_OBJECTS,
            "captions_per_image": CAPTIONS_PER_IMAGE}
    write_text_atomic(out / "meta.json", json.dumps(meta, indent=2) + "\n")
    marker.unlink()
    return out
