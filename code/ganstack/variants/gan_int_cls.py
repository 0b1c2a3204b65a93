"""GAN-INT-CLS (Reed et al. 2016, "Generative Adversarial Text to Image Synthesis").

A DCGAN conditioned on a sentence embedding t of the caption (nets/dcgan.py).
One training step, as Algorithm 1 of the paper:

  1. h = t(caption), h_w = t(mismatched caption) -- here: a real image of another class
     with the right text, which is the same pair (GAN.HARD_MISMATCH: often one of the classes
     whose captions lie nearest, not in the paper);  x_hat = G(z, h)
  2. D learns   real (x, h) -> real,   fake (x_hat, h) -> fake,
                and with CLS: wrong (x_w, h) -> fake (the matching-aware discriminator)
  3. G learns   D(x_hat, h) -> real,
                and with INT: D(G(z', h_int), h_int) -> real for h_int = beta h1 + (1 - beta) h2.
                The paper's objective ends here (the default). The PyTorch port
                (aelnouby/Text-to-Image-Synthesis) adds feature matching (GAN.L2_COEF, its 100) and
                an L1 to the real image (GAN.L1_COEF, its 50; it may compare L1_POOL x L1_POOL
                block means instead of pixels), and smooths D's real target (GAN.REAL_LABEL, its 0.9).

GAN.TYPE picks the objective: gan (sigmoid cross-entropy; REAL_LABEL < 1 smooths the real target),
wgan (weight clipping, critic warm-up schedule), wgan-gp (gradient penalty, layer-normed
critic); vanilla_gan / vanilla_wgan drop the text altogether. The fake batch is drawn once
per step and serves both updates (the reference code drew it twice; D's and G's losses are
the same in expectation, at one generator forward less).

Text embeddings come from the Reed et al. HDF5 file (DATA_DIR=<file>.h5) or, for data in
the AttnGAN layout, from a trained DAMSM text encoder (TRAIN.NET_E), which also encodes
free text at sampling time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

from ..data import attngan
from ..data.embeddings import SentenceEmbedder
from ..data.reed_h5 import ReedH5Dataset, read_attrs
from ..data.text import Vocabulary
from ..engine.optim import Updater
from ..errors import GanstackError
from ..losses import discriminator_term, feature_matching, generator_term, gradient_penalty, r1_penalty
from ..nets.damsm import paired_image_encoder
from ..nets.dcgan import Discriminator, Generator
from .base import adam, Variant, frozen, unwrap

GRID_CAPTIONS, GRID_SAMPLES = 8, 8  # TensorBoard grid: fixed captions x fixed noise


def is_h5(data_dir: str) -> bool:
    return str(data_dir).lower().endswith((".h5", ".hdf5"))


def critic_phase_length(g_step: int, diter: int, warmup: bool) -> int:
    """Critic updates before generator update number g_step (WGAN reference schedule)."""
    return 100 if warmup and (g_step < 25 or g_step % 500 == 0) else diter


def _critic_steps_before(g_steps: int, diter: int, warmup: bool) -> int:
    """Total critic updates before the generator's update number g_steps."""
    if not warmup:
        return g_steps * diter
    if g_steps <= 25:
        return 100 * g_steps
    return 2500 + (g_steps - 25) * diter + (100 - diter) * ((g_steps - 1) // 500)


def generator_turn(step: int, diter: int, warmup: bool) -> bool:
    """Does trainer step `step` (0-based; one critic update each) end a critic phase?

    A pure function of the step, so resuming needs no extra state."""
    lo, hi = 1, step + 2   # smallest g with cumulative critic steps >= step + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _critic_steps_before(mid, diter, warmup) >= step + 1:
            hi = mid
        else:
            lo = mid + 1
    return _critic_steps_before(lo, diter, warmup) == step + 1


class GanIntCls(Variant):
    name = "gan_int_cls"
    ema_nets = ("G",)
    takes_diff_augment = True
    takes_r1 = True
    takes_hard_mismatch = True
    lr_schedule = "none"  # LR_SCHEDULE auto: constant (the port); _base.yml sets the authors' halving every 100 epochs
    collate = staticmethod(attngan.collate)

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        gan = cfg.GAN
        self.conditional = not gan.TYPE.startswith("vanilla")
        self.wasserstein = "wgan" in gan.TYPE
        self.adv = gan.ADV_LOSS if gan.ADV_LOSS != "auto" else ("wasserstein" if self.wasserstein else "bce")
        self.cls = gan.CLS and self.conditional
        if not 0.0 <= gan.CLS_WEIGHT <= 1.0:
            raise GanstackError(f"GAN.CLS_WEIGHT={gan.CLS_WEIGHT}: must lie in [0, 1] (0.5 weighs the generated "
                                "and the mismatched pairs equally, as the paper)")
        self.int = gan.INT and self.conditional
        if gan.L1_POOL < 1 or cfg.TREE.BASE_SIZE % gan.L1_POOL:
            raise GanstackError(f"GAN.L1_POOL={gan.L1_POOL}: must be a divisor of TREE.BASE_SIZE="
                                f"{cfg.TREE.BASE_SIZE} (1 compares pixels, as the reference code)")
        self.z_dim = gan.Z_DIM
        self.embedder: SentenceEmbedder | None = None
        self._fixed = None

    # ----------------------------------------------------------------- data
    def dataset(self, split: str, train: bool):
        cfg = self.cfg
        if is_h5(cfg.DATA_DIR):
            return ReedH5Dataset(cfg.DATA_DIR, split, image_size=cfg.TREE.BASE_SIZE, augment=train,
                                 flip=cfg.TRAIN.FLIP, wrong_image=train and self.cls, crop=cfg.TRAIN.CROP_JITTER)
        return attngan.TextImageDataset(
            cfg.DATA_DIR, split, image_sizes=[cfg.TREE.BASE_SIZE], words_num=cfg.TEXT.WORDS_NUM,
            captions_per_image=cfg.TEXT.CAPTIONS_PER_IMAGE, augment=train, flip=cfg.TRAIN.FLIP,
            wrong_image=train and self.cls, crop=cfg.TRAIN.CROP_JITTER)

    def _make_embedder(self, dataset) -> SentenceEmbedder | None:
        """The DAMSM sentence encoder: needed for AttnGAN-layout data and for free text."""
        cfg = self.cfg
        if isinstance(dataset, ReedH5Dataset):
            attrs = read_attrs(cfg.DATA_DIR)
            net_e = cfg.TRAIN.NET_E or attrs.get("text_encoder", "")
            if not net_e or "vocabulary" not in attrs:
                return None  # precomputed embeddings only (e.g. Reed's char-CNN-RNN): no free text
            return SentenceEmbedder(net_e, Vocabulary.from_words(attrs["vocabulary"]), cfg.TEXT.WORDS_NUM, self.device)
        if not cfg.TRAIN.NET_E:
            raise GanstackError("TRAIN.NET_E is empty: GAN-INT-CLS on captioned folders needs a DAMSM text "
                                "encoder; train one (./train.sh cpu cfg/damsm/shapes.yml) and set TRAIN.NET_E")
        return SentenceEmbedder(cfg.TRAIN.NET_E, dataset.vocab, cfg.TEXT.WORDS_NUM, self.device)

    def build(self, dataset) -> None:
        cfg, gan = self.cfg, self.cfg.GAN
        self.embedder = self._make_embedder(dataset)
        if gan.HARD_MISMATCH > 0 and isinstance(dataset, ReedH5Dataset):
            raise GanstackError(f"GAN.HARD_MISMATCH={gan.HARD_MISMATCH}: needs the captions of DATA_DIR="
                                f"{cfg.DATA_DIR} and a text encoder; an HDF5 file of precomputed embeddings has "
                                "neither: set GAN.HARD_MISMATCH: 0")
        if not isinstance(dataset, ReedH5Dataset):
            attngan.attach_hard_mismatches(dataset, self.embedder, gan.HARD_MISMATCH, gan.HARD_MISMATCH_K)
        embed_dim = dataset.embed_dim if isinstance(dataset, ReedH5Dataset) else self.embedder.dim
        self.embed_dim = embed_dim
        size = cfg.TREE.BASE_SIZE
        self.nets["G"] = Generator(embed_dim=embed_dim, z_dim=gan.Z_DIM, proj_dim=gan.CONDITION_DIM,
                                   ngf=gan.GF_DIM, image_size=size, conditional=self.conditional)
        self.nets["D"] = Discriminator(embed_dim=embed_dim, proj_dim=gan.CONDITION_DIM, ndf=gan.DF_DIM,
                                       image_size=size, conditional=self.conditional,
                                       norm=self.d_norm(),
                                       minibatch_kernels=gan.MINIBATCH_KERNELS)
        for name, lr in (("D", cfg.TRAIN.DISCRIMINATOR_LR), ("G", cfg.TRAIN.GENERATOR_LR)):
            self.optimizers[name] = adam(cfg, self.nets[name].parameters(), lr)

    def d_norm(self) -> str:
        gan = self.cfg.GAN
        if gan.D_NORM == "auto":
            return "layer" if gan.TYPE == "wgan-gp" else "batch"
        if gan.D_NORM == "batch" and gan.TYPE == "wgan-gp":
            raise GanstackError("GAN.D_NORM=batch with GAN.TYPE=wgan-gp: the gradient penalty is per sample and "
                                "batch norm mixes samples; use layer, spectral or none")
        return gan.D_NORM

    def text_embedding(self, batch: dict) -> torch.Tensor | None:
        if not self.conditional:
            return None
        if "embedding" in batch:
            return batch["embedding"].float()
        return self.embedder.embed_ids(batch["caption"], batch["cap_len"])

    # ------------------------------------------------------------- training
    def generator_turn(self, step: int) -> bool:
        gan = self.cfg.GAN
        if not self.wasserstein:
            return True
        return generator_turn(step, gan.DITER, gan.WGAN_WARMUP and gan.TYPE != "wgan-gp")

    def train_step(self, batch: dict, step: int, opt: Updater) -> dict[str, float]:
        gan = self.cfg.GAN
        G, D = self.nets["G"], self.nets["D"]
        real = batch["images"][-1]
        h = self.text_embedding(batch)
        z = torch.randn(real.shape[0], self.z_dim, device=real.device)
        smooth = gan.REAL_LABEL if self.adv in ("bce", "lsgan") else 1.0

        aug = self.augment  # identity unless GAN.DIFF_AUGMENT: D only ever sees augmented images

        # 1. Discriminator: real pair -> real; generated pair (and, CLS, mismatched pair) -> fake.
        r1 = self.r1_weight(step)
        real_in = real.detach().requires_grad_(True) if r1 > 0 else real  # R1 differentiates D at it
        with opt.autocast():
            fake = G(z, h)
            real_logits, _ = D(aug(real_in), h)
            fake_logits, _ = D(aug(fake.detach()), h)
            # Algorithm 1: log s_r + (log(1 - s_w) + log(1 - s_f)) / 2, the halves being GAN.CLS_WEIGHT.
            fake_weight = 1.0 - gan.CLS_WEIGHT if self.cls else 1.0
            d_terms = {"loss/D_real": discriminator_term(self.adv, real_logits, True, real_label=smooth),
                       "loss/D_fake": fake_weight * discriminator_term(self.adv, fake_logits, False)}
            if self.cls:
                wrong_logits, _ = D(aug(batch["wrong_images"][-1]), h)
                d_terms["loss/D_wrong"] = gan.CLS_WEIGHT * discriminator_term(self.adv, wrong_logits, False)
            if gan.TYPE == "wgan-gp":  # the critic being trained is D after augmentation: penalise that one
                d_terms["loss/D_gradient_penalty"] = gan.GP_LAMBDA * gradient_penalty(
                    lambda x: D(aug(x), h)[0], real, fake)
            if r1 > 0:  # GAN.R1_GAMMA: penalise D's slope at the real pairs
                d_terms["loss/D_r1"] = r1 * r1_penalty(real_in, real_logits)
        opt.update("D", sum(d_terms.values()), d_terms)
        if gan.TYPE in ("wgan", "vanilla_wgan"):  # the WGAN critic's Lipschitz constraint
            with torch.no_grad():
                for p in D.parameters():
                    p.clamp_(-gan.CLIP, gan.CLIP)
        scalars = {k: v.item() for k, v in d_terms.items()}
        scalars["score/real_logit"] = real_logits.float().mean().item()
        scalars["score/fake_logit"] = fake_logits.float().mean().item()
        if not self.generator_turn(step):
            return scalars

        # 2. Generator: fool D on (x_hat, h), and (INT) on interpolated text; FM and L1 if set (the port's).
        d_plain = unwrap(D)  # D's weights stay put here; the bare module keeps DDP's hooks out of it
        with frozen(d_plain), opt.autocast():
            logits, fake_features = d_plain(aug(fake), h)
            g_terms = {"loss/G_adversarial": generator_term(self.adv, logits)}
            if self.int:
                h_int = gan.INT_BETA * h + (1 - gan.INT_BETA) * h.roll(1, dims=0)
                z_int = torch.randn_like(z)
                int_logits, _ = d_plain(aug(G(z_int, h_int)), h_int)
                g_terms["loss/G_interpolated"] = generator_term(self.adv, int_logits)
            if gan.L2_COEF > 0:
                with torch.no_grad():
                    _, real_features = d_plain(aug(real), h)
                g_terms["loss/G_feature_matching"] = gan.L2_COEF * feature_matching(fake_features, real_features)
            if gan.L1_COEF > 0:
                # Pixel L1 pulls G to the blurred median of all images a caption fits; over
                # block means it teaches colour and place only, and D decides the edges.
                pool = (lambda x: F.avg_pool2d(x, gan.L1_POOL)) if gan.L1_POOL > 1 else (lambda x: x)
                g_terms["loss/G_l1"] = gan.L1_COEF * F.l1_loss(pool(fake.float()), pool(real.float()))
            opt.update("G", sum(g_terms.values()), g_terms)
        scalars.update({k: v.item() for k, v in g_terms.items()})
        return scalars

    # ------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, conditions: torch.Tensor | None, noise: torch.Tensor) -> torch.Tensor:
        cond = None if conditions is None or not self.conditional else conditions.to(self.device).float()
        with self.sampling_net("G") as G:
            return G(noise.to(self.device), cond).float().clamp(-1, 1)

    def conditions_from_text(self, texts: list[str]) -> torch.Tensor | None:
        if not self.conditional:
            return None
        if self.embedder is None:
            raise GanstackError(f"DATA_DIR={self.cfg.DATA_DIR} holds precomputed embeddings without their text "
                                "encoder, so free text cannot be encoded; sample with --from-split test, or train "
                                "on a file written by `ganstack convert reed-h5` (it records the encoder)")
        return self.embedder.embed_texts(texts)

    def conditions_from_split(self, split: str, count: int, seed: int) -> tuple[list[str], torch.Tensor | None, list[int]]:
        """(captions, embeddings, image indices): one caption for each of the first `count` images,
        the caption drawn with `seed`."""
        dataset = self.dataset(split, train=False)
        indices = list(range(min(count, len(dataset)))) if count > 0 else list(range(len(dataset)))
        gen = torch.Generator().manual_seed(seed)
        if isinstance(dataset, ReedH5Dataset):
            texts = [dataset.caption(i) for i in indices]
            emb = torch.stack([dataset.embedding(i) for i in indices])
            return texts, emb if self.conditional else None, indices
        per_image = dataset.captions_per_image
        sents = torch.randint(per_image, (len(indices),), generator=gen).tolist()
        captions = dataset.split_captions
        texts = [dataset.vocab.decode(captions[i * per_image + s]) for i, s in zip(indices, sents)]
        if not self.conditional:
            return texts, None, indices
        ids = [captions[i * per_image + s] for i, s in zip(indices, sents)]
        return texts, self.embedder.embed_all(ids), indices

    def visuals(self, batch: dict) -> dict:
        """Fixed test captions (rows) x fixed noise (columns), from the EMA generator."""
        if self._fixed is None:
            texts, cond, _ = self.conditions_from_split("test", GRID_CAPTIONS, seed=0)
            rows = len(texts)
            noise = self.noise(GRID_SAMPLES, seed=0).repeat(rows, 1)
            cond = None if cond is None else cond.repeat_interleave(GRID_SAMPLES, dim=0)
            self._fixed = (texts, cond, noise)
        texts, cond, noise = self._fixed
        images = self.sample(cond, noise).add(1).div(2)
        grid = make_grid(images.cpu(), nrow=GRID_SAMPLES, padding=2)
        real = make_grid(batch["images"][-1][:GRID_SAMPLES].float().add(1).div(2).cpu(), nrow=GRID_SAMPLES)
        return {"samples/fixed_captions": grid, "samples/captions": "\n".join(
                    f"row {i}: {t}" for i, t in enumerate(texts)), "samples/real_batch": real}

    # ----------------------------------------------------------- evaluation
    def damsm_image_encoder(self):
        """The DAMSM image encoder trained with TRAIN.NET_E (image_encoder.pth beside it), for
        R-precision; None when the embeddings do not come from DAMSM or the file is absent."""
        return None if is_h5(self.cfg.DATA_DIR) else paired_image_encoder(self.cfg.TRAIN.NET_E)

    def evaluation_conditions(self, split: str) -> tuple[torch.Tensor | None, list[int]]:
        """Every caption of every image of `split` (the small-set protocol): embeddings and the
        index of each caption's image."""
        dataset = self.dataset(split, train=False)
        if isinstance(dataset, ReedH5Dataset):
            indices = list(range(len(dataset)))
            emb = torch.stack([dataset.embedding(i) for i in indices])
            return (emb if self.conditional else None), indices
        per_image = dataset.captions_per_image
        indices = [i for i in range(len(dataset)) for _ in range(per_image)]
        if not self.conditional:
            return None, indices
        return self.embedder.embed_all(list(dataset.split_captions[:len(indices)])), indices
