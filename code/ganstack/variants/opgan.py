"""OP-GAN (Hinz et al., TPAMI 2020, "Semantic Object Accuracy for Generative Text-to-Image
Synthesis"): AttnGAN with an object pathway in every generator stage and discriminator.

Each image comes with its layout: boxes [x, y, w, h] normalised to the image and a class
label per object (data/opgan.py). One training step, as the paper and the authors' trainer:

  1. x_hat_0..m-1 = G(z, z_local, e_bar, e, layout): AttnGAN's stages; every object's label,
     the conditioning-augmented sentence and z_local make a feature placed at its box in the
     first stage's 16x16 layout (and, encoded, in the global pathway's input); each later
     stage refines every box's region with its label (nets/opgan.py).
  2. each stage's discriminator D_i (both pathways see the layout) learns
       (uncond(x) + cond(x, e_bar)) / 2 -> real
       (uncond(x_hat) + cond(x_hat, e_bar) + cond(x, e_bar of another caption)
        + cond(x_hat @ other boxes, e_bar) + uncond(x_hat @ other boxes)) / 5 -> fake
     where "@ other boxes" is the image judged at the boxes of another image of the batch (the
     batch reversed) with its own labels; TRAIN.BBOX_LOSS=false drops those two terms (then /3,
     AttnGAN's). The authors' code judges the generated image at the wrong boxes;
     GAN.WRONG_BOX_IMAGES=real judges the real one there instead (a setting, not the code's).
  3. G learns AttnGAN's generator loss through the layout-aware Ds: sum_i [uncond(x_hat_i) +
     cond(x_hat_i, e_bar)] -> real + LAMBDA * DAMSM(x_hat_last) + KL.
Sampling uses the EMA generator (GAN.EMA_DECAY). Conditions handed to sampling and evaluation
pack the caption (AttnGAN's pack_text) and the layout, so each generated image is drawn for
its caption's layout; free captions without a layout get an empty one.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.opgan import LayoutDataset, label_names, read_layout_file
from ..engine.optim import Updater
from ..errors import GanstackError
from ..losses import discriminator_term, r1_penalty
from ..nets.opgan import Layout, ObjectStageDiscriminator, OPGenerator
from .attngan import AttnGAN, discriminator_norm, discriminator_sizes, initialised, unpack_text
from .base import frozen, unwrap


def build_networks(cfg, embedding_dim: int) -> dict[str, nn.Module]:
    """OP-GAN's G and D0, D1, ... (netG, netsD), initialised as the authors' weights_init
    (AttnGAN's), spectral norm on every D weight with GAN.SPECTRAL_NORM / D_NORM: spectral."""
    gan, norm = cfg.GAN, discriminator_norm(cfg)
    if gan.B_DCGAN:
        raise GanstackError("GAN.B_DCGAN=true: OP-GAN has an image at every stage; set GAN.B_DCGAN: false")
    nets = {"G": OPGenerator(stages=cfg.TREE.BRANCH_NUM, gf_dim=gan.GF_DIM, z_dim=gan.Z_DIM,
                             local_z_dim=gan.LOCAL_Z_DIM, condition_dim=gan.CONDITION_DIM,
                             embedding_dim=embedding_dim, residual_blocks=gan.R_NUM, classes=cfg.TEXT.CLASSES_NUM,
                             init_label_dim=gan.INIT_LABEL_DIM, next_label_dim=gan.NEXT_LABEL_DIM,
                             layout_size=gan.LAYOUT_SPATIAL_DIM, base_size=cfg.TREE.BASE_SIZE)}
    for i, size in enumerate(discriminator_sizes(cfg)):
        nets[f"D{i}"] = ObjectStageDiscriminator(size, df_dim=gan.DF_DIM, embedding_dim=embedding_dim,
                                                 classes=cfg.TEXT.CLASSES_NUM, norm=norm)
    return initialised(nets, gan.INIT, norm)


def one_hot(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """(B, M) class ids with -1 padding -> (B, M, classes), padding as the last class (as the authors)."""
    return F.one_hot(torch.where(labels < 0, classes - 1, labels).long(), classes).float()


class OPGAN(AttnGAN):
    name = "opgan"
    takes_diff_augment = False  # translations would move the objects off their boxes

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        self.global_z_dim, self.local_z_dim = cfg.GAN.Z_DIM, cfg.GAN.LOCAL_Z_DIM
        self.z_dim = self.global_z_dim + self.local_z_dim  # noise() draws both, split in generate()
        self.max_objects, self.classes = cfg.MAX_OBJECTS, cfg.TEXT.CLASSES_NUM

    # ----------------------------------------------------------------- data
    def dataset(self, split: str, train: bool):
        cfg = self.cfg
        return LayoutDataset(
            cfg.DATA_DIR, split, max_objects=self.max_objects, classes=self.classes,
            generated=cfg.TRAIN.GENERATED_BBOXES and split != "train", image_sizes=self.sizes,
            words_num=cfg.TEXT.WORDS_NUM, captions_per_image=cfg.TEXT.CAPTIONS_PER_IMAGE, augment=train,
            flip=cfg.TRAIN.FLIP, crop=cfg.TRAIN.CROP_JITTER, wrong_caption=train and cfg.GAN.HARD_MISMATCH > 0)

    def networks(self, embedding_dim: int) -> dict[str, nn.Module]:
        return build_networks(self.cfg, embedding_dim)

    def adapt_authors_weights(self, name: str, weights: dict) -> dict:
        """The authors' D_NET256 builds an img_code_s16 block its forward never uses (AttnGAN's
        leftover); ganstack's D has none, so those keys of their checkpoints are dropped."""
        if name.startswith("D") and not hasattr(unwrap(self.nets[name]), "img_code_s16"):
            return {k: v for k, v in weights.items() if not k.startswith("img_code_s16.")}
        return weights

    def layout(self, boxes: torch.Tensor, labels: torch.Tensor) -> Layout:
        return Layout(boxes.to(self.device).float(), one_hot(labels.to(self.device), self.classes))

    # ------------------------------------------------------------- training
    def train_step(self, batch: dict, step: int, opt: Updater) -> dict[str, float]:
        G = self.nets["G"]
        words, sentence, padding = self.encode_text(batch["caption"], batch["cap_len"])
        # object slots empty in the whole batch paste only zeros: skip them, as the authors' loops run to
        # the batch's object count with OPTIMIZE_DATA_LOADING (without it their loops also feed the empty
        # slots through the label layers, which moves only batch-norm running statistics)
        used = max(int((batch["labels"] >= 0).sum(1).max()), 1)
        layout = self.layout(batch["boxes"][:, :used], batch["labels"][:, :used])
        reals = batch["images"][-len(self.d_sizes):]
        b = sentence.shape[0]
        z = torch.randn(b, self.global_z_dim, device=sentence.device)
        local_z = torch.randn(b, self.local_z_dim, device=sentence.device)
        wrong = None  # GAN.HARD_MISMATCH: the dataset's mismatched captions instead of the shifted batch
        if "wrong_caption" in batch:
            wrong = self.encode_text(batch["wrong_caption"], batch["wrong_cap_len"])[1]

        # 1. Every stage's discriminator: real pairs -> real; generated, mismatched and wrong-box pairs -> fake.
        with opt.autocast():
            fakes, _, mu, logvar = G(z, local_z, sentence, words, padding, layout)
            d_terms = {}
            r1 = self.r1_weight(step)
            for name, real, fake in zip(self.d_names, reals, fakes):
                d_terms[f"loss/{name}"], penalty = self.layout_discriminator_loss(
                    name, real, fake.detach(), sentence, layout, r1 > 0, wrong)
                if r1 > 0:
                    d_terms[f"loss/{name}_r1"] = r1 * penalty
        opt.update("D", sum(d_terms.values()), d_terms)
        scalars = {k: v.item() for k, v in d_terms.items()}

        # 2. The generator: fool every discriminator at the layout, match the caption under DAMSM, KL.
        d_plain = {name: unwrap(self.nets[name]) for name in self.d_names}  # bare: keep DDP's hooks out
        with frozen(*d_plain.values()), opt.autocast():
            g_terms = self.adversarial_terms(d_plain, fakes, sentence, lambda D, fake: D(fake, layout))
            g_terms.update(self.caption_terms(fakes[-1], words, sentence, batch, mu, logvar))
        opt.update("G", sum(g_terms.values()), g_terms)
        scalars.update({k: v.item() for k, v in g_terms.items()})
        return scalars

    def layout_discriminator_loss(self, name: str, real: torch.Tensor, fake: torch.Tensor, sentence: torch.Tensor,
                                  layout: Layout, with_r1: bool = False, wrong: torch.Tensor | None = None
                                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """OP-GAN's D loss for one stage, and (with_r1) the R1 penalty of its two real logits."""
        D, heads = self.nets[name], unwrap(self.nets[name])
        if with_r1:
            real = real.detach().requires_grad_(True)
        real_code, fake_code = D(real, layout), D(fake, layout)
        cond_real_logits, uncond_real_logits = heads.COND_DNET(real_code, sentence), heads.UNCOND_DNET(real_code)
        real_terms = (discriminator_term("bce", uncond_real_logits, True)
                      + discriminator_term("bce", cond_real_logits, True))
        wrong_logits = (heads.COND_DNET(real_code[:-1], sentence[1:]) if wrong is None
                        else heads.COND_DNET(real_code, wrong))
        fake_terms = [discriminator_term("bce", heads.UNCOND_DNET(fake_code), False),
                      discriminator_term("bce", heads.COND_DNET(fake_code, sentence), False),
                      discriminator_term("bce", wrong_logits, False)]
        if self.cfg.TRAIN.BBOX_LOSS:
            judged = fake if self.cfg.GAN.WRONG_BOX_IMAGES == "fake" else real.detach()
            wrong_box_code = D(judged, layout.shuffled())
            fake_terms += [discriminator_term("bce", heads.COND_DNET(wrong_box_code, sentence), False),
                           discriminator_term("bce", heads.UNCOND_DNET(wrong_box_code), False)]
        loss = real_terms / 2 + sum(fake_terms) / len(fake_terms)
        penalty = r1_penalty(real, cond_real_logits + uncond_real_logits) if with_r1 else None
        return loss, penalty

    # ------------------------------------------------------------- sampling
    def pack(self, text: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Packed captions (pack_text) + (M, 4) boxes + (M,) labels -> one condition row each."""
        return torch.cat([text, boxes.flatten(1).float().to(text.device), labels.float().to(text.device)], 1)

    def unpack(self, conditions: torch.Tensor):
        m = self.max_objects
        text, layout = conditions[:, :-5 * m], conditions[:, -5 * m:]
        boxes, labels = layout[:, :4 * m].reshape(-1, m, 4), layout[:, 4 * m:].round().long()
        return text, boxes, labels

    def empty_layouts(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.full((count, self.max_objects, 4), -1.0), torch.full((count, self.max_objects), -1)

    def split_layouts(self, split: str, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The layouts of images `indices` of `split`, as they are (no crop or flip)."""
        dataset = self.dataset(split, train=False)
        if not indices:
            return self.empty_layouts(0)
        pairs = [dataset.layout(i, np.random.default_rng(i)) for i in indices]
        return (torch.from_numpy(np.stack([p[0] for p in pairs])).float(),
                torch.from_numpy(np.stack([p[1] for p in pairs])).long())

    @torch.no_grad()
    def generate(self, conditions: torch.Tensor, noise: torch.Tensor):
        """Every stage's images and attention maps for packed conditions, from the EMA generator."""
        text, boxes, labels = self.unpack(conditions.to(self.device).float())
        sentence, words, padding = unpack_text(text, self.embedder.dim)
        noise = noise.to(self.device)
        with self.sampling_net("G") as G:
            images, attentions, _, _ = G(noise[:, :self.global_z_dim], noise[:, self.global_z_dim:], sentence, words,
                                         padding, self.layout(boxes, labels))
        return [im.float().clamp(-1, 1) for im in images], attentions

    def conditions_from_text(self, texts: list[str]) -> torch.Tensor:
        """Free captions with an empty layout (the global pathway alone)."""
        return self.pack(super().conditions_from_text(texts), *self.empty_layouts(len(texts)))

    def conditions_from_split(self, split: str, count: int, seed: int):
        texts, text, indices = super().conditions_from_split(split, count, seed)
        return texts, self.pack(text, *self.split_layouts(split, indices)), indices

    def evaluation_conditions(self, split: str) -> tuple[torch.Tensor, list[int]]:
        text, indices = super().evaluation_conditions(split)
        return self.pack(text, *self.split_layouts(split, indices)), indices

    def soa_conditions(self, entries: list[dict]) -> torch.Tensor:
        """SOA's caption entries, each with the layout of its image (image_id) in the test split when
        there (COCO keys end in the image id), else an empty layout."""
        if not hasattr(self, "_layout_of_image"):
            dataset = self.dataset("test", train=False)
            ids = [key.rsplit("_", 1)[-1] for key in dataset.keys]
            self._layout_of_image = {int(i): dataset.layout(k) for k, i in enumerate(ids) if i.isdigit()}
        boxes, labels = self.empty_layouts(len(entries))
        for k, entry in enumerate(entries):
            found = self._layout_of_image.get(entry.get("image_id"))
            if found is not None:
                boxes[k], labels[k] = torch.from_numpy(found[0]), torch.from_numpy(found[1])
        return self.pack(super().conditions_from_text([e["caption"] for e in entries]), boxes, labels)

    def soa_layouts(self, conditions: torch.Tensor) -> list[tuple[list[int], list[list[float]]]]:
        """(labels, boxes) each image was drawn for: the ground truth of SOA's IoU scores."""
        _, boxes, labels = self.unpack(conditions.float())
        keep = labels >= 0
        return [(labels[i][keep[i]].tolist(), boxes[i][keep[i]].tolist()) for i in range(len(labels))]

    def label_names(self) -> list[str]:
        return label_names(self.cfg.DATA_DIR, self.classes)

    def conditions_from_layouts(self, path: str) -> tuple[list[str], torch.Tensor]:
        """The captions and packed conditions of a --layout JSON file (data/opgan.read_layout_file)."""
        return self.conditions_from_layout_data(read_layout_file(path, self.label_names(), self.max_objects))

    def conditions_from_layout_data(self, layouts: list[dict]) -> tuple[list[str], torch.Tensor]:
        """Packed conditions of parsed layouts (data/opgan.parse_layouts)."""
        texts = [layout["caption"] for layout in layouts]
        boxes = torch.from_numpy(np.stack([layout["boxes"] for layout in layouts]))
        labels = torch.from_numpy(np.stack([layout["labels"] for layout in layouts]))
        return texts, self.pack(super().conditions_from_text(texts), boxes, labels)

    def drawn_layout(self, condition: torch.Tensor) -> tuple[list[list[float]], list[str]]:
        """The boxes and label names inside one packed condition, for drawing over its images."""
        _, boxes, labels = self.unpack(condition[None].float())
        names = self.label_names()
        keep = labels[0] >= 0
        return boxes[0][keep].tolist(), [names[int(c)] for c in labels[0][keep]]

    def sentence_codes(self, conditions: torch.Tensor) -> torch.Tensor:
        return conditions[:, :self.embedder.dim]

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
        """Captions interpolated; the layout of the first end kept (boxes do not blend)."""
        out = super().interpolate(a, b, steps)
        out[:, -5 * self.max_objects:] = a[:, -5 * self.max_objects:]
        return out

