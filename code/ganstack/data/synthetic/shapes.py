"""The embedded "shapes" dataset: coloured geometric objects, at three levels of difficulty.

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

Levels (recorded in meta.json, so judges and reference statistics stay apart):
  single   one object, large for the canvas, on a plain neutral background:
           the CPU proving ground where a generator must visibly learn colour,
           shape and place
  scenes   1-3 objects, each wholly inside its own cell of a 3x3 grid (never
           overlapping), on plain, gradient, textured or grainy backgrounds
           (sets written before levels existed are this level)
  crowded  3-8 smaller objects, up to two per cell, touching and partly
           overlapping (later ones in front), 128 px by default: for OP-GAN
           and GPU runs
The grid cell holding an object's centre names its position in the captions.
Scenes are drawn at 4x resolution and box-filtered down, so small images
stay clean. Every image draws from its own generator seeded by
(seed, index), so a set is byte-identical for a seed and level.
"""
from __future__ import annotations

import colorsys
import json
import math
from dataclasses import dataclass
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
CAPTIONS_PER_IMAGE = 10
SUPERSAMPLE = 4


# scenes draws its diameters as fractions of a grid cell, with the arithmetic sets had before levels
_SCENES_CELL_DIAMETER = {"small": (0.48, 0.6), "large": (0.82, 0.95)}


@dataclass(frozen=True)
class Level:
    name: str
    min_objects: int
    max_objects: int           # rows of bboxes.pickle / labels.pickle
    default_size: int          # px, when --size is not given
    max_caption_words: int
    plain_background: bool
    # object diameter as a fraction of the image side, per size word
    diameter: dict


LEVELS = {
    "single": Level("single", 1, 1, 64, 24, True, {"small": (0.3, 0.36), "large": (0.44, 0.52)}),
    # scenes: 0.48-0.6 and 0.82-0.95 of a grid cell (a third of the side), as before levels existed
    "scenes": Level("scenes", 1, 3, 64, 24, False,
                    {k: (lo / 3, hi / 3) for k, (lo, hi) in _SCENES_CELL_DIAMETER.items()}),
    "crowded": Level("crowded", 3, 8, 128, 64, False, {"small": (0.13, 0.17), "large": (0.22, 0.27)}),
}
DEFAULT_LEVEL = "scenes"
# The scenes level, for code that knows no other (kept names).
MAX_OBJECTS = LEVELS["scenes"].max_objects
MAX_CAPTION_WORDS = LEVELS["scenes"].max_caption_words


def default_dir(level: str) -> str:
    """Where `ganstack prepare shapes --level LEVEL` writes by default."""
    return "data/shapes" if level == "scenes" else f"data/shapes_{level}"


def get_level(name: str) -> Level:
    if name not in LEVELS:
        raise GanstackError(f"shapes: unknown level {name!r}; use one of {', '.join(LEVELS)}")
    return LEVELS[name]

_RGB = {"red": (220, 35, 35), "green": (35, 170, 45), "blue": (35, 75, 230),
        "yellow": (240, 215, 30), "purple": (175, 45, 210), "cyan": (30, 205, 215)}

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
def sample_scene(rng: np.random.Generator, level: str = DEFAULT_LEVEL) -> list[dict]:
    """The level's objects {shape, colour, size, position}: one per grid cell, or up to two (crowded)."""
    spec = get_level(level)
    n = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    if level == "crowded":
        cells = rng.permutation(np.repeat(np.arange(9), 2))[:n]
    else:
        cells = rng.choice(9, size=n, replace=False)
    return [{"shape": SHAPES[int(rng.integers(len(SHAPES)))], "colour": COLOURS[int(rng.integers(len(COLOURS)))],
             "size": SIZES[int(rng.integers(len(SIZES)))], "position": POSITIONS[int(c)]} for c in cells]


def _neutral(rng: np.random.Generator, light: bool) -> np.ndarray:
    """A low-saturation colour, so a background never looks like an object colour."""
    value = rng.uniform(0.72, 0.95) if light else rng.uniform(0.08, 0.32)
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.15), value)) * 255.0


def _background(rng: np.random.Generator, size: int, plain: bool = False) -> np.ndarray:
    """float (size, size, 3): plain, gradient, smooth texture or grain (plain only, when asked)."""
    light = rng.random() < 0.6
    base = _neutral(rng, light)
    kind = 0 if plain else rng.integers(4)
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


def _centre(obj: dict, radius: float, spec: Level, rng: np.random.Generator, placed: list) -> tuple[float, float]:
    """Centre of an object (canvas units, side 1) in its named cell (single and crowded levels).

    single: near the cell's centre,
    moved inwards so the (large) object stays on the canvas. crowded: anywhere
    in the cell, redrawn (up to 50 times) while it would hide more than a
    third of an earlier object's diameter, so neighbours touch and overlap but
    every object stays recognisable.
    """
    row, col = divmod(POSITIONS.index(obj["position"]), 3)
    cell = 1 / 3
    if spec.name == "single":
        jitter = 0.04
        lo, hi = radius + 0.02, 1 - radius - 0.02
        return tuple(float(np.clip((k + 0.5) * cell + rng.uniform(-jitter, jitter), lo, hi)) for k in (col, row))
    for _attempt in range(50):
        cx, cy = (col + rng.random()) * cell, (row + rng.random()) * cell
        cx, cy = float(np.clip(cx, radius, 1 - radius)), float(np.clip(cy, radius, 1 - radius))
        if all(math.hypot(cx - px, cy - py) >= radius + pr - (2 / 3) * min(radius, pr) for px, py, pr in placed):
            break
    return cx, cy


def render_scene(objects: list[dict], size: int, rng: np.random.Generator,
                 level: str = DEFAULT_LEVEL) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """(RGB image, uint8 label map, float32 (n, 4) boxes [x, y, w, h] in [0, 1]) of one scene.

    Objects are drawn in order, later ones in front; the label map holds the
    visible object of each pixel, a box the whole object (hidden parts too).
    """
    spec = get_level(level)
    big = size * SUPERSAMPLE
    bg = np.clip(np.rint(_background(rng, size, spec.plain_background)), 0, 255).astype(np.uint8)
    # Nearest upsampling then box downsampling gives the background back exactly.
    canvas = Image.fromarray(bg.repeat(SUPERSAMPLE, 0).repeat(SUPERSAMPLE, 1))
    index = Image.new("L", (big, big), 0)
    draw, draw_index = ImageDraw.Draw(canvas), ImageDraw.Draw(index)
    boxes = np.zeros((len(objects), 4), np.float32)
    placed: list[tuple[float, float, float]] = []
    for i, obj in enumerate(objects):
        if spec.name == "scenes":  # the original arithmetic, in supersampled pixels: sets stay byte-identical
            row, col = divmod(POSITIONS.index(obj["position"]), 3)
            cell = big / 3
            radius = rng.uniform(*_SCENES_CELL_DIAMETER[obj["size"]]) * cell / 2
            slack = max(0.0, cell / 2 - radius - 1)
            cx, cy = ((col + 0.5) * cell + rng.uniform(-slack, slack), (row + 0.5) * cell + rng.uniform(-slack, slack))
        else:
            r = rng.uniform(*spec.diameter[obj["size"]]) / 2
            ux, uy = _centre(obj, r, spec, rng, placed)
            placed.append((ux, uy, r))
            cx, cy, radius = ux * big, uy * big, r * big
        rgb = tuple(int(v) for v in np.clip(np.array(_RGB[obj["colour"]]) + rng.integers(-12, 13, size=3), 0, 255))
        outline = _polygon(obj["shape"], rng)
        mask = Image.new("1", (big, big), 0)
        for d, fill in ((draw, rgb), (draw_index, i + 1), (ImageDraw.Draw(mask), 1)):
            if outline is None:
                d.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
            else:
                d.polygon([(cx + x * radius, cy + y * radius) for x, y in outline], fill=fill)
        # the box covers every pixel the whole object touches
        ys, xs = np.nonzero(np.asarray(mask).reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).any(axis=(1, 3)))
        boxes[i] = [xs.min() / size, ys.min() / size, (xs.max() + 1 - xs.min()) / size,
                    (ys.max() + 1 - ys.min()) / size]
    image = canvas.resize((size, size), Image.BOX)
    # A pixel belongs to the visible object covering at least half of it.
    index = np.asarray(index).reshape(size, SUPERSAMPLE, size, SUPERSAMPLE)
    labelmap = np.zeros((size, size), np.uint8)
    for i, obj in enumerate(objects):
        labelmap[(index == i + 1).mean(axis=(1, 3)) >= 0.5] = _class_of(obj) + 1
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


_COUNT_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight")


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
        return f"{_COUNT_WORDS[n - 1]} {'object' if n == 1 else 'objects'}: {body}"
    if style == 3:
        return f"{_pick(rng, ('an image with', 'a picture of', 'this image shows'))} {body}"
    if style == 4:
        return f"a scene with {body}"
    return body


def make_captions(objects: list[dict], rng: np.random.Generator, count: int = CAPTIONS_PER_IMAGE,
                  max_words: int = MAX_CAPTION_WORDS) -> list[str]:
    """`count` varied captions, each naming every object's size, colour, shape and position."""
    captions = []
    for _ in range(count):
        for _attempt in range(50):
            caption = _compose(objects, rng)
            if len(tokenize(caption)) <= max_words:
                break
        else:  # the most compact form always fits: n x (size colour shape row col) + 1 joiner
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
def _params(level: str, num_train: int, num_test: int, size: int, seed: int) -> dict:
    return {"dataset": "shapes", "version": VERSION, "level": level, "size": size, "num_train": num_train,
            "num_test": num_test, "seed": seed}


def level_of(meta: dict) -> str:
    """The level of a set's meta.json (sets written before levels existed are scenes)."""
    return meta.get("level", "scenes")


def load_meta(data_dir: str | Path) -> dict:
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise GanstackError(f"{path}: not found; {data_dir} is not a complete shapes set "
                            f"(run `ganstack prepare shapes --out {data_dir}`)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GanstackError(f"{path}: not valid JSON ({e}); delete the folder and prepare it again") from None
    if not isinstance(meta, dict):
        raise GanstackError(f"{path}: expected a JSON object, got {type(meta).__name__}; delete the folder "
                            "and prepare it again")
    return meta


def _write_sample(out: Path, key: str, image: Image.Image, labelmap: np.ndarray, captions: list[str]) -> None:
    with atomic_path(out / "images" / f"{key}.jpg") as tmp:
        image.save(tmp, format="JPEG", quality=95, subsampling=0)  # 4:4:4 keeps small colour shapes clean
    with atomic_path(out / "labelmaps" / f"{key}.png") as tmp:
        Image.fromarray(labelmap, mode="L").save(tmp, format="PNG")
    write_text_atomic(out / "text" / f"{key}.txt", "\n".join(captions) + "\n")


def prepare_shapes(out_dir: str | Path, *, level: str = DEFAULT_LEVEL, num_train: int = 2400, num_test: int = 600,
                   size: int | None = None, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None) -> Path:
    """Generate the set in `out_dir` (nothing to do when it is already there); returns the folder.

    Image number i (key s_<i>, train first) draws everything, its scene
    first, from ``np.random.default_rng([seed, i])``. `size` defaults to the
    level's (64 px; crowded 128). `progress(done, total)` is called after
    each image.
    """
    out = Path(out_dir)
    spec = get_level(level)
    size = spec.default_size if size is None else size
    if num_train < 1 or num_test < 1:
        raise GanstackError(f"shapes: need at least one train and one test image (got {num_train}, {num_test})")
    if size < 16:
        raise GanstackError(f"shapes: --size {size} is too small; use at least 16")
    params = _params(level, num_train, num_test, size, seed)
    if (out / "meta.json").is_file():
        meta = load_meta(out)
        have = {k: meta.get(k) for k in params}
        have["level"] = level_of(meta)
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
        boxes = np.full((count, spec.max_objects, 4), -1, np.float32)
        labels = np.full((count, spec.max_objects, 1), -1, np.int64)
        for i in range(count):
            rng = np.random.default_rng([seed, start + i])
            objects = sample_scene(rng, level)
            image, labelmap, obj_boxes = render_scene(objects, size, rng, level)
            key = f"s_{start + i:08d}"
            _write_sample(out, key, image, labelmap,
                          make_captions(objects, rng, max_words=spec.max_caption_words))
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
            "positions": list(POSITIONS), "num_classes": NUM_CLASSES, "max_objects": spec.max_objects,
            "captions_per_image": CAPTIONS_PER_IMAGE, "max_caption_words": spec.max_caption_words}
    write_text_atomic(out / "meta.json", json.dumps(meta, indent=2) + "\n")
    marker.unlink()
    return out
