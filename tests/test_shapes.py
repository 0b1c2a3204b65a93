"""The embedded shapes generator: determinism, layout, pickles, label maps, captions, meta."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganstack.data.attngan import TextImageDataset
from ganstack.data.pickles import load_pickle
from ganstack.data.synthetic import shapes
from ganstack.data.text import tokenize
from ganstack.errors import GanstackError

NUM_TRAIN, NUM_TEST, SIZE = 28, 12, 64


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return shapes.prepare_shapes(tmp_path_factory.mktemp("shapes"), num_train=NUM_TRAIN, num_test=NUM_TEST,
                                 size=SIZE, seed=0)


def split_rows(data_dir: Path):
    """(split, row, key, global index) of every image."""
    for split in ("train", "test"):
        for row, key in enumerate(load_pickle(data_dir / split / "filenames.pickle")):
            yield split, row, key, int(key[2:])


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(tmp_path):
    a = shapes.prepare_shapes(tmp_path / "a", num_train=10, num_test=5, size=32, seed=3)
    b = shapes.prepare_shapes(tmp_path / "b", num_train=10, num_test=5, size=32, seed=3)
    c = shapes.prepare_shapes(tmp_path / "c", num_train=10, num_test=5, size=32, seed=4)
    fa, fb = files_of(a), files_of(b)
    assert fa == fb
    assert len(fa) == 15 * 3 + 8 + 1  # image, label map, captions per image; 4 pickles per split; meta
    assert fa["images/s_00000000.jpg"] != files_of(c)["images/s_00000000.jpg"]


def test_layout_is_readable_by_the_attngan_reader(data_dir):
    ds = TextImageDataset(data_dir, "train", image_sizes=[64], words_num=24, captions_per_image=10,
                          augment=True, flip=False)
    assert len(ds) == NUM_TRAIN
    item = ds[(0, 123)]
    assert item["images"][0].shape == (3, 64, 64)
    assert -1.0 <= item["images"][0].min() and item["images"][0].max() <= 1.0
    assert 1 <= item["cap_len"] <= 24
    assert item["class_id"] == load_pickle(data_dir / "train" / "class_info.pickle")[0]
    test = TextImageDataset(data_dir, "test", image_sizes=[64], words_num=24, captions_per_image=10,
                            augment=False, flip=False)
    assert len(test) == NUM_TEST and test[0] is not None


def test_pickles_shapes_dtypes_and_padding(data_dir):
    seen = set()
    for split, n in (("train", NUM_TRAIN), ("test", NUM_TEST)):
        keys = load_pickle(data_dir / split / "filenames.pickle")
        boxes = load_pickle(data_dir / split / "bboxes.pickle")
        labels = load_pickle(data_dir / split / "labels.pickle")
        class_info = load_pickle(data_dir / split / "class_info.pickle")
        assert len(keys) == n and all(k.startswith("s_") and "/" not in k for k in keys)
        assert boxes.shape == (n, 3, 4) and boxes.dtype == np.float32
        assert labels.shape == (n, 3, 1) and labels.dtype in (np.int64, np.int32)
        assert len(class_info) == n and all(isinstance(c, int) for c in class_info)
        pad = labels[:, :, 0] < 0
        assert np.all(boxes[pad] == -1) and np.all(labels[pad] == -1)
        assert np.all(~pad[:, 0])  # at least one object, padding only at the end
        assert np.all(pad[:, 1:] >= pad[:, :-1])
        real = boxes[~pad]
        assert np.all(real >= 0) and np.all(real[:, 2:] > 0)
        assert np.all(real[:, 0] + real[:, 2] <= 1 + 1e-6) and np.all(real[:, 1] + real[:, 3] <= 1 + 1e-6)
        assert np.all((labels[~pad] >= 0) & (labels[~pad] < shapes.NUM_CLASSES))
        seen.update(keys)
    assert len(seen) == NUM_TRAIN + NUM_TEST  # keys are unique across splits


def test_boxes_hold_their_label_map_pixels(data_dir):
    for split, row, key, _ in split_rows(data_dir):
        labelmap = np.asarray(Image.open(data_dir / "labelmaps" / f"{key}.png"))
        image = Image.open(data_dir / "images" / f"{key}.jpg")
        assert Image.open(data_dir / "labelmaps" / f"{key}.png").mode == "L"
        assert labelmap.shape == (image.size[1], image.size[0]) == (SIZE, SIZE)
        labels = load_pickle(data_dir / split / "labels.pickle")[row, :, 0]
        boxes = load_pickle(data_dir / split / "bboxes.pickle")[row]
        assert set(np.unique(labelmap)) <= {0} | {int(c) + 1 for c in labels if c >= 0}
        ys, xs = np.mgrid[0:SIZE, 0:SIZE]
        for c in {int(c) for c in labels if c >= 0}:
            inside = np.zeros_like(labelmap, dtype=bool)
            for (x, y, w, h), obj_class in zip(boxes, labels):
                if obj_class != c:
                    continue
                # pixel [j, j+1) overlaps [x, x+w) in normalised units
                box = ((xs + 1) / SIZE > x) & (xs / SIZE < x + w) & ((ys + 1) / SIZE > y) & (ys / SIZE < y + h)
                assert np.any(box & (labelmap == c + 1)), f"{key}: class {c} has no pixels in its box"
                inside |= box
            assert np.all(inside[labelmap == c + 1]), f"{key}: pixels of class {c} outside its boxes"


def test_every_caption_parses_back_to_the_scene(data_dir):
    for split, row, key, index in split_rows(data_dir):
        scene = shapes.sample_scene(np.random.default_rng([0, index]))
        want = sorted(tuple(sorted(o.items())) for o in scene)
        labels = load_pickle(data_dir / split / "labels.pickle")[row, :, 0]
        assert sorted(shapes.class_id(shapes.SHAPES.index(o["shape"]), shapes.COLOURS.index(o["colour"]))
                      for o in scene) == sorted(int(c) for c in labels if c >= 0)
        lines = (data_dir / "text" / f"{key}.txt").read_text().splitlines()
        assert len(lines) == 10
        for line in lines:
            assert len(tokenize(line)) <= shapes.MAX_CAPTION_WORDS, line
            got = sorted(tuple(sorted(o.items())) for o in shapes.parse_caption(line))
            assert got == want, line


def test_parse_caption_examples():
    objs = shapes.parse_caption("a small red circle in the top left and a big blue square at the bottom")
    assert objs == [{"shape": "circle", "colour": "red", "size": "small", "position": "top left"},
                    {"shape": "square", "colour": "blue", "size": "large", "position": "bottom"}]
    assert shapes.parse_caption("in the centre there is a large green star") == [
        {"shape": "star", "colour": "green", "size": "large", "position": "centre"}]
    assert [o["position"] for o in shapes.parse_caption(
        "two objects: a tiny violet plus upper right and a big turquoise rhombus middle left")] == ["top right", "left"]
    assert shapes.parse_caption("a red circle") == [{"shape": "circle", "colour": "red", "size": None,
                                                     "position": None}]
    with pytest.raises(GanstackError, match="no shape"):
        shapes.parse_caption("a red thing in the centre")


def test_class_info_is_one_id_per_class_multiset(data_dir):
    assert shapes.multiset_id([3, 1]) == shapes.multiset_id([1, 3])
    assert len({shapes.multiset_id(m) for m in ([1], [1, 1], [1, 3], [1, 1, 3], [2, 3], [0], [35, 35, 35])}) == 7
    by_set: dict[tuple, int] = {}
    by_id: dict[int, tuple] = {}
    for split in ("train", "test"):
        labels = load_pickle(data_dir / split / "labels.pickle")[:, :, 0]
        for row, cid in zip(labels, load_pickle(data_dir / split / "class_info.pickle")):
            key = tuple(sorted(int(c) for c in row if c >= 0))
            assert by_set.setdefault(key, cid) == cid and by_id.setdefault(cid, key) == key


def test_meta_and_reuse(data_dir):
    meta = shapes.load_meta(data_dir)
    assert (meta["size"], meta["num_train"], meta["num_test"], meta["seed"]) == (SIZE, NUM_TRAIN, NUM_TEST, 0)
    assert meta["shapes"] == list(shapes.SHAPES) and meta["colours"] == list(shapes.COLOURS)
    assert shapes.NUM_CLASSES == len(shapes.SHAPES) * len(shapes.COLOURS) == meta["num_classes"]
    assert shapes.class_name(shapes.class_id(2, 1)) == f"{shapes.COLOURS[1]} {shapes.SHAPES[2]}"
    stamp = (data_dir / "images" / "s_00000000.jpg").stat().st_mtime_ns
    shapes.prepare_shapes(data_dir, num_train=NUM_TRAIN, num_test=NUM_TEST, size=SIZE, seed=0)
    assert (data_dir / "images" / "s_00000000.jpg").stat().st_mtime_ns == stamp
    assert not list(data_dir.glob(".*"))  # no in-progress marker or temporary files left


def test_other_parameters_or_foreign_folder_are_errors(data_dir, tmp_path):
    with pytest.raises(GanstackError, match="delete the folder"):
        shapes.prepare_shapes(data_dir, num_train=NUM_TRAIN + 1, num_test=NUM_TEST, size=SIZE, seed=0)
    (tmp_path / "other.txt").write_text("someone's data")
    with pytest.raises(GanstackError, match="not empty"):
        shapes.prepare_shapes(tmp_path, num_train=2, num_test=1, size=32)
    with pytest.raises(GanstackError, match="meta.json"):
        shapes.load_meta(tmp_path)


# ------------------------------------------------------------------ levels
@pytest.mark.parametrize("level", ["single", "scenes", "crowded"])
def test_every_level_is_deterministic_and_captions_name_its_scenes(tmp_path, level):
    spec = shapes.LEVELS[level]
    a = shapes.prepare_shapes(tmp_path / "a", level=level, num_train=8, num_test=4, size=32, seed=5)
    b = shapes.prepare_shapes(tmp_path / "b", level=level, num_train=8, num_test=4, size=32, seed=5)
    assert files_of(a) == files_of(b)
    meta = shapes.load_meta(a)
    assert (meta["level"], meta["size"], meta["max_objects"]) == (level, 32, spec.max_objects)
    for split, row, key, index in split_rows(a):
        rng = np.random.default_rng([5, index])
        scene = shapes.sample_scene(rng, level)
        assert spec.min_objects <= len(scene) <= spec.max_objects
        labels = load_pickle(a / split / "labels.pickle")
        assert labels.shape[1:] == (spec.max_objects, 1)
        assert sorted(int(c) for c in labels[row, :, 0] if c >= 0) == sorted(
            shapes.class_id(shapes.SHAPES.index(o["shape"]), shapes.COLOURS.index(o["colour"])) for o in scene)
        want = sorted(tuple(sorted(o.items())) for o in scene)
        for line in (a / "text" / f"{key}.txt").read_text().splitlines():
            assert len(tokenize(line)) <= spec.max_caption_words, line
            assert sorted(tuple(sorted(o.items())) for o in shapes.parse_caption(line)) == want, line


def test_single_level_is_one_object_on_a_plain_background(tmp_path):
    out = shapes.prepare_shapes(tmp_path / "s", level="single", num_train=12, num_test=4, seed=0)
    assert shapes.load_meta(out)["size"] == 64
    for split, row, key, _ in split_rows(out):
        labelmap = np.asarray(Image.open(out / "labelmaps" / f"{key}.png"))
        image = np.asarray(Image.open(out / "images" / f"{key}.jpg")).astype(int)
        background = image[labelmap == 0]
        off = np.abs(background - np.median(background, axis=0)).max(axis=1)
        assert np.percentile(off, 95) <= 6  # one colour, bar JPEG ringing and the objects' anti-aliased rims
        # one object, large for the canvas (a small star is the least: about 4 %)
        assert len(np.unique(labelmap)) == 2 and (labelmap > 0).mean() > 0.025


def test_crowded_level_defaults_to_128_px_and_lets_objects_overlap(tmp_path):
    out = shapes.prepare_shapes(tmp_path / "c", level="crowded", num_train=30, num_test=2, seed=0)
    assert shapes.load_meta(out)["size"] == 128
    boxes = load_pickle(out / "train" / "bboxes.pickle")
    labels = load_pickle(out / "train" / "labels.pickle")[:, :, 0]
    overlapping = 0
    for row_boxes, row_labels in zip(boxes, labels):
        real = row_boxes[row_labels >= 0]
        assert 3 <= len(real) <= 8
        for i in range(len(real)):
            for j in range(i):
                (x1, y1, w1, h1), (x2, y2, w2, h2) = real[i], real[j]
                overlapping += (min(x1 + w1, x2 + w2) > max(x1, x2)) and (min(y1 + h1, y2 + h2) > max(y1, y2))
    assert overlapping > 0


def test_levels_keep_separate_judges_and_old_sets_read_as_scenes(tmp_path):
    from ganstack.metrics.shapes_judge import judge_cache_file
    a = shapes.prepare_shapes(tmp_path / "a", level="scenes", num_train=4, num_test=2, size=32)
    b = shapes.prepare_shapes(tmp_path / "b", level="single", num_train=4, num_test=2, size=32)
    assert judge_cache_file(a, tmp_path) != judge_cache_file(b, tmp_path)
    # a set written before levels existed has no "level" in meta.json: it is the scenes level
    meta = shapes.load_meta(a)
    del meta["level"]
    (a / "meta.json").write_text(__import__("json").dumps(meta))
    assert shapes.level_of(shapes.load_meta(a)) == "scenes"
    shapes.prepare_shapes(a, level="scenes", num_train=4, num_test=2, size=32)  # reused as it is
    with pytest.raises(GanstackError, match="level scenes"):
        shapes.prepare_shapes(a, level="single", num_train=4, num_test=2, size=32)
    with pytest.raises(GanstackError, match="unknown level"):
        shapes.prepare_shapes(tmp_path / "x", level="easy", num_train=4, num_test=2)


def test_prepare_cli_and_config_name_the_level(tmp_path, capsys):
    from ganstack.cli import main
    out = tmp_path / "single"
    assert main(["prepare", "shapes", "--level", "single", "--out", str(out), "--num-train", "4",
                 "--num-test", "2", "--size", "32"]) == 0
    assert shapes.load_meta(out)["level"] == "single" and "single" in capsys.readouterr().out
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"_BASE_: {Path(__file__).resolve().parents[1] / 'cfg/damsm/shapes.yml'}\n"
                   f"DATA_DIR: {out}\nOUTPUT_DIR: {tmp_path / 'o'}\n")
    assert main(["train", str(cfg), "--device", "cpu", "--set", "SHAPES.LEVEL=scenes"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "SHAPES.LEVEL" in err and "'single'" in err
