"""DAMSM encoders (AttnGAN, Xu et al. 2018): a text encoder and two image encoders.

The text encoder and the Inception image encoder keep the attribute names of the
original RNN_ENCODER / CNN_ENCODER, so their state dicts have the same keys and the
authors' released ``text_encoder*.pth`` / ``image_encoder*.pth`` files load as they are.
Both image encoders return ``(local, global)``: region features (B, nef, h, w) for the
word-level loss and one code (B, nef) for the sentence-level loss.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
import yaml
from torchvision.models import inception_v3

from ganstack.errors import GanstackError

_RNNS = {"LSTM": nn.LSTM, "GRU": nn.GRU}
INCEPTION_SIZE = 299
INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"
INCEPTION_URL = f"https://download.pytorch.org/models/{INCEPTION_FILE}"
# Inception-v3 blocks up to the 17x17 region features, then those on to the 8x8 map.
_LOCAL_TRUNK = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1",
                "Conv2d_4a_3x3", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
                "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e")
_GLOBAL_TRUNK = ("Mixed_7a", "Mixed_7b", "Mixed_7c")
_TRUNK = _LOCAL_TRUNK + _GLOBAL_TRUNK


def _uniform_init(*modules: nn.Module, bound: float = 0.1) -> None:
    """The original's init of the embedding and the trainable image heads."""
    for module in modules:
        nn.init.uniform_(module.weight, -bound, bound)


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


class TextEncoder(nn.Module):
    """AttnGAN's RNN_ENCODER: word embedding -> dropout -> (bi)LSTM or GRU.

    ``nhidden`` is the output size (split over the two directions when bidirectional).
    ``fc_layer`` adds a Linear on word and sentence features after the RNN, an optional
    layer that reduces dimensionality and noise; it is off by default, as in the original.
    """

    def __init__(self, ntoken: int, *, ninput: int = 300, drop_prob: float = 0.5,
                 nhidden: int = 256, nlayers: int = 1, bidirectional: bool = True,
                 rnn_type: str = "LSTM", fc_layer: bool = False):
        super().__init__()
        if rnn_type not in _RNNS:
            raise GanstackError(f"RNN_TYPE {rnn_type!r} is not supported: set RNN_TYPE to LSTM or GRU")
        self.num_directions = 2 if bidirectional else 1
        if nhidden % self.num_directions:
            raise GanstackError(f"TEXT.EMBEDDING_DIM {nhidden} must be even for a bidirectional "
                                f"text encoder: set TEXT.EMBEDDING_DIM to an even number")
        self.rnn_type = rnn_type
        self.nlayers = nlayers
        self.nhidden = nhidden
        self.encoder = nn.Embedding(ntoken, ninput)
        self.drop = nn.Dropout(drop_prob)
        # The original passes drop_prob to the RNN too; it only acts between stacked
        # layers, and PyTorch warns about it with a single layer.
        self.rnn = _RNNS[rnn_type](ninput, nhidden // self.num_directions, nlayers,
                                   batch_first=True, dropout=drop_prob if nlayers > 1 else 0.0,
                                   bidirectional=bidirectional)
        self.fc = nn.Linear(nhidden, nhidden) if fc_layer else None
        _uniform_init(self.encoder)

    def forward(self, captions: torch.Tensor, cap_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """captions (B, T) word ids, cap_lens (B,) in any order -> words (B, nhidden, T), sentence (B, nhidden).

        Word features beyond each caption's length are zero.
        """
        batch, steps = captions.shape
        emb = self.drop(self.encoder(captions))
        packed = pack_padded_sequence(emb, cap_lens.cpu(), batch_first=True, enforce_sorted=False)
        output, hidden = self.rnn(packed)
        words, _ = pad_packed_sequence(output, batch_first=True, total_length=steps)
        if self.rnn_type == "LSTM":
            hidden = hidden[0]
        # Final hidden states of the last layer's directions, concatenated. (The original
        # reshaped all layers together, which is the same for its single layer.)
        sent = hidden.view(self.nlayers, self.num_directions, batch, -1)[-1]
        sent = sent.transpose(0, 1).reshape(batch, self.nhidden)
        if self.fc is not None:
            valid = torch.arange(steps, device=captions.device) < cap_lens.to(captions.device)[:, None]
            words = self.fc(words) * valid.unsqueeze(-1)  # keep padded positions at zero
            sent = self.fc(sent)
        return words.transpose(1, 2), sent


def _load_inception_trunk(weights_path: str | Path, expected: set[str]) -> dict[str, torch.Tensor]:
    """The trunk entries of a torchvision inception_v3 state dict file (fc and AuxLogits dropped)."""
    path = Path(weights_path)
    if not path.is_file():
        raise GanstackError(f"Inception weights file {path} not found: download torchvision's "
                            f"{INCEPTION_FILE} ({INCEPTION_URL}) and set DAMSM.INCEPTION_WEIGHTS to its path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch.load's messages can span many lines; the CLI shows one.
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise GanstackError(f"Inception weights file {path} could not be read ({reason}): download "
                            f"torchvision's {INCEPTION_FILE} again and set DAMSM.INCEPTION_WEIGHTS") from None
    trunk = {k: v for k, v in state.items() if k.split(".", 1)[0] in _TRUNK} if isinstance(state, dict) else {}
    # Files written before PyTorch 0.4 (e.g. the inception_v3_google-1a9a5a14.pth AttnGAN
    # downloaded) have no BatchNorm num_batches_tracked; it is unused in eval mode.
    missing = sorted(k for k in expected - trunk.keys() if not k.endswith("num_batches_tracked"))
    if missing:
        raise GanstackError(f"Inception weights file {path} is not a torchvision inception_v3 state dict "
                            f"(no {missing[0]}): set DAMSM.INCEPTION_WEIGHTS to torchvision's {INCEPTION_FILE}")
    return trunk


class InceptionImageEncoder(nn.Module):
    """AttnGAN's CNN_ENCODER: a frozen ImageNet Inception-v3 trunk and two trainable heads.

    Mixed_6e's 768x17x17 map -> ``emb_features`` (1x1 conv) -> local (B, nef, 17, 17);
    Mixed_7c's 2048x8x8 map -> average pool -> ``emb_cnn_code`` (Linear) -> global (B, nef).
    Images in [-1, 1] (what Google's Inception weights expect) of any size, resized to 299.

    ``weights_path`` is a torchvision ``inception_v3_google-*.pth`` file; None leaves the
    trunk randomly initialised (tests and benchmarks only).

    The trunk never trains. The original still left its BatchNorm layers in train mode, so
    batch statistics were used and the running statistics drifted; with ``freeze_bn`` (the
    default) the trunk stays in eval mode whatever ``.train()`` says. ``freeze_bn=False``
    reproduces the original.
    """

    def __init__(self, nef: int = 256, weights_path: str | Path | None = None, *, freeze_bn: bool = True):
        super().__init__()
        self.freeze_bn = freeze_bn
        net = inception_v3(weights=None, aux_logits=False, init_weights=weights_path is None)
        for name in _TRUNK:
            setattr(self, name, getattr(net, name))
        if weights_path is not None:
            expected = {k for k in self.state_dict() if k.split(".", 1)[0] in _TRUNK}
            try:
                self.load_state_dict(_load_inception_trunk(weights_path, expected), strict=False)
            except RuntimeError as exc:  # right names, wrong shapes
                lines = str(exc).strip().splitlines()
                raise GanstackError(f"Inception weights file {weights_path} does not fit inception_v3 "
                                    f"({lines[min(1, len(lines) - 1)].strip()}): set "
                                    f"DAMSM.INCEPTION_WEIGHTS to torchvision's {INCEPTION_FILE}") from None
        for param in self.parameters():
            param.requires_grad_(False)
        self.emb_features = nn.Conv2d(768, nef, kernel_size=1, bias=False)
        self.emb_cnn_code = nn.Linear(2048, nef)
        _uniform_init(self.emb_features, self.emb_cnn_code)
        self.train()

    def train(self, mode: bool = True) -> InceptionImageEncoder:
        super().train(mode)
        if self.freeze_bn:
            for name in _TRUNK:
                getattr(self, name).eval()
        return self

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """299x299 images -> (768x17x17 region map, 2048 pooled code)."""
        for name in _LOCAL_TRUNK:
            x = getattr(self, name)(x)
            if name in ("Conv2d_2b_3x3", "Conv2d_4a_3x3"):
                x = F.max_pool2d(x, kernel_size=3, stride=2)
        regions = x
        for name in _GLOBAL_TRUNK:
            x = getattr(self, name)(x)
        return regions, x.mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        regions, pooled = self._trunk(_resize(images, INCEPTION_SIZE))
        return self.emb_features(regions), self.emb_cnn_code(pooled)


def _down(cin: int, cout: int, *, kernel: int = 4, norm: bool = True) -> nn.Sequential:
    """Stride-2 conv (halves the size) -> [BatchNorm] -> LeakyReLU(0.2)."""
    layers = [nn.Conv2d(cin, cout, kernel, stride=2, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class SmallImageEncoder(nn.Module):
    """A small CNN image encoder trained from scratch (the offline default).

    Three stride-2 convs give region features at 1/8 of ``image_size`` -> ``emb_features``
    (1x1 conv) -> local (B, nef, image_size/8, image_size/8); one more stride-2 conv,
    average pooling and ``emb_cnn_code`` (Linear) give global (B, nef). Images in [-1, 1],
    resized to ``image_size`` when they differ.
    """

    def __init__(self, nef: int = 256, *, ndf: int = 64, image_size: int = 64):
        super().__init__()
        if image_size % 8:
            raise GanstackError(f"TREE.BASE_SIZE {image_size} is not a multiple of 8, which the cnn DAMSM "
                                f"image encoder needs: set TREE.BASE_SIZE to e.g. 64")
        self.image_size = image_size
        self.local_net = nn.Sequential(_down(3, ndf, norm=False), _down(ndf, ndf * 2), _down(ndf * 2, ndf * 4))
        self.global_net = _down(ndf * 4, ndf * 8, kernel=3)  # a 3x3 kernel also works on a 1x1 map
        self.emb_features = nn.Conv2d(ndf * 4, nef, kernel_size=1, bias=False)
        self.emb_cnn_code = nn.Linear(ndf * 8, nef)
        _uniform_init(self.emb_features, self.emb_cnn_code)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        regions = self.local_net(_resize(images, self.image_size))
        pooled = self.global_net(regions).mean(dim=(2, 3))
        return self.emb_features(regions), self.emb_cnn_code(pooled)


def build_image_encoder(kind: str, nef: int, *, weights_path: str | Path | None = None,
                        image_size: int = 64, freeze_bn: bool = True, ndf: int = 64) -> nn.Module:
    """The DAMSM image encoder named by DAMSM.IMAGE_ENCODER: "inception" or "cnn"."""
    if kind == "inception":
        return InceptionImageEncoder(nef, weights_path, freeze_bn=freeze_bn)
    if kind == "cnn":
        return SmallImageEncoder(nef, ndf=ndf, image_size=image_size)
    raise GanstackError(f"DAMSM.IMAGE_ENCODER {kind!r} is unknown: set it to 'inception' or 'cnn'")


def _read_state_dict(path: Path, missing: str) -> dict:
    """A saved state dict, or a one-line error: `missing` when absent, "unreadable" otherwise."""
    if not path.is_file():
        raise GanstackError(missing)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise GanstackError(f"{path}: unreadable as a state dict ({type(e).__name__}: {first})") from None
    if not isinstance(state, dict):
        raise GanstackError(f"{path}: not a state dict")
    return state


def load_text_encoder(path: str | Path) -> TextEncoder:
    """A TextEncoder rebuilt from a saved state dict (ours or AttnGAN's text_encoder*.pth).

    Vocabulary size, word-embedding size, hidden size, RNN type and the optional FC
    layer are read from the tensors' shapes, so the file needs no config beside it.
    """
    path = Path(path)
    state = _read_state_dict(path, f"TRAIN.NET_E={path}: text encoder not found; train DAMSM first "
                             "(./train.sh cpu cfg/damsm/shapes.yml writes output/damsm_shapes/text_encoder.pth)")
    try:
        ntoken, ninput = state["encoder.weight"].shape
        gates, hidden = state["rnn.weight_hh_l0"].shape
    except Exception as e:  # noqa: BLE001 - any unexpected file gets the same one-line answer
        raise GanstackError(f"TRAIN.NET_E={path}: not a DAMSM text encoder ({type(e).__name__}: {e})") from None
    rnn_type = {4: "LSTM", 3: "GRU"}.get(gates // hidden)
    bidirectional = "rnn.weight_hh_l0_reverse" in state
    nlayers = sum(1 for k in state if k.startswith("rnn.weight_hh_l") and not k.endswith("_reverse"))
    encoder = TextEncoder(ntoken, ninput=ninput, nhidden=hidden * (2 if bidirectional else 1), nlayers=nlayers,
                          bidirectional=bidirectional, rnn_type=rnn_type or "?", fc_layer="fc.weight" in state)
    encoder.load_state_dict(state)
    return encoder.eval().requires_grad_(False)


def load_image_encoder(path: str | Path, image_size: int = 64) -> nn.Module:
    """A DAMSM image encoder rebuilt from its saved state dict (image_encoder.pth).

    The kind and widths come from the tensors: the small cnn (``local_net.*``) or the
    Inception one (trunk + heads; AttnGAN's files carry the trunk too). The cnn's input
    size is not in the weights: pass the DAMSM run's resolution (images are resized to it).
    """
    path = Path(path)
    state = _read_state_dict(path, f"{path}: DAMSM image encoder not found; it is written beside "
                             "text_encoder.pth by the DAMSM job (./train.sh cpu cfg/damsm/shapes.yml)")
    try:
        nef = state["emb_cnn_code.weight"].shape[0]
        if "local_net.0.0.weight" in state:
            encoder = SmallImageEncoder(nef, ndf=state["local_net.0.0.weight"].shape[0], image_size=image_size)
        else:
            encoder = InceptionImageEncoder(nef, None)
        encoder.load_state_dict(state)
    except GanstackError:
        raise
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise GanstackError(f"{path}: not a DAMSM image encoder ({type(e).__name__}: {first})") from None
    encoder.weights_path = path  # identifies what it computes (e.g. cached features)
    return encoder.eval().requires_grad_(False)


def paired_image_encoder(net_e: str | Path) -> nn.Module | None:
    """The image encoder trained together with the text encoder `net_e` (image_encoder.pth in the
    same folder, as the DAMSM job exports them), at that run's resolution; None when absent."""
    folder = Path(net_e).parent
    if not net_e or not (folder / "image_encoder.pth").is_file():
        return None
    size = 64
    if (folder / "config.yml").is_file():  # the DAMSM run's resolution: the cnn encoder's input size
        tree = (yaml.safe_load((folder / "config.yml").read_text()) or {}).get("TREE", {})
        size = tree.get("BASE_SIZE", 64) * 2 ** (tree.get("BRANCH_NUM", 1) - 1)
    return load_image_encoder(folder / "image_encoder.pth", image_size=size)
