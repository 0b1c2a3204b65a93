"""SOA: the darknet cfg/weights reader, YOLOv3 decoding, and the SOA protocol's numbers.

A tiny darknet network (convs, a shortcut, routes, an upsample, two yolo heads, 3
classes) and its weights are written here by a writer independent of the reader.
"""
from __future__ import annotations

import math
import pickle
import struct

import numpy as np
import pytest
import torch

from ganstack.errors import GanstackError
from ganstack.metrics import soa
from ganstack.nets import darknet as dn

TINY_CFG = """\
[net]
# a comment, as darknet cfgs have
width=32
height=32
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[shortcut]
from=-3
activation=linear

[convolutional]
size=1
stride=1
pad=1
filters=16
activation=linear

[yolo]
mask = 2,3
anchors = 4,6,  8,8,  12,10,  20,24
classes=3
num=4

[route]
layers = -4

[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=leaky

[upsample]
stride=2

[route]
layers = -1, 0

[convolutional]
size=1
stride=1
pad=1
filters=16
activation=linear

[yolo]
mask = 0,1
anchors = 4,6,  8,8,  12,10,  20,24
classes=3
num=4
"""

# The tiny cfg's convolutions, written down by hand: (layer, batch-normalised, in, out, kernel).
CONVS = [(0, True, 3, 8, 3), (1, True, 8, 16, 3), (2, True, 16, 8, 1), (3, True, 8, 16, 3),
         (5, False, 16, 16, 1), (8, True, 16, 8, 1), (11, False, 16, 16, 1)]
CHANNELS = [8, 16, 8, 16, 16, 16, 16, 16, 8, 8, 16, 16, 16]
HEAD1, HEAD2 = 5, 11  # the linear convs feeding the yolo heads (8x8 and 16x16 grids at 32 px)


def darknet_arrays(fill) -> list[tuple[int, str, np.ndarray]]:
    """(layer, tensor name, values) in darknet's file order; fill(layer, name, shape) makes values."""
    out = []
    for layer, bn, cin, cout, k in CONVS:
        names = ["bn.bias", "bn.weight", "bn.running_mean", "bn.running_var"] if bn else ["conv.bias"]
        for name in names:
            out.append((layer, name, np.asarray(fill(layer, name, (cout,)), np.float32)))
        out.append((layer, "conv.weight", np.asarray(fill(layer, "conv.weight", (cout, cin, k, k)), np.float32)))
    return out


def write_weights(path, arrays, major=0, minor=2, revision=0, seen=12345, extra=b""):
    """darknet's writer: 3 int32, 'seen' as int64 from version 0.2 (int32 before), then float32s."""
    with open(path, "wb") as f:
        f.write(struct.pack("<3i", major, minor, revision))
        f.write(struct.pack("<q" if major * 10 + minor >= 2 else "<i", seen))
        for _, _, a in arrays:
            f.write(a.astype("<f4").tobytes())
        f.write(extra)


def random_fill(seed=0, head_bias=None):
    rng = np.random.default_rng(seed)

    def fill(layer, name, shape):
        if name == "bn.running_var":
            return rng.uniform(0.5, 1.5, shape)
        if layer in (HEAD1, HEAD2) and head_bias is not None:
            return np.zeros(shape) if name == "conv.weight" else head_bias[layer]
        return rng.normal(0, 0.1, shape)
    return fill


@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "tiny.cfg"
    path.write_text(TINY_CFG)
    return path


def one_line_error(excinfo, *words):
    msg = str(excinfo.value)
    assert "\n" not in msg
    for w in words:
        assert str(w) in msg, msg


# ---------------------------------------------------------------- darknet


def test_cfg_builds_the_layers_it_describes(cfg):
    net = dn.Darknet.from_cfg(cfg)
    assert len(net.layers) == 13 and net.out_channels == CHANNELS
    for layer, bn, cin, cout, k in CONVS:
        block = net.layers[layer]
        assert block.conv.weight.shape == (cout, cin, k, k)
        assert (block.bn is not None) == bn and (block.conv.bias is None) == bn
    assert net.layers[4].source == 1 and net.layers[7].sources == [3] and net.layers[10].sources == [9, 0]
    assert [h.anchors.tolist() for h in net.heads] == [[[12, 10], [20, 24]], [[4, 6], [8, 8]]]
    assert net.size_multiple == 4
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 2 * 8 * 8 + 2 * 16 * 16, 8)


@pytest.mark.parametrize("minor,seen_bytes", [(2, 8), (1, 4)])
def test_weights_round_trip_into_the_right_tensors(cfg, tmp_path, minor, seen_bytes):
    counter = iter(range(10**6))  # every value distinct, so a misplaced tensor shows

    def fill(layer, name, shape):
        return np.fromiter(counter, np.float32, math.prod(shape)).reshape(shape)
    arrays = darknet_arrays(fill)
    path = tmp_path / "tiny.weights"
    write_weights(path, arrays, major=0, minor=minor, revision=5, seen=777)
    assert path.stat().st_size == 12 + seen_bytes + 4 * sum(a.size for *_, a in arrays)
    net = dn.Darknet.from_cfg(cfg)
    header = dn.load_darknet_weights(net, path)
    assert header == {"major": 0, "minor": minor, "revision": 5, "seen": 777}
    for layer, name, values in arrays:
        part, attr = name.split(".")
        got = getattr(getattr(net.layers[layer], part), attr)
        assert torch.equal(got.detach(), torch.from_numpy(values)), (layer, name)


def test_forward_decodes_like_yolov3(cfg, tmp_path):
    # head convs with zero weights: every cell outputs its bias, so decoding is checkable by hand
    b1 = np.array([0, 0, 0, 0, 10, 5, -5, -5, 1, -1, math.log(2), 0, -10, 0, 0, 0], np.float32)
    b2 = np.full(16, -10, np.float32)
    path = tmp_path / "w.weights"
    write_weights(path, darknet_arrays(random_fill(1, {HEAD1: b1, HEAD2: b2})))
    net = dn.Darknet.from_cfg(cfg)
    dn.load_darknet_weights(net, path)
    out = net.eval()(torch.rand(1, 3, 32, 32))[0]
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    y, x = 3, 5  # a cell of the 8x8 grid, stride 4
    a0, a1 = out[0 * 64 + y * 8 + x], out[1 * 64 + y * 8 + x]
    assert a0[:4].tolist() == pytest.approx([(0.5 + x) * 4, (0.5 + y) * 4, 12, 10], rel=1e-5)
    assert a0[4:].tolist() == pytest.approx([sig(10), sig(5), sig(-5), sig(-5)], rel=1e-5)
    assert a1[:4].tolist() == pytest.approx([(sig(1) + x) * 4, (sig(-1) + y) * 4, 40, 24], rel=1e-5)
    assert a1[4].item() == pytest.approx(sig(-10), rel=1e-4)
    assert torch.all(out[128:, 4] < 1e-4)  # second head: objectness bias -10

    det = dn.YoloV3Detector(net, names=["a", "b", "c"], img_size=32, conf_thres=0.5, nms_thres=0.4)
    found = det.detect(torch.rand(2, 3, 48, 48))  # resized to 32 inside
    assert len(found) == 2
    for d in found:
        assert isinstance(d, dn.Detections) and d.boxes.shape == (len(d.labels), 4) and len(d.scores) == len(d.labels)
        assert 0 < len(d.labels) < 64  # NMS removed the overlapping neighbours of class 0
        assert d.labels.dtype == torch.int64 and set(d.labels.tolist()) == {0}
        assert torch.all((d.scores >= 0.5) & (d.scores <= 1)) and torch.all(d.scores[:-1] >= d.scores[1:])
        assert torch.all((d.boxes >= 0) & (d.boxes <= 1)) and torch.all(d.boxes[:, :2] <= d.boxes[:, 2:])
    # objectness sig(10) passes 0.999, objectness x class probability (x sig(5)) does not
    loose = dn.YoloV3Detector(net, names=["a", "b", "c"], img_size=32, conf_thres=0.999)
    assert len(loose.detect(torch.rand(1, 3, 32, 32))[0].labels) > 0
    strict = dn.YoloV3Detector(net, names=["a", "b", "c"], img_size=32, conf_thres=0.999, threshold_on="score")
    assert len(strict.detect(torch.rand(1, 3, 32, 32))[0].labels) == 0


def test_from_files_with_names(cfg, tmp_path):
    write_weights(tmp_path / "w.weights", darknet_arrays(random_fill(2)))
    (tmp_path / "tiny.names").write_text("cat\ndog\nbird\n")
    det = dn.YoloV3Detector.from_files(cfg, tmp_path / "w.weights", tmp_path / "tiny.names", img_size=32)
    assert det.names == ["cat", "dog", "bird"] and det.conf_thres == 0.5 and det.nms_thres == 0.4
    with pytest.raises(GanstackError) as e:  # the default: COCO's 80 names against 3 classes
        dn.YoloV3Detector.from_files(cfg, tmp_path / "w.weights", img_size=32)
    one_line_error(e, "80 class names")
    with pytest.raises(GanstackError) as e:
        dn.YoloV3Detector.from_files(cfg, tmp_path / "w.weights", tmp_path / "tiny.names", img_size=30)
    one_line_error(e, "img_size=30")
    assert len(dn.COCO_NAMES) == 80 and dn.COCO_NAMES[0] == "person" and dn.COCO_NAMES[79] == "toothbrush"


def test_bad_files_raise_one_line_errors(cfg, tmp_path):
    arrays = darknet_arrays(random_fill(3))
    net = dn.Darknet.from_cfg(cfg)
    with pytest.raises(GanstackError) as e:
        dn.Darknet.from_cfg(tmp_path / "missing.cfg")
    one_line_error(e, "missing.cfg", "not found")
    with pytest.raises(GanstackError) as e:
        dn.load_darknet_weights(net, tmp_path / "missing.weights")
    one_line_error(e, "missing.weights", "download")
    bad = tmp_path / "bad.cfg"
    bad.write_text(TINY_CFG.replace("[upsample]", "[maxpool]"))
    with pytest.raises(GanstackError) as e:
        dn.Darknet.from_cfg(bad)
    one_line_error(e, "bad.cfg", "[maxpool]", "unknown section")
    bad.write_text(TINY_CFG.replace("filters=16\nactivation=linear\n\n[yolo]\nmask = 0,1", "filters=15\n"
                                    "activation=linear\n\n[yolo]\nmask = 0,1"))
    with pytest.raises(GanstackError) as e:
        dn.Darknet.from_cfg(bad)
    one_line_error(e, "bad.cfg", "15 filters")
    for name, extra, drop, word in [("short", b"", 1, "too short"), ("long", b"\0" * 4, 0, "too long"),
                                    ("odd", b"\0\0", 0, "bad.weights")]:
        path = tmp_path / "bad.weights"
        write_weights(path, arrays[:-1] + [arrays[-1][:2] + (arrays[-1][2].ravel()[drop:],)], extra=extra)
        with pytest.raises(GanstackError) as e:
            dn.load_darknet_weights(net, path)
        one_line_error(e, "bad.weights", word)
    (tmp_path / "tiny.weights").write_bytes(b"\0" * 10)
    with pytest.raises(GanstackError) as e:
        dn.load_darknet_weights(net, tmp_path / "tiny.weights")
    one_line_error(e, "tiny.weights", "header")


# ---------------------------------------------------------------- SOA numbers


def det(labels, boxes=None):
    boxes = boxes or [[0.0, 0.0, 1.0, 1.0]] * len(labels)
    return dn.Detections(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                         torch.tensor(labels, dtype=torch.int64), torch.ones(len(labels)))


def test_class_recall_and_scores_by_hand():
    assert soa.class_recall([det([2, 5]), det([5]), det([]), det([2, 2])], 2) == (2, 4)
    report = soa.soa_scores([soa.ClassResult(1, "a", 3, 3), soa.ClassResult(2, "b", 6, 3),
                             soa.ClassResult(3, "c", 1, 0)])
    assert report.scores == pytest.approx({"SOA-C": 0.5, "SOA-I": 0.6})
    assert "Top-40" in report.note and "SOA-C" in report.lines()[0]


def test_top_and_bottom_40():
    # label i scored on 100 - i images; only labels 70..79 are always found
    classes = [soa.ClassResult(i, f"c{i}", 100 - i, (100 - i) if i >= 70 else 0) for i in range(80)]
    by_images = soa.soa_scores(classes).scores
    assert by_images["SOA-C"] == pytest.approx(10 / 80)
    assert by_images["SOA-I"] == pytest.approx(sum(range(21, 31)) / sum(range(21, 101)))
    # most images: labels 0..39 (never found); fewest: 40..79
    assert by_images["SOA-C-Top40"] == 0.0 and by_images["SOA-C-Bot40"] == pytest.approx(0.25)
    by_recall = soa.soa_scores(classes, rank_by="recall").scores
    assert by_recall["SOA-C-Top40"] == pytest.approx(0.25) and by_recall["SOA-C-Bot40"] == 0.0
    assert soa.soa_scores(classes).note == ""


def test_iou_by_hand():
    gt = {"i1": [[], [3, 5], [[0, 0, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]]],
          "i2": [[], [3], [[0.25, 0.25, 0.5, 0.5]]],
          "i3": [[], [5], [[0, 0, 1, 1]]],
          "i4": [[], [3], [[0, 0, 0.5, 0.5]]]}
    dets = {"i1": det([3, 3, 5], [[0, 0, 0.5, 0.25], [0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]]),  # best 1.0
            "i2": det([3], [[0.25, 0.25, 0.5, 0.5]]),  # a quarter of the true box: 0.25
            "i3": det([3]),  # no true box of class 3: not counted
            "i4": det([5])}  # class 3 not detected: not counted
    assert soa.class_iou(dets, gt, 3) == (pytest.approx(0.625), 2)
    assert soa.class_iou(dets, gt, 7) == (0.0, 0)
    assert soa.box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    with pytest.raises(GanstackError) as e:
        soa.class_iou({"other": det([3])}, gt, 3)
    one_line_error(e, "other")
    scores = soa.soa_scores([soa.ClassResult(3, "a", 4, 2, 0.625), soa.ClassResult(5, "b", 2, 1, 0.0)]).scores
    assert scores["SOA-C-IoU"] == pytest.approx(0.3125) and scores["SOA-I-IoU"] == pytest.approx(2.5 / 6)


# ---------------------------------------------------------------- caption files and the runner


def entries(n, image_id):
    return [{"image_id": image_id, "id": 1000 + i, "idx": [i, i % 5], "caption": f"caption {i}"} for i in range(n)]


@pytest.fixture
def captions(tmp_path):
    folder = tmp_path / "captions"
    folder.mkdir()
    with open(folder / "label_00_person.pkl", "wb") as f:
        pickle.dump(entries(5, 0), f, protocol=2)  # as Python 2 wrote them
    with open(folder / "label_01_bicycle.pkl", "wb") as f:
        pickle.dump(entries(2, 1), f)
    with open(folder / "label_04_plane.pkl", "wb") as f:
        pickle.dump(entries(1, 7), f, protocol=3)  # the shipped files' protocol
    (folder / "ground_truth_label_01.pkl").write_bytes(b"not a caption file")
    (folder / "notes.txt").write_text("ignored")
    return folder


def test_caption_files_in_the_official_layout(captions, tmp_path):
    files = soa.find_caption_files(captions)
    assert [(c.label, c.name, c.folder) for c in files] == [
        (0, "person", "label_00_person"), (1, "bicycle", "label_01_bicycle"), (4, "plane", "label_04_plane")]
    assert soa.read_captions(files[0].path) == entries(5, 0)
    assert soa.copies_per_caption(0) == 1 and soa.copies_per_caption(4) == 3
    evil = tmp_path / "label_09_evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(GanstackError) as e:
        soa.read_captions(evil)
    one_line_error(e, "label_09_evil.pkl")
    with open(evil, "wb") as f:
        pickle.dump({"caption": "a dict, not a list"}, f)
    with pytest.raises(GanstackError) as e:
        soa.read_captions(evil)
    one_line_error(e, "label_09_evil.pkl")
    with pytest.raises(GanstackError) as e:
        soa.find_caption_files(tmp_path / "nowhere")
    one_line_error(e, "nowhere")


class Always:
    def detect(self, images):
        return [det(list(range(80))) for _ in images]


class Never:
    def detect(self, images):
        return [det([]) for _ in images]


class ReadsLabel:
    """Finds the class written into the image's pixels, in the box layouts put there."""

    def detect(self, images):
        return [det([round(float(im.mean()) * 100)], [[0.25, 0.25, 0.75, 0.75]]) for im in images]


def test_runner_counts_images_and_stubs_give_one_and_zero(captions):
    seen = []

    def generate(batch):
        seen.append(len(batch))
        return torch.zeros(len(batch), 3, 8, 8)

    report = soa.run_soa(Always(), generate, captions, person_captions=3, batch_size=4)
    assert [(c.label, c.images, c.hits) for c in report.classes] == [(0, 3, 3), (1, 6, 6), (4, 3, 3)]
    assert report.scores == {"SOA-C": 1.0, "SOA-I": 1.0} and sum(seen) == 12 and max(seen) == 4
    report = soa.run_soa(Never(), generate, captions, person_captions=3)
    assert report.scores == {"SOA-C": 0.0, "SOA-I": 0.0}
    report = soa.run_soa(Always(), generate, captions, labels=[1], max_captions=1)
    assert [(c.label, c.images) for c in report.classes] == [(1, 3)]


def test_runner_iou_from_generator_layouts(captions):
    def generate(batch):  # draws the caption's image_id as the class, and reports its layout
        ids = [e["image_id"] for e in batch]
        images = torch.stack([torch.full((3, 8, 8), i / 100) for i in ids])
        return images, [([i], [[0.25, 0.25, 0.5, 0.5]]) for i in ids]

    report = soa.run_soa(ReadsLabel(), generate, captions)
    assert [(c.label, c.images, c.hits, c.iou) for c in report.classes] == [
        (0, 5, 5, 1.0), (1, 6, 6, 1.0), (4, 3, 0, 0.0)]  # plane's captions draw class 7
    assert report.scores["SOA-C"] == pytest.approx(2 / 3) and report.scores["SOA-I"] == pytest.approx(11 / 14)
    assert report.scores["SOA-C-IoU"] == pytest.approx(2 / 3)
    assert report.scores["SOA-I-IoU"] == pytest.approx(11 / 14)


def test_runner_with_the_tiny_yolo(cfg, captions, tmp_path):
    write_weights(tmp_path / "w.weights", darknet_arrays(random_fill(4)))
    (tmp_path / "n.names").write_text("person\nbicycle\ncar\n")
    yolo = dn.YoloV3Detector.from_files(cfg, tmp_path / "w.weights", tmp_path / "n.names", img_size=32,
                                        conf_thres=0.0)
    report = soa.run_soa(yolo, lambda batch: torch.rand(len(batch), 3, 64, 64), captions, labels=[0, 1])
    assert [c.images for c in report.classes] == [5, 6]
    assert 0.0 <= report.scores["SOA-C"] <= 1.0 and 0.0 <= report.scores["SOA-I"] <= 1.0
    with pytest.raises(GanstackError) as e:
        soa.run_soa(yolo, lambda batch: torch.rand(1, 3, 32, 32), captions, labels=[1])
    one_line_error(e, "one (3, H, W) image per caption")
