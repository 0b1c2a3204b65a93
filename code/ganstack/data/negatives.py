"""Hard negative captions by context-preserving word substitution.

A contrastive text-image loss over random batches rarely meets two captions that differ in one
attribute only, so an encoder can match on the easy attributes (on shapes: colour and place) and
never learn the rest (shape). A hard negative is a true caption with one content word replaced
by another word seen between the same two neighbours somewhere in the training captions
("a red _ at" -> circle, star, ...): it stays a well-formed caption of the same kind, so the only
way to tell it from the truth is to look at the image (NegCLIP's swaps, Yuksekgonul et al. 2023,
without a part-of-speech tagger).

A replacement never comes from the image's own captions: words its other captions use at all
(paraphrases such as "disc" for "circle", "little" for "small") could make the "negative" true.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

_START, _END = -1, -2  # the neighbours of a caption's first and last word


def inverse_document_frequency(captions, vocab_size: int) -> np.ndarray:
    """(vocab_size,) log(N / (1 + document frequency)), floored at 0, over a list of id lists."""
    df = np.zeros(vocab_size)
    for ids in captions:
        df[np.unique(np.asarray(ids, dtype=np.int64))] += 1
    return np.log(max(len(captions), 1) / (1 + df)).clip(min=0)


class WordSubstitutes:
    """Draws hard negative captions for a batch of true ones.

    captions: every caption of the split as word-id lists, image-major
    (caption k of image i at i * captions_per_image + k), as AttnGAN datasets keep them.
    """

    def __init__(self, captions, captions_per_image: int, vocab_size: int):
        self.weights = inverse_document_frequency(captions, vocab_size)  # content words get picked
        middles: dict[tuple[int, int], set[int]] = defaultdict(set)
        for ids in captions:
            padded = [_START, *ids, _END]
            for left, word, right in zip(padded, padded[1:], padded[2:]):
                middles[(left, right)].add(int(word))
        self.middles = {ctx: np.array(sorted(words)) for ctx, words in middles.items() if len(words) > 1}
        self.image_words = [np.unique(np.concatenate([np.asarray(c, dtype=np.int64)
                                                      for c in captions[i:i + captions_per_image]]))
                            for i in range(0, len(captions), captions_per_image)]

    def replacements(self, ids: list[int], position: int, image: int) -> np.ndarray:
        """Words that may replace ids[position]: seen between its neighbours, absent from the image's captions."""
        left = ids[position - 1] if position > 0 else _START
        right = ids[position + 1] if position + 1 < len(ids) else _END
        seen = self.middles.get((left, right))
        if seen is None:
            return np.empty(0, dtype=np.int64)
        return seen[~np.isin(seen, self.image_words[image])]

    def negatives(self, captions: torch.Tensor, cap_lens: torch.Tensor, images: torch.Tensor, count: int,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Up to `count` negatives per caption, each changing a different word.

        captions (B, T) word ids, cap_lens (B,), images (B,) dataset index of each caption's image.
        Returns (negatives (K, T), their lengths (K,), owner (K,): the row of the caption each came
        from). Draws come from torch's RNG (checkpointed, so a resumed run draws the same).
        """
        seed = int(torch.randint(2 ** 62, (1,), generator=generator))
        rng = np.random.default_rng(seed)
        rows = captions.cpu().tolist()
        lens = cap_lens.cpu().tolist()
        out, owner = [], []
        for row, (ids, length, image) in enumerate(zip(rows, lens, images.cpu().tolist())):
            ids = ids[:length]
            # IDF-0 words (in every caption) are never replaced: skip their table look-ups
            options = {p: self.replacements(ids, p, image) for p in range(length) if self.weights[ids[p]] > 0}
            places = [p for p, words in options.items() if len(words)]
            if not places:
                continue
            weights = np.array([self.weights[ids[p]] for p in places])
            picked = rng.choice(places, size=min(count, len(places)), replace=False, p=weights / weights.sum())
            for p in picked:
                neg = list(rows[row])
                neg[p] = int(rng.choice(options[p]))
                out.append(neg)
                owner.append(row)
        device = captions.device
        if not out:
            return captions[:0], cap_lens[:0], torch.zeros(0, dtype=torch.long, device=device)
        owner_t = torch.tensor(owner, device=device)
        return torch.tensor(out, dtype=captions.dtype, device=device), cap_lens[owner_t], owner_t
