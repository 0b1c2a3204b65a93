"""The embedded "photos" set: the natural colour photographs installed with scikit-image and
scikit-learn, written in DIV2K's HR-folder layout for the super-resolution variants.

    out_dir/photos_train_HR/<name>.png   the training photographs (PNG, RGB, 8 bit)
    out_dir/photos_valid_HR/<name>.png   the held-out test photographs, whole images
    out_dir/meta.json                    names, sizes, sources and split; written last

No file is downloaded: every photograph ships inside the two installed packages (their own
data folders). The test split is fixed by name (not drawn), so it never changes with a seed,
and the PNGs are written with fixed settings, so the set is byte-identical from run to run for
the pinned package versions. Grey-scale images of those packages (camera, moon, coins...) and
drawings (logo, colorwheel) are left out: the set is RGB photographs only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ...errors import GanstackError
from ...io import atomic_path, write_text_atomic

VERSION = 1
DEFAULT_DIR = "data/photos"
TRAIN_FOLDER, TEST_FOLDER = "photos_train_HR", "photos_valid_HR"
# held out whole: a cat (fur), a cup on a table (smooth shading, text), a flower (petals, bokeh)
TEST_PHOTOS = ("chelsea", "coffee", "flower")


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data
        return getattr(skimage.data, name)()
    return load


def _motorcycle(side: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data
        return skimage.data.stereo_motorcycle()[side]
    return load


def _sklearn(file_name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image
        return load_sample_image(file_name)
    return load


# name -> (package, loader); every RGB photograph the two packages install
PHOTOS: dict[str, tuple[str, Callable[[], np.ndarray]]] = {
    "astronaut": ("scikit-image", _skimage("astronaut")),
    "chelsea": ("scikit-image", _skimage("chelsea")),
    "coffee": ("scikit-image", _skimage("coffee")),
    "rocket": ("scikit-image", _skimage("rocket")),
    "hubble_deep_field": ("scikit-image", _skimage("hubble_deep_field")),
    "retina": ("scikit-image", _skimage("retina")),
    "immunohistochemistry": ("scikit-image", _skimage("immunohistochemistry")),
    "motorcycle_left": ("scikit-image", _motorcycle(0)),
    "motorcycle_right": ("scikit-image", _motorcycle(1)),
    "china": ("scikit-learn", _sklearn("china.jpg")),
    "flower": ("scikit-learn", _sklearn("flower.jpg")),
}


def _versions() -> dict[str, str]:
    from importlib.metadata import version
    return {"scikit-image": version("scikit-image"), "scikit-learn": version("scikit-learn")}


def _load(name: str) -> np.ndarray:
    package, load = PHOTOS[name]
    try:
        image = np.asarray(load())
    except ImportError:
        raise GanstackError(f"prepare photos: {package} is not installed; run scripts/bootstrap.sh "
                            "(it installs the pinned requirements)") from None
    except (OSError, ValueError) as e:  # a damaged installation, or a data file that now needs a download
        raise GanstackError(f"prepare photos: {name} cannot be read from the installed {package} ({e}); "
                            "reinstall it with scripts/bootstrap.sh") from None
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise GanstackError(f"prepare photos: {package}'s {name} is {image.dtype} {image.shape}, not 8-bit RGB")
    return image


def _params() -> dict:
    return {"dataset": "photos", "version": VERSION, "test": list(TEST_PHOTOS), "packages": _versions()}


def prepare_photos(out_dir: str | Path = DEFAULT_DIR) -> Path:
    """Write the set into `out_dir` (nothing to do when it is complete with the same parameters)."""
    out = Path(out_dir)
    params = _params()
    meta_path = out / "meta.json"
    if meta_path.is_file():
        try:
            have = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            raise GanstackError(f"{meta_path}: unreadable; delete {out} and run `ganstack prepare photos`") from None
        if {k: have.get(k) for k in params} == params:
            return out
        raise GanstackError(f"{out}: holds a photos set of other parameters ({have.get('packages')}); delete it "
                            "or choose another --out")
    files = []
    for name in PHOTOS:
        image = _load(name)
        folder = TEST_FOLDER if name in TEST_PHOTOS else TRAIN_FOLDER
        with atomic_path(out / folder / f"{name}.png") as tmp:
            Image.fromarray(image).save(tmp, format="PNG", compress_level=6)  # no timestamp chunks: same bytes
        files.append({"name": name, "split": "test" if name in TEST_PHOTOS else "train", "source": PHOTOS[name][0],
                      "height": int(image.shape[0]), "width": int(image.shape[1])})
    meta = {**params, "layout": {"train": TRAIN_FOLDER, "test": TEST_FOLDER}, "files": files}
    write_text_atomic(meta_path, json.dumps(meta, indent=2) + "\n")
    return out
