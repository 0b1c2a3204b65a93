"""Inception feature extraction, images/sec: ganstack's evaluation path vs torch-fidelity's API.

    .venv/bin/python benchmarks/feature_extraction.py [--images 256] [--size 64] [--batch 64]
                                                     [--weights FILE] [--device auto]

Both sides get the same uint8 images held in memory and the same extractor weights
(--weights, else random weights in the real file format: the timing does not depend on
the values). ganstack: `metrics.suite.extract` with `InceptionFeatures`, the path
`ganstack eval` streams generated images through. torch-fidelity: `calculate_metrics`
with isc+fid on a Dataset of the same tensors (its feature extraction dominates; the
statistics take milliseconds). Each is timed once after a warm-up batch, both including
an 8-image second input (torch-fidelity needs two inputs for FID).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from ganstack.metrics.inception import InceptionFeatures, write_random_weights
from ganstack.metrics.suite import extract


class TensorImages(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--size", type=int, default=64, help="image side before the 299 px resize")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--weights", help="pt_inception-2015-12-05 file (default: random weights in that format)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    weights = args.weights or write_random_weights(Path(tempfile.mkdtemp()) / "pt_inception-2015-12-05.pth")
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, args.size, args.size), dtype=torch.uint8, generator=gen)

    extractor = InceptionFeatures(weights, device)
    extract({"inception": extractor}, [images[:8]])  # warm-up
    start = time.perf_counter()
    extract({"inception": extractor}, images.split(args.batch))
    extract({"inception": extractor}, [images[:8]])  # the same second input as torch-fidelity gets
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    ours = args.images / (time.perf_counter() - start)

    import torch_fidelity
    common = dict(cuda=device.type == "cuda", isc=True, fid=True, feature_extractor="inception-v3-compat",
                  feature_extractor_weights_path=str(weights), batch_size=args.batch, verbose=False, cache=False,
                  isc_splits=2)
    torch_fidelity.calculate_metrics(input1=TensorImages(images[:8]), input2=TensorImages(images[:8]), **common)
    start = time.perf_counter()
    torch_fidelity.calculate_metrics(input1=TensorImages(images), input2=TensorImages(images[:8]), **common)
    theirs = args.images / (time.perf_counter() - start)

    print(f"device {device}, {args.images} images of {args.size} px, batch {args.batch}")
    print(f"ganstack eval extraction : {ours:.1f} img/s")
    print(f"torch-fidelity API       : {theirs:.1f} img/s")
    print("(both also extract the same 8-image second input inside the timing)")


if __name__ == "__main__":
    main()
