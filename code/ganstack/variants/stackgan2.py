"""StackGAN++ (StackGAN-v2; Zhang et al., TPAMI 2018, "StackGAN++: Realistic Image Synthesis with
Stacked Generative Adversarial Networks"), conditional (GAN.B_CONDITION) and unconditional.

A tree of generators (nets/stackgan2.py) draws the same image at TREE.BRANCH_NUM scales; each scale
has its own discriminator (AttnGAN's D_NET64/128/256 layers, conditioned on the CA mean). One
training step, as the authors' trainer (code/trainer.py):

  1. x_hat_0..m-1 = G(z, phi_t): conditioning augmentation c ~ N(mu(phi_t), sigma(phi_t)) from the
     text embedding phi_t (unconditional: c = z), every scale from the one before.
  2. each D_i learns, with binary cross-entropy,
       conditional:   cond(x, mu) -> real, cond(x_wrong, mu) -> fake, cond(x_hat, mu) -> fake,
                      summed as real + (wrong + fake) / 2; with TRAIN.COEFF.UNCOND_LOSS = u > 0 the
                      unconditional logits join, u x [uncond(x) -> real, uncond(x_wrong) -> real,
                      uncond(x_hat) -> fake], and the three pairs are summed (the authors' code halves
                      only without them);
       unconditional: D(x) -> real, D(x_hat) -> fake.
     x_wrong is a real image of another class (the authors' mismatched image); mu is detached.
  3. G learns  sum_i [cond(x_hat_i, mu) + u x uncond(x_hat_i)] -> real  (unconditional: D(x_hat_i))
               + TRAIN.COEFF.COLOR_LOSS x colour consistency of adjacent scales (means, and 5 x the
                 covariances, the coarser scale a fixed target)
               + TRAIN.COEFF.KL x KL(N(mu, sigma) || N(0, I))  (conditional).
The paper's losses have no mismatched images (its conditional term is real vs generated); the
defaults follow the authors' code, in which G's adversarial terms also reach the CA mean through D's
condition input (GAN.D_MU_GRAD: false cuts that path, a setting not in the code). GAN.D_CONDITION:
embedding gives D the text embedding itself instead of mu, as GAN-INT-CLS's D (not in the code). TRAIN.COEFF.COLOR_LOSS is 1 in the paper and 50 in the authors'
LSUN cfgs. Adam 2e-4, betas (0.5, 0.999); the EMA generator (0.999) samples.

Text comes from the authors' embedding pickles (EMBEDDING_TYPE cnn-rnn, cnn-gru, skip-thought;
data/stackgan2.py) or from the framework's DAMSM text encoder (EMBEDDING_TYPE damsm, TRAIN.NET_E),
which also encodes free text at sampling time. Flat-colour collapse, the originals' best-known
failure, shows as stats/colour_variance_fake falling away from stats/colour_variance_real.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.utils import make_grid

from ..data import attngan
from ..data.embeddings import SentenceEmbedder
from ..data.stackgan2 import EmbeddingImageDataset, unconditional_dataset
from ..engine.optim import Updater
from ..errors import GanstackError
from ..losses import discriminator_term, generator_term
from ..nets.attngan import StageDiscriminator
from ..nets.damsm import paired_image_encoder
from ..nets.stackgan2 import TreeGenerator, colour_consistency, colour_variance
from .attngan import discriminator_norm, initialised, kl_loss, stage_sizes
from .base import Variant, adam, frozen, unwrap

GRID_CAPTIONS, GRID_SAMPLES = 8, 8  # TensorBoard grid (conditional): fixed captions x fixed noise


class StackGAN2(Variant):
    name = "stackgan2"
    ema_nets = ("G",)
    lr_schedule = "none"  # constant Adam 2e-4
    collate = staticmethod(attngan.collate)

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        self.conditional = cfg.GAN.B_CONDITION
        self.text_source = cfg.EMBEDDING_TYPE
        self.z_dim = cfg.GAN.Z_DIM
        self.sizes = stage_sizes(cfg)
        self.d_names = [f"D{i}" for i in range(len(self.sizes))]
        self.uncond_weight = cfg.TRAIN.COEFF.UNCOND_LOSS
        self.d_reads_embedding = cfg.GAN.D_CONDITION == "embedding"
        self.embedder: SentenceEmbedder | None = None
        self._fixed = None

    # ----------------------------------------------------------------- data
    def dataset(self, split: str, train: bool):
        cfg = self.cfg
        kwargs = dict(image_sizes=self.sizes, augment=train, flip=cfg.TRAIN.FLIP, crop=cfg.TRAIN.CROP_JITTER)
        if not self.conditional:
            return unconditional_dataset(cfg.DATA_DIR, cfg.DATASET_NAME, split, **kwargs)
        if self.text_source == "damsm":
            return attngan.TextImageDataset(cfg.DATA_DIR, split, words_num=cfg.TEXT.WORDS_NUM,
                                            captions_per_image=cfg.TEXT.CAPTIONS_PER_IMAGE, wrong_image=train,
                                            **kwargs)
        return EmbeddingImageDataset(cfg.DATA_DIR, split, embedding_type=self.text_source, wrong_image=train,
                                     **kwargs)

    def build(self, dataset) -> None:
        cfg, gan = self.cfg, self.cfg.GAN
        text_dim = cfg.TEXT.EMBEDDING_DIM
        if self.conditional and self.text_source == "damsm":
            if not cfg.TRAIN.NET_E:
                raise GanstackError("TRAIN.NET_E is empty: EMBEDDING_TYPE=damsm embeds captions with a trained DAMSM "
                                    "text encoder; train one (./train.sh cpu cfg/damsm/shapes_single.yml) and set "
                                    "TRAIN.NET_E to its text_encoder.pth")
            self.embedder = SentenceEmbedder(cfg.TRAIN.NET_E, dataset.vocab, cfg.TEXT.WORDS_NUM, self.device)
            found, where = self.embedder.dim, f"TRAIN.NET_E={cfg.TRAIN.NET_E}"
        elif self.conditional:
            found, where = dataset.dim, f"DATA_DIR={cfg.DATA_DIR} ({cfg.EMBEDDING_TYPE} embeddings)"
        if self.conditional and found != text_dim:
            raise GanstackError(f"{where} gives {found}-d text embeddings but TEXT.DIMENSION (TEXT.EMBEDDING_DIM) is "
                                f"{text_dim}; set TEXT.DIMENSION: {found}")
        norm = discriminator_norm(cfg)
        nets: dict[str, nn.Module] = {"G": TreeGenerator(
            stages=cfg.TREE.BRANCH_NUM, gf_dim=gan.GF_DIM, z_dim=gan.Z_DIM, condition_dim=gan.CONDITION_DIM,
            text_dim=text_dim, residual_blocks=gan.R_NUM, conditional=self.conditional, base_size=cfg.TREE.BASE_SIZE)}
        d_condition_dim = text_dim if self.d_reads_embedding else gan.CONDITION_DIM
        for name, size in zip(self.d_names, self.sizes):
            nets[name] = StageDiscriminator(size, df_dim=gan.DF_DIM, embedding_dim=d_condition_dim,
                                            conditional=self.conditional, norm=norm)
        self.nets.update(initialised(nets, gan.INIT, norm))
        # one Adam per network as the authors' (Adam is per parameter: one over all Ds is the same)
        d_params = [p for name in self.d_names for p in self.nets[name].parameters()]
        self.optimizers["D"] = adam(cfg, d_params, cfg.TRAIN.DISCRIMINATOR_LR)
        self.optimizers["G"] = adam(cfg, self.nets["G"].parameters(), cfg.TRAIN.GENERATOR_LR)

    def text_embedding(self, batch: dict) -> torch.Tensor | None:
        """phi_t of the batch's captions: the dataset's embedding, or DAMSM's sentence code."""
        if not self.conditional:
            return None
        if self.embedder is not None:
            return self.embedder.embed_ids(batch["caption"], batch["cap_len"])
        return batch["embedding"].to(self.device).float()

    # ------------------------------------------------------------- training
    def train_step(self, batch: dict, step: int, opt: Updater) -> dict[str, float]:
        G = self.nets["G"]
        reals = batch["images"]
        embedding = self.text_embedding(batch)
        z = torch.randn(reals[0].shape[0], self.z_dim, device=reals[0].device)

        # 1. Every scale's discriminator.
        with opt.autocast():
            fakes, mu, logvar = G(z, embedding)
            condition = None if mu is None else (embedding if self.d_reads_embedding else mu).detach()
            wrongs = batch.get("wrong_images", [None] * len(reals))
            d_terms = {f"loss/{name}": self.discriminator_loss(name, real, fake.detach(), wrong, condition)
                       for name, real, fake, wrong in zip(self.d_names, reals, fakes, wrongs)}
        opt.update("D", sum(d_terms.values()), d_terms)
        scalars = {k: v.item() for k, v in d_terms.items()}

        # 2. The generator: fool every scale, keep adjacent scales' colours consistent, stay near N(0, I).
        d_plain = [unwrap(self.nets[name]) for name in self.d_names]  # bare: keep DDP's hooks out
        with frozen(*d_plain), opt.autocast():
            g_terms = {}
            for name, D, fake in zip(self.d_names, d_plain, fakes):
                g_terms[f"loss/G_{name}"] = self.generator_loss(D, fake, condition if self.d_reads_embedding else mu)
            weight = self.cfg.TRAIN.COEFF.COLOR_LOSS
            if weight > 0:
                for i in range(1, len(fakes)):
                    means, covariances = colour_consistency(fakes[i].float(), fakes[i - 1].float(), weight)
                    g_terms[f"loss/G_colour_mean{i}"], g_terms[f"loss/G_colour_cov{i}"] = means, covariances
            if mu is not None:
                g_terms["loss/G_kl"] = self.cfg.TRAIN.COEFF.KL * kl_loss(mu.float(), logvar.float())
        opt.update("G", sum(g_terms.values()), g_terms)
        scalars.update({k: v.item() for k, v in g_terms.items()})
        scalars["stats/colour_variance_fake"] = colour_variance(fakes[-1].detach()).item()
        scalars["stats/colour_variance_real"] = colour_variance(reals[-1]).item()
        return scalars

    def discriminator_loss(self, name: str, real: torch.Tensor, fake: torch.Tensor, wrong: torch.Tensor | None,
                           condition: torch.Tensor | None) -> torch.Tensor:
        D, heads = self.nets[name], unwrap(self.nets[name])
        real_code, fake_code = D(real), D(fake)
        if condition is None:  # unconditional: one logit per image
            return (discriminator_term("bce", heads.UNCOND_DNET(real_code), True)
                    + discriminator_term("bce", heads.UNCOND_DNET(fake_code), False))
        wrong_code = D(wrong)
        real_term = discriminator_term("bce", heads.COND_DNET(real_code, condition), True)
        wrong_term = discriminator_term("bce", heads.COND_DNET(wrong_code, condition), False)
        fake_term = discriminator_term("bce", heads.COND_DNET(fake_code, condition), False)
        u = self.uncond_weight
        if u <= 0:
            return real_term + 0.5 * (wrong_term + fake_term)
        real_term = real_term + u * discriminator_term("bce", heads.UNCOND_DNET(real_code), True)
        wrong_term = wrong_term + u * discriminator_term("bce", heads.UNCOND_DNET(wrong_code), True)  # a real image
        fake_term = fake_term + u * discriminator_term("bce", heads.UNCOND_DNET(fake_code), False)
        return real_term + wrong_term + fake_term

    def generator_loss(self, D: nn.Module, fake: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        """condition: mu (G's, with its graph) or the detached text embedding (GAN.D_CONDITION)."""
        code = D(fake)
        if condition is None:
            return generator_term("bce", D.UNCOND_DNET(code))
        if not self.cfg.GAN.D_MU_GRAD:  # the authors' code: not detached
            condition = condition.detach()
        loss = generator_term("bce", D.COND_DNET(code, condition))
        if self.uncond_weight > 0:
            loss = loss + self.uncond_weight * generator_term("bce", D.UNCOND_DNET(code))
        return loss

    # ------------------------------------------------------------- sampling
    @torch.no_grad()
    def generate(self, conditions: torch.Tensor | None, noise: torch.Tensor) -> list[torch.Tensor]:
        """Every scale's images from the EMA generator."""
        embedding = None if conditions is None or not self.conditional else conditions.to(self.device).float()
        if self.conditional and embedding is None:
            raise GanstackError("a conditional StackGAN++ samples from captions: give --caption, --captions or "
                                "--from-split")
        with self.sampling_net("G") as G:
            images, _, _ = G(noise.to(self.device), embedding)
        return [im.float().clamp(-1, 1) for im in images]

    def sample(self, conditions: torch.Tensor | None, noise: torch.Tensor) -> torch.Tensor:
        return self.generate(conditions, noise)[-1]

    def conditions_from_text(self, texts: list[str]) -> torch.Tensor | None:
        if not self.conditional:
            raise GanstackError("GAN.B_CONDITION is false: this StackGAN++ takes no captions; sample it with "
                                "--from-split test --count N (N rows of noise samples)")
        if self.embedder is None:
            raise GanstackError(f"EMBEDDING_TYPE={self.text_source}: the authors' embeddings come without their "
                                "text encoder, so free text cannot be encoded; sample with --from-split test, or "
                                "train with EMBEDDING_TYPE: damsm and a DAMSM encoder (TRAIN.NET_E)")
        return self.embedder.embed_texts(texts)

    def damsm_image_encoder(self):
        """R-precision needs the DAMSM image encoder beside TRAIN.NET_E (EMBEDDING_TYPE damsm only)."""
        return paired_image_encoder(self.cfg.TRAIN.NET_E) if self.embedder is not None else None

    def _caption(self, dataset, index: int, sent: int) -> str:
        if isinstance(dataset, EmbeddingImageDataset):
            return dataset.captions_of(index)[sent]
        return dataset.vocab.decode(dataset.split_captions[index * dataset.captions_per_image + sent])

    def _conditions(self, dataset, indices: list[int], sents: list[int]) -> torch.Tensor:
        if isinstance(dataset, EmbeddingImageDataset):
            return torch.from_numpy(dataset.embeddings[indices, sents])
        per_image = dataset.captions_per_image
        return self.embedder.embed_all([dataset.split_captions[i * per_image + s] for i, s in zip(indices, sents)])

    def conditions_from_split(self, split: str, count: int, seed: int):
        """(captions, embeddings, image indices): one caption, drawn with `seed`, for each of the first
        `count` images; unconditional: `count` rows of noise samples (no conditions)."""
        if not self.conditional:
            count = count if count > 0 else GRID_SAMPLES
            return [f"noise sample {k} (unconditional)" for k in range(count)], None, list(range(count))
        dataset = self.dataset(split, train=False)
        indices = list(range(min(count, len(dataset)))) if count > 0 else list(range(len(dataset)))
        gen = torch.Generator().manual_seed(seed)
        sents = torch.randint(dataset.captions_per_image, (len(indices),), generator=gen).tolist()
        texts = [self._caption(dataset, i, s) for i, s in zip(indices, sents)]
        return texts, self._conditions(dataset, indices, sents), indices

    def evaluation_conditions(self, split: str) -> tuple[torch.Tensor | None, list[int]]:
        """Every caption embedding of every image of `split`, and each one's image; unconditional:
        no conditions, one generated image per real image."""
        dataset = self.dataset(split, train=False)
        if not self.conditional:
            return None, list(range(len(dataset)))
        per_image = dataset.captions_per_image
        indices = [i for i in range(len(dataset)) for _ in range(per_image)]
        return self._conditions(dataset, indices, [k % per_image for k in range(len(indices))]), indices

    def adapt_authors_weights(self, name: str, weights: dict) -> dict:
        """The authors' files: DataParallel's "module." prefixes dropped; their D heads (`logits`,
        `jointConv`, `uncond_logits`) renamed to AttnGAN's (COND_DNET, UNCOND_DNET)."""
        weights = {k.removeprefix("module."): v for k, v in weights.items()}
        if not name.startswith("D") or not any(k.startswith("logits.") for k in weights):
            return weights
        head = "COND_DNET.outlogits." if self.conditional else "UNCOND_DNET.outlogits."
        renamed = {}
        for key, value in weights.items():
            if key.startswith("logits."):
                key = head + key.removeprefix("logits.")
            elif key.startswith("uncond_logits."):
                key = "UNCOND_DNET.outlogits." + key.removeprefix("uncond_logits.")
            elif key.startswith("jointConv."):
                key = "COND_DNET." + key
            renamed[key] = value
        return renamed

    # ---------------------------------------------------------------- views
    def visuals(self, batch: dict) -> dict:
        """Every scale's images for fixed noise (conditional: fixed test captions in rows), the real
        batch beside them."""
        if self._fixed is None:
            if self.conditional:
                texts, cond, _ = self.conditions_from_split("test", GRID_CAPTIONS, seed=0)
                noise = self.noise(GRID_SAMPLES, seed=0).repeat(len(texts), 1)
                self._fixed = (texts, cond.repeat_interleave(GRID_SAMPLES, dim=0), noise, GRID_SAMPLES)
            else:
                count = self.cfg.TRAIN.VIS_COUNT
                self._fixed = ([], None, self.noise(count, seed=0), min(count, 8))
        texts, cond, noise, per_row = self._fixed
        out = {f"samples/stage{i}": make_grid(im.add(1).div(2).cpu(), nrow=per_row, padding=2)
               for i, im in enumerate(self.generate(cond, noise))}
        if texts:
            out["samples/captions"] = "\n".join(f"row {i}: {t}" for i, t in enumerate(texts))
        out["samples/real_batch"] = make_grid(batch["images"][-1][:per_row].float().add(1).div(2).cpu(), nrow=per_row)
        return out
