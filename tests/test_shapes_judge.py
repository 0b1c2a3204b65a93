"""The shapes judge: caching, determinism, RNG hygiene and the object-accuracy metrics."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ganstack.data.synthetic import shapes
from ganstack.errors import GanstackError
from ganstack.metrics import shapes_judge as sj

STEPS = 4


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return shapes.prepare_shapes(tmp_path_factory.mktemp("shapes"), num_train=32, num_test=8, size=32, seed=1)


@pytest.fixture(scope="module")
def cached(data_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("judges")
    return cache, sj.load_or_train_judge(data_dir, cache_dir=cache, seed=0, max_steps=STEPS)


class PerfectJudge:
    """Predicts the true classes of the images it is given, in order."""

    def __init__(self, labels):
        self.truth, self.done = sj.multi_hot(labels), 0

    def predict(self, images):
        out = self.truth[self.done:self.done + len(images)]
        self.done += len(images)
        return out


def test_judge_is_cached_and_reused(data_dir, cached, monkeypatch):
    cache, judge = cached
    files = list(cache.glob("shapes_*.pt"))
    assert len(files) == 1 and not judge.training
    monkeypatch.setattr(sj, "train_judge", lambda *a, **k: pytest.fail("retrained instead of loading the cache"))
    again = sj.load_or_train_judge(data_dir, cache_dir=cache, seed=0, max_steps=STEPS)
    for (name, a), b in zip(judge.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    assert sj.cache_path(data_dir, cache, 1, sj.DEFAULT_EPOCHS, STEPS) != files[0]  # the seed is in the key


def test_training_is_deterministic_and_keeps_the_callers_rng(data_dir):
    images, labels = sj.load_split(data_dir, "train")
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = sj.train_judge(images, labels, seed=5, max_steps=2)
    assert torch.equal(torch.get_rng_state(), state)
    b = sj.train_judge(images, labels, seed=5, max_steps=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_outputs_and_resizing(cached):
    judge = cached[1]
    for size in (32, 64, 128):
        images = torch.rand(3, 3, size, size) * 2 - 1
        probs = judge.predict(images)
        assert probs.shape == (3, shapes.NUM_CLASSES) and torch.all((probs >= 0) & (probs <= 1))
        assert judge.features(images).shape == (3, judge.feature_dim)
        assert judge.logits(images).shape == (3, shapes.NUM_CLASSES)


def test_metrics_with_perfect_and_imperfect_predictions(data_dir):
    images, labels = sj.load_split(data_dir, "test")
    perfect = sj.object_accuracy(PerfectJudge(labels), sj.to_unit_range(images), labels, batch_size=3)
    assert perfect == {"exact_match": 1.0, "object_recall": 1.0, "class_recall": 1.0, "colour_accuracy": 1.0,
                       "shape_accuracy": 1.0, "num_images": len(labels), "soa_c": 1.0, "soa_i": 1.0}
    # Two images: {red circle, blue star} and {green square}; red circle -> red square, green square missed.
    red_circle, blue_star = shapes.class_id(0, 0), shapes.class_id(3, 2)
    green_square, red_square = shapes.class_id(1, 1), shapes.class_id(1, 0)
    pred = torch.zeros(2, shapes.NUM_CLASSES, dtype=torch.bool)
    pred[0, [red_square, blue_star]] = True
    scores = sj.score_predictions(pred, [[red_circle, blue_star], [green_square]])
    assert scores["exact_match"] == 0.0
    assert scores["object_recall"] == pytest.approx((0.5 + 0.0) / 2)
    assert scores["class_recall"] == pytest.approx((0 + 1 + 0) / 3)
    assert scores["colour_accuracy"] == pytest.approx((1.0 + 0.0) / 2)
    assert scores["shape_accuracy"] == pytest.approx((0.5 + 0.0) / 2)
    # SOA with the judge as detector: per class (red circle 0/1, blue star 1/1, green square 0/1)
    assert scores["soa_c"] == pytest.approx((0 + 1 + 0) / 3) and scores["soa_i"] == pytest.approx(1 / 3)
    three = torch.zeros(3, shapes.NUM_CLASSES, dtype=torch.bool)  # green square found in one image of two:
    three[0, [red_square, blue_star]] = three[1, green_square] = True  # SOA-C and SOA-I weigh it differently
    two = sj.score_predictions(three, [[red_circle, blue_star], [green_square], [green_square]])
    assert two["soa_c"] == pytest.approx((0 + 1 + 0.5) / 3) and two["soa_i"] == pytest.approx(2 / 4)
    padded = np.array([[[red_circle], [blue_star], [-1]], [[green_square], [-1], [-1]]])
    assert sj.score_predictions(pred, padded) == scores == sj.score_predictions(pred, torch.from_numpy(padded))


def test_evaluate_real_and_missing_set(data_dir, cached, tmp_path):
    scores = sj.evaluate_real(cached[1], data_dir, split="test")
    assert scores["num_images"] == 8 and 0.0 <= scores["exact_match"] <= 1.0
    with pytest.raises(GanstackError, match="meta.json"):
        sj.load_or_train_judge(tmp_path, cache_dir=tmp_path / "judges")


def test_a_damaged_judge_cache_is_a_one_line_error(data_dir, tmp_path):
    path = sj.cache_path(data_dir, tmp_path, 0, sj.DEFAULT_EPOCHS, STEPS)
    path.write_bytes(b"not a checkpoint")  # torch.load raises an UnpicklingError with a long message
    with pytest.raises(GanstackError, match="delete it") as err:
        sj.load_or_train_judge(data_dir, cache_dir=tmp_path, seed=0, max_steps=STEPS)
    assert len(str(err.value).splitlines()) == 1


def test_box_iou_scores_follow_soas_iou_protocol():
    """Per image and named class the best IoU of its true and detected boxes; a class never detected scores 0
    in SOA-C-IoU, and SOA-I-IoU weights classes by their images."""
    labels = np.array([[[0], [7], [-1]], [[0], [-1], [-1]]])
    truth = np.array([[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5], [-1] * 4],
                      [[0.0, 0.0, 0.5, 0.5], [-1] * 4, [-1] * 4]])
    boxes = torch.zeros(2, sj.NUM_CLASSES, 2, 4)
    boxes[0, 0, 0] = torch.tensor([0.0, 0.0, 0.5, 0.5])      # image 0, class 0: exact
    boxes[1, 0, 1] = torch.tensor([0.0, 0.0, 0.5, 0.25])     # image 1, class 0: half of it (IoU 0.5)
    pred = sj.multi_hot(labels) > 0.5
    scores = sj.score_predictions(pred, labels, boxes, truth)   # class 7 present, but no box found
    assert scores["soa_c_iou"] == pytest.approx((0.75 + 0.0) / 2)
    assert scores["soa_i_iou"] == pytest.approx((2 * 0.75 + 1 * 0.0) / 3)
    assert "soa_c_iou" not in sj.score_predictions(pred, labels)
