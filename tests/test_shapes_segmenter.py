"""The shapes segmenter (FCN-score): pix2pix's formulas, caching, determinism, sizes and errors."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from ganstack import cli
from ganstack.data.synthetic.shapes_aligned import NUM_LABELS, decode_labelmap
from ganstack.errors import GanstackError
from ganstack.metrics import shapes_segmenter as seg

STEPS = 100  # enough to find the objects and their colours in the tiny set, not their shapes


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("aligned")
    assert cli.main(["prepare", "shapes", "--aligned", "--num-train", "60", "--num-test", "12", "--size", "32",
                     "--source", str(tmp / "shapes"), "--out", str(tmp / "pairs")]) == 0
    return tmp / "pairs"


@pytest.fixture(scope="module")
def test_split(pairs_dir):
    return seg.load_pairs(pairs_dir, "test")


@pytest.fixture(scope="module")
def cached(pairs_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("judges")
    return cache, seg.load_or_train_segmenter(pairs_dir, cache_dir=cache, seed=0, max_steps=STEPS)


class Oracle:
    """Predicts the given label maps, in order, whatever photos it is shown."""

    def __init__(self, labels):
        self.labels, self.done = labels, 0

    def predict(self, photos):
        out = self.labels[self.done:self.done + len(photos)]
        self.done += len(photos)
        return out


def scores_of(pred: torch.Tensor, truth: torch.Tensor) -> dict:
    matrix = seg.ConfusionMatrix()
    matrix.update(pred, truth)
    return matrix.scores()


def test_fcn_scores_of_a_hand_made_confusion_matrix():
    # Rows truth, columns prediction. Class 0: 8 pixels, 6 right, 1 -> 1, 1 -> 2; class 1: 4 pixels,
    # 3 right, 1 -> 0; class 2 never occurs but is predicted once.
    truth = torch.tensor([0] * 8 + [1] * 4)
    pred = torch.tensor([0] * 6 + [1, 2] + [0] + [1] * 3)
    matrix = seg.ConfusionMatrix(num_labels=3)
    matrix.update(pred.reshape(3, 2, 2), truth.reshape(3, 2, 2))  # (B, H, W): 3 images
    assert matrix.hist.tolist() == [[6, 1, 1], [1, 3, 0], [0, 0, 0]]
    scores = matrix.scores()
    assert scores["pixel_accuracy"] == pytest.approx(9 / 12)
    assert scores["class_accuracy"] == pytest.approx((6 / 8 + 3 / 4 + 0) / 3)  # absent class 2 counts as 0
    assert scores["class_iou"] == pytest.approx((6 / (8 + 7 - 6) + 3 / (4 + 4 - 3) + 0 / 1) / 3)
    assert scores["num_images"] == 3
    assert seg.fcn_scores(matrix.hist.numpy(), num_images=3) == scores


def test_all_background_and_perfect_predictions(test_split):
    labels = test_split[2]
    present = len(labels.unique())
    assert 1 < present < NUM_LABELS  # some classes are absent from 12 images: the 1e-12 case matters
    background = (labels == 0).double().mean().item()
    blank = scores_of(torch.zeros_like(labels), labels)
    assert blank["pixel_accuracy"] == pytest.approx(background)
    assert blank["class_accuracy"] == pytest.approx(1 / NUM_LABELS)  # background 1, every other class 0
    assert blank["class_iou"] == pytest.approx(background / NUM_LABELS)
    # Perfect: 1 for each class present, 0 (not NaN) for each absent one, so the means are present / NUM_LABELS.
    perfect = seg.fcn_score(Oracle(labels), zip(torch.zeros(len(labels), 3, 32, 32).split(5), labels.split(5)))
    assert perfect == pytest.approx({"pixel_accuracy": 1.0, "class_accuracy": present / NUM_LABELS,
                                     "class_iou": present / NUM_LABELS, "num_images": len(labels)})


def test_load_pairs_decodes_the_label_maps(test_split):
    inputs, photos, labels = test_split
    assert inputs.shape == photos.shape == (12, 3, 32, 32) and inputs.dtype == photos.dtype == torch.uint8
    assert labels.shape == (12, 32, 32) and labels.dtype == torch.int64
    assert torch.equal(labels, torch.from_numpy(decode_labelmap(inputs.permute(0, 2, 3, 1).numpy())))


def test_briefly_trained_segmenter_beats_all_background(pairs_dir, cached, test_split):
    real = seg.evaluate_real(cached[1], pairs_dir, split="test")
    labels = test_split[2]
    blank = scores_of(torch.zeros_like(labels), labels)
    assert real["num_images"] == 12
    assert real["pixel_accuracy"] > blank["pixel_accuracy"]
    assert real["class_iou"] > blank["class_iou"] and real["class_accuracy"] > blank["class_accuracy"]


def test_segmenter_is_cached_and_reused(pairs_dir, cached, monkeypatch):
    cache, net = cached
    files = list(cache.glob("*.pt"))
    assert files == [seg.cache_path(pairs_dir, cache, 0, seg.DEFAULT_EPOCHS, STEPS)] and not net.training
    monkeypatch.setattr(seg, "train_segmenter", lambda *a, **k: pytest.fail("retrained instead of loading the cache"))
    again = seg.load_or_train_segmenter(pairs_dir, cache_dir=cache, seed=0, max_steps=STEPS)
    for (name, a), b in zip(net.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    assert seg.segmenter_cache_file(pairs_dir, cache, seed=1) != seg.segmenter_cache_file(pairs_dir, cache, seed=0)


def test_training_is_deterministic_and_keeps_the_callers_rng(test_split):
    _, photos, labels = test_split
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = seg.train_segmenter(photos, labels, seed=5, max_steps=2, batch_size=6)
    assert torch.equal(torch.get_rng_state(), state)
    b = seg.train_segmenter(photos, labels, seed=5, max_steps=2, batch_size=6)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_corrupted_cache_file_is_an_error(pairs_dir, tmp_path):
    path = seg.cache_path(pairs_dir, tmp_path, 0, seg.DEFAULT_EPOCHS, STEPS)
    for junk in (b"not a checkpoint", b""):
        path.write_bytes(junk)
        with pytest.raises(GanstackError, match="delete it"):
            seg.load_or_train_segmenter(pairs_dir, cache_dir=tmp_path, seed=0, max_steps=STEPS)
    torch.save({"segmenter": {"head.weight": torch.zeros(1)}}, path)  # a checkpoint of something else
    with pytest.raises(GanstackError, match="delete it"):
        seg.load_or_train_segmenter(pairs_dir, cache_dir=tmp_path, seed=0, max_steps=STEPS)


def test_missing_or_broken_pair_set_is_an_error(pairs_dir, tmp_path):
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    for call in (lambda: seg.load_or_train_segmenter(empty, cache_dir=tmp_path / "judges"),
                 lambda: seg.load_pairs(empty, "test"), lambda: seg.evaluate_real(None, empty)):
        with pytest.raises(GanstackError, match=re.escape(str(empty))):
            call()
    broken = tmp_path / "broken"
    (broken / "test").mkdir(parents=True)
    (broken / "meta.json").write_bytes((pairs_dir / "meta.json").read_bytes())
    (broken / "test" / "s_00000000.png").write_bytes(b"not a png")
    with pytest.raises(GanstackError, match="s_00000000.png: unreadable"):
        seg.load_pairs(broken, "test")


def test_outputs_keep_the_input_size(cached):
    net = cached[1]
    for size in (48, 64):
        photos = torch.rand(2, 3, size, size) * 2 - 1
        assert net(photos).shape == (2, NUM_LABELS, size, size)
        pred = net.predict(photos)
        assert pred.shape == (2, size, size) and pred.dtype == torch.int64
        assert pred.min() >= 0 and pred.max() < NUM_LABELS
        assert net.features(photos).shape == (2, net.feature_dim)
    assert np.isfinite(net.features(photos).numpy()).all()


def test_region_boxes_gives_one_box_per_connected_region_of_a_class():
    ids = np.zeros((8, 8), np.int64)
    ids[0:2, 0:3] = 5      # class 4: a 2x3 region top left ...
    ids[4:8, 4:8] = 5      # ... and a larger 4x4 one bottom right: listed first
    ids[7, 0] = 9          # class 8: one pixel, speckle below MIN_REGION_PIXELS
    boxes = seg.region_boxes(ids, per_class=3, min_pixels=2)
    assert boxes.shape == (36, 3, 4)
    np.testing.assert_allclose(boxes[4], [[0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 3 / 8, 2 / 8], [0, 0, 0, 0]])
    assert not boxes[8].any() and not np.delete(boxes, 4, axis=0).any()


def test_a_shapes_levels_label_maps_give_back_its_boxes(tmp_path):
    """The segmenter's training targets on a shapes level: its label maps, whose regions are the objects
    of bboxes.pickle (so perfect segmentations score IoU near 1), and a segmenter trains on them."""
    from ganstack.data.pickles import load_pickle
    from ganstack.metrics.shapes_judge import load_labels, multi_hot, score_predictions
    data = tmp_path / "single"
    assert cli.main(["prepare", "shapes", "--level", "single", "--num-train", "16", "--num-test", "12",
                     "--size", "64", "--out", str(data)]) == 0
    photos, ids = seg.load_level(data, "test")
    assert photos.shape == (12, 3, 64, 64) and ids.shape == (12, 64, 64) and ids.max() <= 36
    labels, truth = load_labels(data, "test"), np.asarray(load_pickle(data / "test" / "bboxes.pickle"))
    boxes = torch.from_numpy(np.stack([seg.region_boxes(m.numpy()) for m in ids]))
    scores = score_predictions(multi_hot(labels) > 0.5, labels, boxes, truth)
    assert scores["soa_c_iou"] > 0.75 and scores["soa_i_iou"] > 0.75
    net = seg.load_or_train_segmenter(data, cache_dir=tmp_path / "judges", max_steps=2)
    assert seg.detect_boxes(net, seg.to_unit_range(photos[:3])).shape == (3, 36, seg.BOXES_PER_CLASS, 4)
