"""YOLOv3 from darknet's own files: the ``.cfg`` text and the binary ``.weights``.

SOA (Hinz et al., TPAMI 2020) scores generated images with the original YOLOv3
(``yolov3.cfg`` + ``yolov3.weights`` from the darknet project), so this module reads
those two files as darknet writes them instead of relying on a converted checkpoint.

Supported sections: [net], [convolutional], [shortcut], [route], [upsample], [yolo]:
everything ``yolov3.cfg`` uses. Any other section is an error rather than a silently
wrong network.

Weights file: int32 major, minor, revision; then "seen" as int64 when
major*10+minor >= 2 (int32 before); then, for every [convolutional] in cfg order,
float32 (bn bias, bn weight, running mean, running var) if batch-normalised else conv
bias, followed by the conv weights (out, in, kh, kw).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms

from ..errors import GanstackError

__all__ = [
    "COCO_NAMES", "Section", "parse_cfg", "Darknet", "load_darknet_weights",
    "Detections", "Detector", "YoloV3Detector", "read_names",
]

# darknet's data/coco.names, the label order of yolov3.weights and of SOA's label_XX files.
COCO_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "sofa", "pottedplant", "bed", "diningtable", "toilet", "tvmonitor", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)

_SECTIONS = ("net", "network", "convolutional", "shortcut", "route", "upsample", "yolo")
_HINT = "use the yolov3.cfg / yolov3.weights pair from the darknet project"


# ---------------------------------------------------------------- cfg parsing


@dataclass
class Section:
    """One ``[type]`` block of a cfg file; ``line`` is where it starts (for messages)."""

    type: str
    line: int
    options: dict[str, str] = field(default_factory=dict)
    source: str = "cfg"

    def where(self) -> str:
        return f"{self.source}:{self.line} [{self.type}]"

    def get(self, key: str, default=None, kind=int):
        """The option as ``kind``; without a default the key is required."""
        if key not in self.options:
            if default is None:
                raise GanstackError(f"{self.where()}: missing '{key}='; add it or {_HINT}")
            return default
        try:
            return kind(self.options[key])
        except ValueError:
            raise GanstackError(
                f"{self.where()}: {key}={self.options[key]!r} is not {kind.__name__}; fix the value") from None

    def ints(self, key: str) -> list[int]:
        text = self.options.get(key, "")
        try:
            return [int(float(v)) for v in text.split(",") if v.strip()]
        except ValueError:
            raise GanstackError(f"{self.where()}: {key}={text!r} must be a comma-separated list of numbers") from None


def parse_cfg(path: str | os.PathLike) -> list[Section]:
    """Read a darknet cfg into sections, the first being [net]."""
    path = Path(path)
    if not path.is_file():
        raise GanstackError(f"{path}: darknet cfg not found; pass the .cfg that belongs to the weights ({_HINT})")
    sections: list[Section] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":  # darknet's comment markers
            continue
        if line.startswith("["):
            name = line[1:-1].strip().lower() if line.endswith("]") else ""
            if name not in _SECTIONS:
                known = ", ".join(f"[{t}]" for t in _SECTIONS if t != "network")
                raise GanstackError(f"{path}:{number}: unknown section {line!r}; ganstack reads only {known} "
                                    "(YOLOv3 cfgs); use yolov3.cfg")
            sections.append(Section(name, number, source=str(path)))
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1].options[key.strip()] = value.strip()
        else:
            raise GanstackError(f"{path}:{number}: expected '[section]' or 'key=value', got {line!r}")
    if not sections or sections[0].type not in ("net", "network"):
        raise GanstackError(f"{path}: a darknet cfg starts with a [net] section; {_HINT}")
    return sections


# ---------------------------------------------------------------- layers


class ConvBlock(nn.Module):
    """conv (+ batch norm) (+ leaky 0.1), one darknet [convolutional]."""

    def __init__(self, cin: int, cout: int, size: int, stride: int, pad: int, bn: bool, leaky: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, size, stride, pad, bias=not bn)
        self.bn = nn.BatchNorm2d(cout) if bn else None
        self.leaky = leaky

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.leaky_relu(x, 0.1) if self.leaky else x

    def darknet_tensors(self) -> list[torch.Tensor]:
        """The tensors in the order the .weights file stores them."""
        if self.bn is not None:
            first = [self.bn.bias, self.bn.weight, self.bn.running_mean, self.bn.running_var]
        else:
            first = [self.conv.bias]
        return [t.data for t in first] + [self.conv.weight.data]


class Route(nn.Module):
    def __init__(self, sources: list[int]):
        super().__init__()
        self.sources = sources


class Shortcut(nn.Module):
    def __init__(self, source: int, leaky: bool):
        super().__init__()
        self.source, self.leaky = source, leaky

    def forward(self, x, other):
        x = x + other
        return F.leaky_relu(x, 0.1) if self.leaky else x


class YoloLayer(nn.Module):
    """Decodes one detection scale; passes its input on unchanged (routes may read it)."""

    def __init__(self, anchors: list[tuple[int, int]], classes: int):
        super().__init__()
        self.classes = classes
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32), persistent=False)

    def decode(self, p: torch.Tensor, in_h: int, in_w: int) -> torch.Tensor:
        """(N, A*(5+C), H, W) -> (N, A*H*W, 5+C): cx, cy, w, h in input pixels, objectness, classes."""
        n, _, h, w = p.shape
        a = self.anchors.shape[0]
        p = p.view(n, a, 5 + self.classes, h, w).permute(0, 1, 3, 4, 2)  # darknet: anchor-major channels
        gy, gx = torch.meshgrid(torch.arange(h, device=p.device), torch.arange(w, device=p.device), indexing="ij")
        cx = (p[..., 0].sigmoid() + gx) * (in_w / w)
        cy = (p[..., 1].sigmoid() + gy) * (in_h / h)
        # anchors are in pixels of the network input, so exp(t) * anchor needs no stride
        bw = p[..., 2].exp() * self.anchors[:, 0].view(1, a, 1, 1)
        bh = p[..., 3].exp() * self.anchors[:, 1].view(1, a, 1, 1)
        out = torch.cat([torch.stack([cx, cy, bw, bh], -1), p[..., 4:].sigmoid()], -1)
        return out.reshape(n, a * h * w, 5 + self.classes)


def _index(sec: Section, i: int, value: int) -> int:
    """darknet: negative = relative to this layer, otherwise absolute."""
    j = i + value if value < 0 else value
    if not 0 <= j < i:
        raise GanstackError(f"{sec.where()}: layer {value} points outside layers 0..{i - 1}; fix the cfg")
    return j


class Darknet(nn.Module):
    """A darknet network built from parsed sections; ``layers[i]`` is cfg layer i."""

    def __init__(self, sections: Sequence[Section]):
        super().__init__()
        net = sections[0]
        self.source = net.source
        self.in_channels = net.get("channels", 3)
        self.layers = nn.ModuleList()
        self.out_channels: list[int] = []
        scale: list[float] = []  # input pixels per output pixel, for the input-size check
        c, s = self.in_channels, 1.0
        for i, sec in enumerate(sections[1:]):
            layer, c, s = self._build(sec, i, c, s, scale)
            self.layers.append(layer)
            self.out_channels.append(c)
            scale.append(s)
        if not any(isinstance(m, YoloLayer) for m in self.layers):
            raise GanstackError(f"{self.source}: no [yolo] section, so nothing to detect; {_HINT}")
        self.size_multiple = int(max(scale))
        # keep only the outputs a later route/shortcut reads
        self._kept = {j for m in self.layers for j in getattr(m, "sources", [getattr(m, "source", -1)])}

    def _build(self, sec: Section, i: int, c: int, s: float, scale: list[float]):
        chans = self.out_channels
        if sec.type == "convolutional":
            size, stride = sec.get("size", 1), sec.get("stride", 1)
            pad = size // 2 if sec.get("pad", 0) else sec.get("padding", 0)
            act = sec.options.get("activation", "logistic")
            if act not in ("leaky", "linear"):
                raise GanstackError(f"{sec.where()}: activation={act} is not supported (leaky, linear); {_HINT}")
            if sec.get("groups", 1) != 1 or sec.get("dilation", 1) != 1:
                raise GanstackError(f"{sec.where()}: groups/dilation are not supported; {_HINT}")
            filters = sec.get("filters")
            block = ConvBlock(c, filters, size, stride, pad, bool(sec.get("batch_normalize", 0)), act == "leaky")
            return block, filters, s * stride
        if sec.type == "shortcut":
            j = _index(sec, i, sec.get("from"))
            if chans[j] != c:
                raise GanstackError(f"{sec.where()}: adds {chans[j]} channels to {c}; fix 'from='")
            act = sec.options.get("activation", "linear")
            if act not in ("leaky", "linear"):
                raise GanstackError(f"{sec.where()}: activation={act} is not supported (leaky, linear)")
            return Shortcut(j, act == "leaky"), c, s
        if sec.type == "route":
            sources = [_index(sec, i, v) for v in sec.ints("layers")]
            if not sources:
                raise GanstackError(f"{sec.where()}: missing 'layers='; add the layer indices to join")
            return Route(sources), sum(chans[j] for j in sources), scale[sources[0]]
        if sec.type == "upsample":
            stride = sec.get("stride", 2)
            if stride < 1:
                raise GanstackError(f"{sec.where()}: stride={stride}; only upsampling (stride >= 1) is supported")
            return nn.Upsample(scale_factor=stride, mode="nearest"), c, s / stride
        if sec.type == "yolo":
            classes, pairs = sec.get("classes", 20), sec.ints("anchors")
            anchors = list(zip(pairs[0::2], pairs[1::2]))
            mask = sec.ints("mask") or list(range(len(anchors)))
            if len(pairs) % 2 or any(not 0 <= m < len(anchors) for m in mask):
                raise GanstackError(f"{sec.where()}: mask {mask} does not index the {len(anchors)} anchor pairs")
            if c != len(mask) * (classes + 5):
                raise GanstackError(f"{sec.where()}: the layer before has {c} filters but {len(mask)} anchors x "
                                    f"({classes} classes + 5) = {len(mask) * (classes + 5)} are needed")
            return YoloLayer([anchors[m] for m in mask], classes), c, s
        raise GanstackError(f"{sec.where()}: section not allowed here")  # [net] twice

    @classmethod
    def from_cfg(cls, path: str | os.PathLike) -> "Darknet":
        return cls(parse_cfg(path))

    @property
    def heads(self) -> list[YoloLayer]:
        return [m for m in self.layers if isinstance(m, YoloLayer)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) -> decoded boxes (N, boxes, 5 + classes), all heads joined."""
        in_h, in_w = x.shape[-2:]
        outputs: dict[int, torch.Tensor] = {}
        found = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Route):
                parts = [outputs[j] for j in layer.sources]
                x = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
            elif isinstance(layer, Shortcut):
                x = layer(x, outputs[layer.source])
            elif isinstance(layer, YoloLayer):
                found.append(layer.decode(x, in_h, in_w))
            else:
                x = layer(x)
            if i in self._kept:
                outputs[i] = x
        return torch.cat(found, 1)

    def conv_blocks(self) -> list[ConvBlock]:
        return [m for m in self.layers if isinstance(m, ConvBlock)]

    def num_darknet_weights(self) -> int:
        return sum(t.numel() for b in self.conv_blocks() for t in b.darknet_tensors())


# ---------------------------------------------------------------- weights


def load_darknet_weights(net: Darknet, path: str | os.PathLike) -> dict[str, int]:
    """Fill ``net`` from a darknet .weights file; returns its header. The size must match exactly."""
    path = Path(path)
    if not path.is_file():
        raise GanstackError(f"{path}: weights file not found; download yolov3.weights "
                            "(https://pjreddie.com/media/files/yolov3.weights) and pass its path")
    data = path.read_bytes()
    if len(data) < 16:
        raise GanstackError(f"{path}: {len(data)} bytes is too short for a darknet weights header; "
                            "download the file again")
    major, minor, revision = np.frombuffer(data, "<i4", 3)
    # darknet's rule for the width of "seen" (size_t from version 0.2 on)
    wide = major * 10 + minor >= 2 and major < 1000 and minor < 1000
    start = 20 if wide else 16
    seen = int(np.frombuffer(data, "<i8" if wide else "<i4", 1, 12)[0])
    body = len(data) - start
    need = net.num_darknet_weights()
    if body < 0 or body % 4 or body // 4 != need:
        have = max(body, 0) / 4
        what = "too short (truncated download?)" if have < need else "too long (weights of another network?)"
        raise GanstackError(f"{path}: holds {have:g} float32 values after the header but {net.source} needs "
                            f"{need}: {what}; use the .weights file that belongs to this cfg")
    values = torch.from_numpy(np.frombuffer(data, "<f4", need, start).copy())
    at = 0
    for block in net.conv_blocks():
        for t in block.darknet_tensors():
            t.copy_(values[at:at + t.numel()].view_as(t))
            at += t.numel()
    return {"major": int(major), "minor": int(minor), "revision": int(revision), "seen": seen}


# ---------------------------------------------------------------- detector


class Detections(NamedTuple):
    """One image's detections: boxes (K, 4) xyxy normalised to [0, 1], labels (K,) int64, scores (K,)."""

    boxes: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor


class Detector(Protocol):
    """What SOA needs from a detector (YOLOv3 here; a shapes judge can be another)."""

    def detect(self, images: torch.Tensor) -> list[Detections]:
        """images: float (N, 3, H, W) in [0, 1]; one Detections per image, on the CPU."""
        ...


def read_names(path: str | os.PathLike) -> list[str]:
    """A darknet .names file: one class name per line."""
    path = Path(path)
    if not path.is_file():
        raise GanstackError(f"{path}: class names file not found; pass darknet's coco.names or leave it out")
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


class YoloV3Detector:
    """YOLOv3 as SOA runs it: inputs resized to ``img_size``, threshold, class-wise NMS.

    ``threshold_on="objectness"`` keeps a box when its objectness >= conf_thres, as SOA's
    calculate_soa.py does; ``"score"`` thresholds objectness x class probability. Either
    way a box takes its most probable class and is scored and NMS-ed by objectness x
    class probability. NMS never removes a class from an image, so SOA-C/SOA-I do not
    depend on the NMS details (the official script also averages merged boxes; we do not).
    """

    def __init__(self, net: Darknet, names: Sequence[str] = COCO_NAMES, img_size: int = 256,
                 conf_thres: float = 0.5, nms_thres: float = 0.4, threshold_on: str = "objectness",
                 device: str | torch.device | None = None):
        classes = {h.classes for h in net.heads}
        if len(classes) != 1 or len(names) != classes.pop():
            raise GanstackError(f"{net.source}: [yolo] classes={sorted({h.classes for h in net.heads})} do not match "
                                f"the {len(names)} class names; pass the names file that belongs to the cfg")
        if img_size <= 0 or img_size % net.size_multiple:
            raise GanstackError(f"img_size={img_size} must be a positive multiple of {net.size_multiple} for "
                                f"{net.source}; use e.g. 256 (SOA's resolution)")
        if threshold_on not in ("objectness", "score"):
            raise GanstackError(f"threshold_on={threshold_on!r}; use 'objectness' or 'score'")
        self.net = net.eval() if device is None else net.eval().to(device)
        self.names = list(names)
        self.img_size, self.conf_thres, self.nms_thres = img_size, conf_thres, nms_thres
        self.threshold_on = threshold_on
        self.device = next(net.parameters()).device

    @classmethod
    def from_files(cls, cfg_path, weights_path, names_path=None, img_size: int = 256,
                   conf_thres: float = 0.5, nms_thres: float = 0.4, **kwargs) -> "YoloV3Detector":
        net = Darknet.from_cfg(cfg_path)
        load_darknet_weights(net, weights_path)
        names = COCO_NAMES if names_path is None else read_names(names_path)
        return cls(net, names, img_size, conf_thres, nms_thres, **kwargs)

    @torch.no_grad()
    def detect(self, images: torch.Tensor) -> list[Detections]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise GanstackError(f"detect: expected images (N, 3, H, W) in [0, 1], got shape {tuple(images.shape)}")
        x = images.to(self.device, torch.float32)
        size = self.img_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        pred = self.net(x)
        prob, label = pred[..., 5:].max(-1)
        score = pred[..., 4] * prob
        keep = (pred[..., 4] if self.threshold_on == "objectness" else score) >= self.conf_thres
        half = pred[..., 2:4] / 2
        boxes = (torch.cat([pred[..., :2] - half, pred[..., :2] + half], -1) / size).clamp(0, 1)
        out = []
        for b, s, lab, k in zip(boxes, score, label, keep):
            b, s, lab = b[k], s[k], lab[k]
            chosen = batched_nms(b, s, lab, self.nms_thres)
            out.append(Detections(b[chosen].cpu(), lab[chosen].cpu(), s[chosen].cpu()))
        return out
