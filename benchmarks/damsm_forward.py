"""DAMSM step cost: forward + backward of both encoders and both losses, in images/sec.

    .venv/bin/python benchmarks/damsm_forward.py [--batch 48] [--steps 3] [--warmup 1] [--encoders cnn inception]
                                                [--device auto] [--amp bf16]

cnn: the small image encoder at 64 px; inception: the Inception-v3 encoder at 299 px
with a random trunk (the timing does not depend on the weights). Captions of
TEXT.WORDS_NUM 18 words with random lengths, 10 classes for the masking, AttnGAN's
gammas (4, 5, 10). No optimizer step: this isolates the network and loss cost.
"""
from __future__ import annotations

import argparse
import time

import torch

from ganstack.losses import damsm_sentence_loss, damsm_word_loss
from ganstack.nets.damsm import TextEncoder, build_image_encoder

SIZES = {"cnn": 64, "inception": 299}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(kind: str, batch: int, steps: int, warmup: int, device: torch.device, amp: str | None) -> float:
    torch.manual_seed(0)
    text = TextEncoder(5000).to(device).train()
    image = build_image_encoder(kind, 256, image_size=SIZES[kind]).to(device).train()
    images = torch.rand(batch, 3, SIZES[kind], SIZES[kind], device=device) * 2 - 1
    cap_lens = torch.randint(5, 19, (batch,))
    captions = torch.randint(1, 5000, (batch, 18)) * (torch.arange(18) < cap_lens[:, None])
    captions = captions.to(device)
    class_ids = torch.randint(0, 10, (batch,))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            words, sent = text(captions, cap_lens)
            local, code = image(images)
            w0, w1, _ = damsm_word_loss(local, words, cap_lens, class_ids, 4.0, 5.0, 10.0)
            s0, s1 = damsm_sentence_loss(code, sent, class_ids, 10.0)
        (w0 + w1 + s0 + s1).backward()

    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--encoders", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--amp", choices=["bf16", "fp16"], default=None)
    args = ap.parse_args()
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"DAMSM forward+backward, batch {args.batch}, {args.steps} timed steps, {where}, "
          f"{args.amp or 'fp32'}")
    for kind in args.encoders:
        rate = bench(kind, args.batch, args.steps, args.warmup, device, args.amp)
        print(f"{kind:>9} ({SIZES[kind]} px): {rate:8.1f} images/sec")


if __name__ == "__main__":
    main()
