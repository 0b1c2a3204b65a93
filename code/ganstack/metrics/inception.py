"""The standard Inception network of IS/FID/KID, from a local weights file.

torch-fidelity's `inception-v3-compat` extractor (a bit-faithful port of the
TensorFlow graph the published scores were computed with), loading the
`pt_inception-2015-12-05` weights from EVAL.INCEPTION_WEIGHTS. Nothing is
downloaded at run time.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import GanstackError

EXTRACTOR_NAME = "inception-v3-compat"
WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
               "weights-inception-2015-12-05-6726825d.pth")
FEATURES = ("2048", "logits_unbiased")  # pool features for FID/KID, logits without bias for IS (as torch-fidelity)


class InceptionFeatures(torch.nn.Module):
    """uint8 images (B, 3, H, W) -> {"pool": (B, 2048), "logits": (B, 1008)} in float32."""

    name = "inception"

    def __init__(self, weights_path: str | Path, device: str | torch.device = "cpu"):
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = Path(weights_path) if weights_path else None
        if path is None or not path.is_file():
            raise GanstackError(
                f"EVAL.INCEPTION_WEIGHTS={weights_path or '(empty)'}: Inception weights file not found; download "
                f"{WEIGHTS_URL} on a machine with internet, copy it here and set EVAL.INCEPTION_WEIGHTS to its path "
                "(nothing is downloaded at run time)")
        try:
            self.net = FeatureExtractorInceptionV3(EXTRACTOR_NAME, list(FEATURES),
                                                   feature_extractor_weights_path=str(path))
        except (RuntimeError, KeyError, EOFError, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise GanstackError(f"{path}: not the pt_inception-2015-12-05 weights ({first}); get {WEIGHTS_URL}") from None
        self.net.to(device)
        self.weights_path = path

    @torch.no_grad()
    def forward(self, images_u8: torch.Tensor) -> dict[str, torch.Tensor]:
        pool, logits = self.net(images_u8.to(next(self.net.parameters()).device))
        return {"pool": pool, "logits": logits}


def write_random_weights(path: str | Path, seed: int = 0) -> Path:
    """Randomly initialised weights in the pt_inception-2015-12-05 file format (a plain state dict),
    for tests, benchmarks and offline smoke runs; BN statistics are calibrated on random images so
    the features stay lively. Scores computed with them mean nothing beyond parity and speed."""
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as fe
    torch.manual_seed(seed)
    with mock.patch.object(fe, "load_state_dict_from_url", return_value={}), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None):
        net = fe.FeatureExtractorInceptionV3(EXTRACTOR_NAME, ["2048"])
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batch
    net.train()
    with torch.no_grad():
        net(torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path

