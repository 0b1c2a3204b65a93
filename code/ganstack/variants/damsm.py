"""DAMSM pretraining (AttnGAN, Xu et al. 2018, section 3.3).

A text encoder (bi-LSTM/GRU) and an image encoder are trained so that each
word attends to the image regions it describes (word loss) and each caption's
sentence code matches its image's global code (sentence loss); both losses are
cross-entropies over the batch in the two directions, with pairs of the same
class masked out as negatives. The trained encoders are exported as
text_encoder.pth / image_encoder.pth; later variants load them by TRAIN.NET_E.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid

from ..data import attngan
from ..data.negatives import WordSubstitutes
from ..data.sampler import ResumableSampler
from ..engine.optim import OptimizerSpec, Updater, fused_adam
from ..io import atomic_path
from ..losses import damsm_sentence_loss, damsm_word_loss
from ..metrics.rprecision import r_precision
from ..nets.damsm import TextEncoder, build_image_encoder
from ..visual import attention_overlay
from .base import Variant, unwrap

ENCODER_FILES = {"text_encoder": "text_encoder.pth", "image_encoder": "image_encoder.pth"}


class DAMSM(Variant):
    name = "damsm"
    lr_schedule = "exponential"  # x0.98 per epoch down to 1/10 (pretrain_DAMSM.py)
    collate = staticmethod(attngan.collate)

    def dataset(self, split: str, train: bool) -> attngan.TextImageDataset:
        cfg = self.cfg
        return attngan.TextImageDataset(
            cfg.DATA_DIR, split, image_sizes=[self.image_size], words_num=cfg.TEXT.WORDS_NUM,
            captions_per_image=cfg.TEXT.CAPTIONS_PER_IMAGE, augment=train, flip=cfg.TRAIN.FLIP,
            crop=cfg.TRAIN.CROP_JITTER)

    @property
    def image_size(self) -> int:
        # AttnGAN's DAMSM cfgs give TREE.BASE_SIZE 299 for Inception; the cnn encoder takes it as is
        return self.cfg.TREE.BASE_SIZE

    def build(self, dataset: attngan.TextImageDataset) -> None:
        cfg = self.cfg
        self.vocab = dataset.vocab
        self.nets["text_encoder"] = TextEncoder(
            len(dataset.vocab), ninput=cfg.TEXT.WORD_EMB_DIM, drop_prob=cfg.TEXT.DROPOUT,
            nhidden=cfg.TEXT.EMBEDDING_DIM, rnn_type=cfg.RNN_TYPE, fc_layer=cfg.TEXT.FC_LAYER)
        self.nets["image_encoder"] = build_image_encoder(
            cfg.DAMSM.IMAGE_ENCODER, cfg.TEXT.EMBEDDING_DIM, weights_path=cfg.DAMSM.INCEPTION_WEIGHTS,
            image_size=self.image_size, freeze_bn=cfg.DAMSM.FREEZE_BN, ndf=cfg.DAMSM.CNN_DIM)
        # Only the hard negatives need the substitution tables: skip the pass over the captions otherwise.
        self.substitutes = (WordSubstitutes(dataset.split_captions, dataset.captions_per_image, len(dataset.vocab))
                            if cfg.DAMSM.SWAP_NEGATIVES > 0 else None)
        text_params = list(self.nets["text_encoder"].parameters())
        image_params = [p for p in self.nets["image_encoder"].parameters() if p.requires_grad]
        # One Adam over both encoders; only the RNN side is clipped (AttnGAN: RNN_GRAD_CLIP 0.25).
        adam = fused_adam(text_params + image_params, lr=cfg.TRAIN.ENCODER_LR, betas=(0.5, 0.999))
        self.optimizers["E"] = OptimizerSpec(adam, clip_params=text_params, clip_norm=cfg.TRAIN.RNN_GRAD_CLIP)

    # ------------------------------------------------------------- training
    def losses(self, batch: dict, negatives: int = 0) -> dict[str, torch.Tensor]:
        """The word and sentence losses of a batch, with `negatives` word-swapped captions per caption."""
        s = self.cfg.TRAIN.SMOOTH
        captions, cap_lens = batch["caption"], batch["cap_len"]
        batch_size = captions.shape[0]
        if negatives > 0:
            neg_captions, neg_lens, owner = self.substitutes.negatives(captions, cap_lens, batch["index"], negatives)
        else:
            neg_captions, neg_lens, owner = captions[:0], cap_lens[:0], cap_lens[:0].long()
        words, sentence = self.nets["text_encoder"](torch.cat([captions, neg_captions]),
                                                    torch.cat([cap_lens, neg_lens]))
        regions, code = self.nets["image_encoder"](batch["images"][-1])
        class_ids = batch["class_id"]
        extra = len(owner) > 0
        w_i2t, w_t2i, attn = damsm_word_loss(
            regions, words[:batch_size], cap_lens, class_ids, s.GAMMA1, s.GAMMA2, s.GAMMA3,
            negatives=(words[batch_size:], neg_lens, owner) if extra else None)
        s_i2t, s_t2i = damsm_sentence_loss(code, sentence[:batch_size], class_ids, s.GAMMA3,
                                           negatives=(sentence[batch_size:], owner) if extra else None)
        return {"words": w_i2t + w_t2i, "sentence": s_i2t + s_t2i, "attn": attn}

    def train_step(self, batch: dict, step: int, opt: Updater) -> dict[str, float]:
        with opt.autocast():
            out = self.losses(batch, negatives=self.cfg.DAMSM.SWAP_NEGATIVES)
        parts = {"loss/words": out["words"], "loss/sentence": out["sentence"]}
        opt.update("E", out["words"] + out["sentence"], parts)
        return {k: v.item() for k, v in parts.items()}

    # ---------------------------------------------------------------- views
    def visuals(self, batch: dict, rows: int = 4, max_words: int = 8) -> dict:
        """Each word's attention over its own image (as the paper's figure 4), and the captions."""
        out = self.losses({k: v[:rows] if torch.is_tensor(v) else v for k, v in batch.items()}
                          | {"images": [batch["images"][-1][:rows]]})
        images = batch["images"][-1][:rows].float().add(1).div(2).clamp(0, 1)
        tiles, lines = [], []
        for i, attn in enumerate(out["attn"]):
            length = int(batch["cap_len"][i])
            ids = batch["caption"][i][:length].tolist()
            lines.append(" ".join(self.vocab.ixtoword[w] for w in ids))
            row = [images[i]] + list(attention_overlay(images[i], attn[:max_words]))
            row += [torch.zeros_like(images[i])] * (max_words + 1 - len(row))
            tiles += row
        grid = make_grid(torch.stack(tiles), nrow=max_words + 1, padding=2)
        text = "\n".join(f"{i}. {line}" for i, line in enumerate(lines))
        return {"attention/words": grid, "attention/captions": text}

    def export(self, folder: Path) -> list[Path]:
        """text_encoder.pth and image_encoder.pth: the files TRAIN.NET_E points later variants to."""
        paths = []
        for name, filename in ENCODER_FILES.items():
            path = Path(folder) / filename
            with atomic_path(path) as tmp:
                torch.save(unwrap(self.nets[name]).state_dict(), tmp)
            paths.append(path)
        return paths

    # ----------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, split: str, seed: int) -> dict:
        """R-precision (1 true vs 99 random captions, 10 runs) and validation losses on `split`."""
        cfg = self.cfg
        dataset = self.dataset(split, train=False)
        dataset.random_caption = True  # one random true caption per image, fixed by `seed`
        sampler = ResumableSampler(len(dataset), seed=seed, epoch=0, shuffle=False)
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.TRAIN.BATCH_SIZE, sampler=sampler,
                                             num_workers=cfg.WORKERS, collate_fn=self.collate)
        self.train(False)
        image_codes, text_codes, class_ids = [], [], []
        losses = {"words": [], "sentence": []}
        for batch in loader:
            if batch["size"] == 0:
                continue
            batch = {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in batch.items()}
            batch["images"] = [im.to(self.device) for im in batch["images"]]
            _, sentence = self.nets["text_encoder"](batch["caption"], batch["cap_len"])
            _, code = self.nets["image_encoder"](batch["images"][-1])
            image_codes.append(code.float().cpu())
            text_codes.append(sentence.float().cpu())
            class_ids.append(batch["class_id"].cpu())
            if batch["size"] == cfg.TRAIN.BATCH_SIZE:  # losses depend on the batch size: full batches only
                out = self.losses(batch)
                losses["words"].append(out["words"].item())
                losses["sentence"].append(out["sentence"].item())
        rp = r_precision(torch.cat(image_codes), torch.cat(text_codes),
                         candidates=cfg.EVAL.R_PRECISION_CANDIDATES, runs=cfg.EVAL.R_PRECISION_RUNS,
                         seed=seed, class_ids=torch.cat(class_ids).numpy())
        return {
            "images": int(sum(len(c) for c in image_codes)),
            "r_precision": rp,
            "val_loss": {k: float(np.mean(v)) if v else None for k, v in losses.items()},
            "val_loss_batch_size": cfg.TRAIN.BATCH_SIZE,
        }
