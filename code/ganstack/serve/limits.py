"""What one request to `ganstack serve` may ask for; beyond a limit the answer is a 4xx naming it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Limits:
    caption_chars: int = 500         # characters per caption
    inputs: int = 8                  # captions, layouts or images per request
    images: int = 64                 # images drawn per request (inputs x count x checkpoints)
    image_bytes: int = 8 * 2 ** 20   # an uploaded image's encoded size
    image_pixels: int = 2048 * 2048  # an uploaded image's width x height
    concurrent: int = 2              # generations admitted at once (they draw in turn); beyond them 429
    cached_models: int = 4           # loaded (run, checkpoint) generators kept, least recently used out
    kept_images: int = 1024          # generated PNGs kept for output=url


LIMIT_HELP = {
    "caption_chars": "characters per caption",
    "inputs": "captions, layouts or input images per request",
    "images": "images drawn per request (inputs x count x checkpoints)",
    "image_bytes": "bytes of an uploaded image",
    "image_pixels": "width x height of an uploaded image",
    "concurrent": "generations admitted at once (they draw in turn); more get 429",
    "cached_models": "loaded generators kept in memory (least recently used leave)",
    "kept_images": "generated images kept for output=url",
}
