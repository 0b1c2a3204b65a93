"""Sentence embeddings of captions from a trained DAMSM text encoder (TRAIN.NET_E).

GAN-INT-CLS-style variants condition on one vector per caption. Reed et al.
shipped those vectors precomputed (data/reed_h5.py); with our own encoder any
caption, including free text at sampling time, gets one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import GanstackError
from ..nets.damsm import load_text_encoder
from .text import Vocabulary, pad_caption


class SentenceEmbedder:
    def __init__(self, net_e: str | Path, vocab: Vocabulary, words_num: int, device: torch.device | str = "cpu"):
        self.encoder = load_text_encoder(net_e).to(device)
        vocab_size = self.encoder.encoder.num_embeddings
        if vocab_size != len(vocab):
            raise GanstackError(f"TRAIN.NET_E={net_e}: its vocabulary has {vocab_size} words but the data's has "
                                f"{len(vocab)}; use the text encoder trained on this DATA_DIR")
        self.vocab, self.words_num, self.device = vocab, words_num, torch.device(device)
        self.dim = self.encoder.nhidden

    @torch.no_grad()
    def embed_ids(self, captions: torch.Tensor, cap_lens: torch.Tensor) -> torch.Tensor:
        """Padded word ids (B, T) and lengths (B,) -> sentence codes (B, D), float32."""
        return self.embed_words(captions, cap_lens)[1]

    @torch.no_grad()
    def embed_words(self, captions: torch.Tensor, cap_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded word ids (B, T) and lengths (B,) -> word features (B, D, T) (zero beyond each
        length) and sentence codes (B, D), float32: what AttnGAN's generator attends to."""
        words, sentence = self.encoder(captions.to(self.device), cap_lens.to(self.device))
        return words.float(), sentence.float()

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Free text -> padded ids and lengths; unknown words are dropped with a warning."""
        rng = np.random.default_rng(0)  # over-long captions keep the same word subset every time
        rows = [pad_caption(self.vocab.encode(t), self.words_num, rng) for t in texts]
        return torch.from_numpy(np.stack([r[0] for r in rows])), torch.tensor([r[1] for r in rows])

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        return self.embed_ids(*self.encode(texts))

    def padded(self, captions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions of a split -> padded ids (N, words_num) and lengths: the first words_num words each."""
        ids = np.zeros((len(captions), self.words_num), dtype=np.int64)
        lens = []
        for row, caption in zip(ids, captions):
            kept = caption[:self.words_num]
            row[:len(kept)] = kept
            lens.append(max(len(kept), 1))
        return torch.from_numpy(ids), torch.tensor(lens, dtype=torch.long)

    def embed_all(self, captions: list[list[int]], batch_size: int = 512) -> torch.Tensor:
        """Every caption of a split, in order -> (N, D) on the CPU (the first words_num words each)."""
        ids, lens = self.padded(captions)
        out = [self.embed_ids(ids[s:s + batch_size], lens[s:s + batch_size]).cpu()
               for s in range(0, len(captions), batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.dim)
