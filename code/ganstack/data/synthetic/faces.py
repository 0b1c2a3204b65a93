"""The embedded "faces" set: procedural faces whose identity stays fixed while they age.

    out_dir/train/<age>_<gender>_<race>_<date>.jpg   UTKFace's file names (age in years, gender 0 male
    out_dir/test/<age>_<gender>_<race>_<date>.jpg    1 female, race 0-4 as UTKFace's); 128 px by default
    out_dir/identities.csv                           file, identity, age, gender, race, split
    out_dir/meta.json                                what made the set; written last

Each identity draws, once, everything that makes it itself: head shape, skin tone (by race), eye
colour, spacing and size, brows, nose, mouth and lips, hair colour and style, glasses, earrings, a
beard, where its age spots will come, how early its hair greys and recedes. Each image of it then
draws an age, and the age alone moves the age cues, smoothly:
  - childhood: a rounder, smaller face, larger eyes, a short nose, no beard;
  - from about 30: forehead lines, then crow's feet, nasolabial folds and bags under the eyes,
    growing deeper with the years;
  - hair greying (from the identity's onset) and thinning, a receding hairline for men;
  - jaw and cheek sag (jowls) after about 45; age spots after about 50, at the identity's places.
The background (a plain light colour) and a small head offset are drawn per image, so they say
nothing about who or how old. Train and test identities are disjoint. Image number i draws from
``np.random.default_rng([seed, identity, k])``: the set is byte-identical for a seed.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ...errors import GanstackError
from ...io import atomic_path, write_text_atomic

VERSION = 1
DEFAULT_DIR = "data/faces"
AGE_RANGE = (8, 88)
SKIN = {0: (232, 196, 170), 1: (120, 82, 60), 2: (226, 190, 150), 3: (178, 132, 100), 4: (200, 160, 125)}
HAIR = [(25, 20, 18), (60, 40, 25), (105, 70, 40), (200, 165, 95), (150, 70, 35), (85, 50, 30)]
IRIS = [(70, 45, 25), (50, 90, 140), (70, 110, 70), (110, 110, 115), (30, 25, 20)]
HAIR_STYLES = ("short", "side", "long", "bob", "curly")


@dataclass
class Identity:
    number: int
    gender: int
    race: int
    head_w: float
    head_h: float
    jaw: float
    skin: tuple
    hair: tuple
    style: str
    iris: tuple
    eye_gap: float
    eye_size: float
    brow: float
    nose_len: float
    nose_w: float
    mouth_w: float
    lips: tuple
    glasses: tuple | None
    earrings: bool
    beard: float
    grey_onset: float
    balding: float
    spots: np.ndarray


def draw_identity(number: int, seed: int) -> Identity:
    rng = np.random.default_rng([seed, number, 1_000_003])
    gender, race = int(rng.integers(2)), int(rng.integers(5))
    skin = tuple(int(np.clip(c + rng.normal(0, 10), 0, 255)) for c in SKIN[race])
    dark = race in (1, 2, 3)
    hair = HAIR[int(rng.integers(2))] if dark and rng.random() < 0.8 else HAIR[int(rng.integers(len(HAIR)))]
    styles = ("short", "side", "curly") if gender == 0 else HAIR_STYLES
    return Identity(
        number=number, gender=gender, race=race,
        head_w=float(rng.uniform(0.46, 0.56)) + 0.02 * (gender == 0), head_h=float(rng.uniform(0.60, 0.70)),
        jaw=float(rng.uniform(0.55, 0.85)) + 0.1 * (gender == 0), skin=skin, hair=hair,
        style=str(rng.choice(styles)), iris=IRIS[int(rng.integers(len(IRIS)))],
        eye_gap=float(rng.uniform(0.17, 0.22)), eye_size=float(rng.uniform(0.040, 0.055)),
        brow=float(rng.uniform(0.008, 0.018)) + 0.004 * (gender == 0),
        nose_len=float(rng.uniform(0.10, 0.15)), nose_w=float(rng.uniform(0.045, 0.07)),
        mouth_w=float(rng.uniform(0.14, 0.20)),
        lips=(int(skin[0] * 0.78 + 30 * gender), int(skin[1] * 0.55), int(skin[2] * 0.58)),
        glasses=tuple(int(v) for v in rng.integers(0, 120, 3)) if rng.random() < 0.25 else None,
        earrings=gender == 1 and rng.random() < 0.35,
        beard=float(rng.uniform(0.3, 1.0)) if gender == 0 and rng.random() < 0.35 else 0.0,
        grey_onset=float(rng.uniform(32, 55)), balding=float(rng.uniform(0.2, 1.0)) if gender == 0 else 0.0,
        spots=rng.uniform(0, 1, (12, 3)))


def _ramp(age: float, start: float, full: float) -> float:
    """0 before `start`, 1 from `full`, linear between: how far an age cue has come."""
    return float(np.clip((age - start) / (full - start), 0.0, 1.0))


def _mix(a: tuple, b: tuple, t: float) -> tuple:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def render_face(person: Identity, age: float, size: int, rng: np.random.Generator) -> Image.Image:
    """One face of `person` at `age`, size x size RGB; drawn at 4x and reduced (smooth edges)."""
    S = size * 4
    background = tuple(int(v) for v in rng.integers(170, 246, 3))
    image = Image.new("RGB", (S, S), background)
    d = ImageDraw.Draw(image)
    child = 1.0 - _ramp(age, 6, 18)        # 1 for a small child, 0 from adulthood
    sag = _ramp(age, 45, 85)
    lines = _ramp(age, 28, 75)
    grey = _ramp(age, person.grey_onset, person.grey_onset + 30)
    thin = _ramp(age, 30, 75) * (person.balding if person.gender == 0 else 0.35)
    cx = S * (0.5 + rng.uniform(-0.03, 0.03))
    cy = S * (0.53 + rng.uniform(-0.02, 0.02))
    scale = 1.0 - 0.12 * child
    hw, hh = S * person.head_w * scale / 2, S * person.head_h * scale / 2
    hh *= 1.0 - 0.08 * child                # a rounder child's face
    skin = _mix(person.skin, (min(person.skin[0] + 8, 255), person.skin[1], max(person.skin[2] - 12, 0)),
                _ramp(age, 40, 85))         # slightly sallower with age
    hair = _mix(person.hair, (205, 205, 208), grey)
    outline = _mix(skin, (0, 0, 0), 0.35)

    # hair behind the head (long styles)
    if person.style in ("long", "bob", "curly"):
        drop = {"long": 1.25, "bob": 0.75, "curly": 0.55}[person.style] * (1 - 0.3 * thin)
        width = 1.18 if person.style != "curly" else 1.32
        d.ellipse([cx - hw * width, cy - hh * 1.12, cx + hw * width, cy + hh * drop], fill=hair)
    # neck and ears
    d.rectangle([cx - hw * 0.42, cy + hh * 0.6, cx + hw * 0.42, S], fill=_mix(skin, (0, 0, 0), 0.08))
    for side in (-1, 1):
        ex = cx + side * hw * 0.98
        d.ellipse([ex - hw * 0.13, cy - hh * 0.12, ex + hw * 0.13, cy + hh * 0.22], fill=skin, outline=outline)
        if person.earrings:
            d.ellipse([ex - hw * 0.05, cy + hh * 0.22, ex + hw * 0.05, cy + hh * 0.32], fill=(225, 195, 60))
    # the head: an upper ellipse and a jaw polygon that widens and drops with sag (jowls)
    jaw = person.jaw * (1.0 - 0.25 * child)
    d.ellipse([cx - hw, cy - hh, cx + hw, cy + hh * 0.5], fill=skin, outline=outline, width=max(1, S // 128))
    chin_w = hw * (0.35 + 0.25 * jaw) + hw * 0.10 * sag
    jowl = hh * 0.06 * sag
    d.polygon([(cx - hw, cy), (cx - hw * 0.97, cy + hh * 0.45 + jowl), (cx - chin_w, cy + hh * 0.92 + jowl),
               (cx, cy + hh * (1.0 + 0.03 * sag)), (cx + chin_w, cy + hh * 0.92 + jowl),
               (cx + hw * 0.97, cy + hh * 0.45 + jowl), (cx + hw, cy)], fill=skin)
    # beard
    if person.beard > 0 and child == 0:
        beard = _mix(hair, skin, 0.45 * (1 - person.beard))
        d.polygon([(cx - hw * 0.92, cy + hh * 0.25), (cx - chin_w, cy + hh * 0.92 + jowl),
                   (cx, cy + hh * (1.02 + 0.03 * sag)), (cx + chin_w, cy + hh * 0.92 + jowl),
                   (cx + hw * 0.92, cy + hh * 0.25), (cx + hw * 0.5, cy + hh * 0.62), (cx - hw * 0.5, cy + hh * 0.62)],
                  fill=beard)
    # hair on top: the hairline recedes and the cover thins with age
    top = cy - hh * 1.04
    line = cy - hh * (0.55 - 0.35 * thin)
    if thin < 0.97:
        cover = _mix(hair, skin, 0.7 * max(0.0, thin - 0.5) * 2)
        if person.style == "curly":
            for k in range(14):
                a = np.pi * (k / 13)
                r = hw * 0.3
                px, py = cx - hw * 0.95 * np.cos(a), top + hh * 0.35 - hh * 0.25 * np.sin(a)
                d.ellipse([px - r, py - r, px + r, py + r], fill=cover)
        d.chord([cx - hw * 1.02, top, cx + hw * 1.02, line + (line - top)], 180, 360, fill=cover)
        if person.style == "side":
            d.polygon([(cx - hw, line + hh * 0.05), (cx - hw * 0.2, top + hh * 0.1), (cx + hw * 0.7, line)],
                      fill=cover)
        if person.style in ("long", "bob") and thin < 0.5:
            d.polygon([(cx - hw * 1.02, line + hh * 0.1), (cx - hw * 0.95, cy + hh * 0.3), (cx - hw * 0.8, line)],
                      fill=cover)
            d.polygon([(cx + hw * 1.02, line + hh * 0.1), (cx + hw * 0.95, cy + hh * 0.3), (cx + hw * 0.8, line)],
                      fill=cover)
    # forehead lines
    ink = max(1, S // 160)
    for k in range(int(round(1 + 3 * lines)) if lines > 0 else 0):
        y = cy - hh * (0.42 - 0.07 * k)
        if y > line + hh * 0.05:
            d.arc([cx - hw * 0.45, y - hh * 0.05, cx + hw * 0.45, y + hh * 0.05], 200, 340,
                  fill=_mix(skin, (60, 40, 30), 0.25 + 0.35 * lines), width=ink)
    # eyes, brows, bags, crow's feet
    eye_r = S * person.eye_size * (1.0 + 0.35 * child)
    for side in (-1, 1):
        ex, ey = cx + side * S * person.eye_gap * scale / 1.25, cy - hh * 0.05
        if age > 45:
            d.arc([ex - eye_r * 1.3, ey - eye_r * 0.2, ex + eye_r * 1.3, ey + eye_r * 1.5 + eye_r * 0.3 * sag],
                  20, 160, fill=_mix(skin, (70, 45, 40), 0.35 * _ramp(age, 45, 85)), width=ink)
        d.ellipse([ex - eye_r * 1.25, ey - eye_r * 0.7, ex + eye_r * 1.25, ey + eye_r * 0.7], fill=(245, 245, 240),
                  outline=outline)
        d.ellipse([ex - eye_r * 0.6, ey - eye_r * 0.6, ex + eye_r * 0.6, ey + eye_r * 0.6], fill=person.iris)
        d.ellipse([ex - eye_r * 0.25, ey - eye_r * 0.25, ex + eye_r * 0.25, ey + eye_r * 0.25], fill=(15, 12, 10))
        lid = eye_r * 0.3 * sag  # drooping upper lid
        if lid > 0:
            d.chord([ex - eye_r * 1.3, ey - eye_r * 0.75, ex + eye_r * 1.3, ey - eye_r * 0.75 + 2 * lid + eye_r * 0.4],
                    180, 360, fill=skin)
        brow = _mix(_mix(person.hair, (215, 215, 215), grey), skin, 0.2 + 0.3 * _ramp(age, 60, 88))
        by = ey - eye_r * 1.6
        d.line([(ex - side * eye_r * 1.4, by + eye_r * 0.2), (ex, by - eye_r * 0.2), (ex + side * eye_r * 1.5, by)],
               fill=brow, width=max(1, int(S * person.brow * (1 - 0.3 * _ramp(age, 60, 88)))))
        if age > 38:
            feet = _mix(skin, (60, 40, 30), 0.2 + 0.4 * _ramp(age, 38, 80))
            for k in (-1, 0, 1):
                x0 = ex + side * eye_r * 1.45
                d.line([(x0, ey + k * eye_r * 0.25), (x0 + side * eye_r * 0.7, ey + k * eye_r * 0.55)], fill=feet,
                       width=ink)
    if person.glasses is not None and child < 0.5:
        gr = eye_r * 1.9
        for side in (-1, 1):
            ex, ey = cx + side * S * person.eye_gap * scale / 1.25, cy - hh * 0.05
            d.ellipse([ex - gr, ey - gr * 0.75, ex + gr, ey + gr * 0.75], outline=person.glasses, width=max(2, S // 90))
        d.line([(cx - S * person.eye_gap * scale / 1.25 + gr, cy - hh * 0.05),
                (cx + S * person.eye_gap * scale / 1.25 - gr, cy - hh * 0.05)], fill=person.glasses,
               width=max(2, S // 90))
    # nose
    nose_len = S * person.nose_len * (1.0 - 0.3 * child) * (1.0 + 0.08 * sag)
    nw = S * person.nose_w * (1.0 - 0.2 * child)
    ny = cy - hh * 0.02
    shade = _mix(skin, (0, 0, 0), 0.25)
    d.line([(cx, ny), (cx - nw * 0.2, ny + nose_len)], fill=shade, width=ink)
    d.arc([cx - nw, ny + nose_len - nw * 0.5, cx + nw, ny + nose_len + nw * 0.5], 0, 180, fill=shade, width=ink)
    # nasolabial folds
    mouth_y = ny + nose_len + hh * (0.18 + 0.04 * sag)
    mw = S * person.mouth_w * (1.0 - 0.2 * child) / 2
    if lines > 0.1:
        fold = _mix(skin, (60, 40, 30), 0.15 + 0.45 * lines)
        for side in (-1, 1):
            d.line([(cx + side * nw * 1.2, ny + nose_len * 0.8), (cx + side * mw * 1.25, mouth_y + hh * 0.06 * sag)],
                   fill=fold, width=ink)
    # mouth: lips thin and the corners turn down with age
    droop = hh * 0.035 * sag
    lip = max(1, int(S * 0.012 * (1.0 - 0.5 * _ramp(age, 40, 85))))
    d.line([(cx - mw, mouth_y + droop), (cx, mouth_y - hh * 0.01), (cx + mw, mouth_y + droop)], fill=person.lips,
           width=lip * 2)
    # age spots at the identity's places, more of them with the years
    for k in range(int(len(person.spots) * _ramp(age, 50, 88))):
        u, v, r = person.spots[k]
        px, py = cx + (u - 0.5) * hw * 1.5, cy - hh * 0.4 + v * hh * 0.75  # forehead, temples, cheeks
        rr = S * (0.006 + 0.008 * r)
        d.ellipse([px - rr, py - rr, px + rr, py + rr], fill=_mix(skin, (110, 75, 45), 0.45))
    image = image.filter(ImageFilter.GaussianBlur(radius=S / 512))
    return image.resize((size, size), Image.Resampling.LANCZOS)


def utkface_name(age: int, gender: int, race: int, identity: int, k: int) -> str:
    """UTKFace's [age]_[gender]_[race]_[date&time].jpg; the 17-digit time is unique per image."""
    return f"{age}_{gender}_{race}_2017{identity:07d}{k:06d}.jpg"


def prepare_faces(out_dir: str | Path, *, num_train: int = 240, num_test: int = 60, per_identity: int = 10,
                  size: int = 128, seed: int = 0, progress: Callable[[int, int], None] | None = None) -> Path:
    """Generate the set in `out_dir` (nothing to do when its meta.json is there): num_train and
    num_test identities, per_identity ages each, spread over AGE_RANGE. Returns the folder."""
    out = Path(out_dir)
    if size < 32 or size % 4:
        raise GanstackError(f"faces --size {size}: give a multiple of 4, at least 32 (default 128)")
    if min(num_train, num_test, per_identity) < 1:
        raise GanstackError("faces: --num-train, --num-test and the images per identity must be >= 1")
    meta = {"version": VERSION, "kind": "faces", "size": size, "seed": seed, "num_train": num_train,
            "num_test": num_test, "per_identity": per_identity, "age_range": list(AGE_RANGE)}
    if (out / "meta.json").is_file():
        found = json.loads((out / "meta.json").read_text())
        if found != meta:
            raise GanstackError(f"{out}: holds a faces set made with other settings ({found}); "
                                "choose another folder or delete it")
        return out
    rows, total = [], (num_train + num_test) * per_identity
    low, high = AGE_RANGE
    for identity in range(num_train + num_test):
        split = "train" if identity < num_train else "test"
        (out / split).mkdir(parents=True, exist_ok=True)
        person = draw_identity(identity, seed)
        for k in range(per_identity):
            rng = np.random.default_rng([seed, identity, k])
            # ages spread over the range (one per slice of it), jittered inside the slice
            age = int(np.clip(round(low + (high - low) * (k + rng.uniform(0.1, 0.9)) / per_identity), low, high))
            name = utkface_name(age, person.gender, person.race, identity, k)
            buffer = io.BytesIO()
            render_face(person, age, size, rng).save(buffer, format="JPEG", quality=95)
            with atomic_path(out / split / name) as tmp:
                Path(tmp).write_bytes(buffer.getvalue())
            rows.append([f"{split}/{name}", identity, age, person.gender, person.race, split])
            if progress:
                progress(len(rows), total)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["file", "identity", "age", "gender", "race", "split"])
    writer.writerows(rows)
    write_text_atomic(out / "identities.csv", text.getvalue())
    write_text_atomic(out / "meta.json", json.dumps(meta, indent=2) + "\n")
    return out
