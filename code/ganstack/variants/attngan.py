"""AttnGAN (Xu et al. 2018, "AttnGAN: Fine-Grained Text to Image Generation with Attentional
Generative Adversarial Networks") and AttnDCGAN (GAN.B_DCGAN).

A frozen DAMSM text encoder (TRAIN.NET_E) gives word features e and a sentence code e_bar.
One training step, as the paper's section 3 and the authors' trainer:

  1. x_hat_0..m-1 = G(z, e_bar, e): conditioning augmentation c ~ N(mu(e_bar), sigma(e_bar)),
     the first stage from [c, z], each later stage attends from every pixel to the words.
  2. each stage's discriminator D_i learns, with binary cross-entropy on its two heads,
       (uncond(x) + cond(x, e_bar)) / 2 -> real
       (uncond(x_hat) + cond(x_hat, e_bar) + cond(x, e_bar of another caption)) / 3 -> fake
     (the mismatched pair is the batch's captions shifted by one, as the original; with
     GAN.HARD_MISMATCH, a caption of another class's image, often one of its nearest).
  3. G learns  sum_i [uncond(x_hat_i) + cond(x_hat_i, e_bar)] -> real
               + LAMBDA * DAMSM(x_hat_last; word loss + sentence loss, gamma1..3)
               + KL(N(mu, sigma) || N(0, I)).
AttnDCGAN has one image (the last stage) and one discriminator.
Not in the paper, as settings: GAN.D_NORM=spectral (spectral-norm Ds without batch norm) and
GAN.R1_GAMMA (R1 on each D's real logits, added to step 2), and GAN.HARD_MISMATCH (mismatched
captions that differ from the image in few attributes).

The fake images are drawn once per step and serve both updates, as the original's.
Conditions handed to sampling and evaluation are one tensor per caption that packs the
sentence code, the word features and the word mask (`pack_text`), so the shared sample and
eval code slice, repeat and interpolate them like any other condition.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import make_grid

from ..data import attngan
from ..data.embeddings import SentenceEmbedder
from ..engine.optim import Updater
from ..errors import GanstackError
from ..losses import damsm_sentence_loss, damsm_word_loss, discriminator_term, generator_term, r1_penalty
from ..nets.attngan import D_NORMS, AttnGenerator, StageDiscriminator
from ..nets.damsm import paired_image_encoder
from ..nets.init import init_weights, spectrally_normalised
from ..visual import attention_overlay, labelled_strip
from .base import adam, Variant, frozen, unwrap

GRID_CAPTIONS, GRID_SAMPLES = 8, 8  # TensorBoard grid: fixed captions x fixed noise


def pack_text(sentence: torch.Tensor, words: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, D), (B, D, T), (B, T) bool -> one (B, D + D*T + T) float tensor per caption."""
    return torch.cat([sentence, words.flatten(1), valid.float()], dim=1)


def unpack_text(conditions: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inverse of pack_text: (sentence, words, padding mask True at padding)."""
    steps = (conditions.shape[1] - dim) // (dim + 1)
    sentence = conditions[:, :dim]
    words = conditions[:, dim:dim + dim * steps].reshape(-1, dim, steps)
    padding = conditions[:, dim + dim * steps:] < 0.5  # an interpolated mask keeps the words of either end
    return sentence, words, padding


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), averaged over every element as the original."""
    return -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())


def stage_sizes(cfg) -> list[int]:
    """The image size of every stage: TREE.BASE_SIZE doubled TREE.BRANCH_NUM - 1 times."""
    base, stages = cfg.TREE.BASE_SIZE, cfg.TREE.BRANCH_NUM
    if stages < 1:
        raise GanstackError(f"TREE.BRANCH_NUM={stages}: AttnGAN needs at least one stage")
    if base < 16 or base & (base - 1):
        raise GanstackError(f"TREE.BASE_SIZE={base}: AttnGAN's first stage is a power of two >= 16; set e.g. 64")
    return [base * 2 ** i for i in range(stages)]


def discriminator_sizes(cfg) -> list[int]:
    """One D_NET per stage; AttnDCGAN (GAN.B_DCGAN) judges the last image only."""
    sizes = stage_sizes(cfg)
    return sizes[-1:] if cfg.GAN.B_DCGAN else sizes


def discriminator_norm(cfg) -> str:
    """GAN.D_NORM for AttnGAN's and OP-GAN's Ds: auto = batch (the authors'), or spectral with
    GAN.SPECTRAL_NORM (the OP-GAN fork's switch); spectral or none."""
    if cfg.GAN.SPECTRAL_NORM:
        if cfg.GAN.D_NORM not in ("auto", "spectral"):
            raise GanstackError(f"GAN.SPECTRAL_NORM=true and GAN.D_NORM={cfg.GAN.D_NORM} disagree; drop one "
                                "(SPECTRAL_NORM: true is D_NORM: spectral)")
        return "spectral"
    norm = "batch" if cfg.GAN.D_NORM == "auto" else cfg.GAN.D_NORM
    if norm not in D_NORMS:
        raise GanstackError(f"GAN.D_NORM={norm}: AttnGAN's discriminators take auto, batch, spectral or none")
    return norm


def build_networks(cfg, embedding_dim: int) -> dict[str, nn.Module]:
    """G and D0, D1, ... as the config describes them (the original's netG / netD<i>), initialised
    as GAN.INIT says: authors = the original's weights_init (miscc/utils.py) on netG and every
    netD: orthogonal conv and linear weights with gain 1, linear biases 0, BatchNorm weights
    N(1, 0.02) and biases 0; pytorch = PyTorch's layer defaults. GAN.D_NORM=spectral then
    wraps every D weight in spectral norm. The DAMSM encoders are not here."""
    gan = cfg.GAN
    norm = discriminator_norm(cfg)
    nets = {"G": AttnGenerator(stages=cfg.TREE.BRANCH_NUM, gf_dim=gan.GF_DIM, z_dim=gan.Z_DIM,
                               condition_dim=gan.CONDITION_DIM, embedding_dim=embedding_dim,
                               residual_blocks=gan.R_NUM, dcgan=gan.B_DCGAN, base_size=cfg.TREE.BASE_SIZE)}
    for i, size in enumerate(discriminator_sizes(cfg)):
        nets[f"D{i}"] = StageDiscriminator(size, df_dim=gan.DF_DIM, embedding_dim=embedding_dim, norm=norm)
    return initialised(nets, gan.INIT, norm)


def initialised(nets: dict[str, nn.Module], init: str, norm: str) -> dict[str, nn.Module]:
    """GAN.INIT on G and every D (authors: the original's weights_init), then, for spectral-norm Ds,
    spectral norm wrapped around every D weight (after initialising: it wraps the weights it finds)."""
    if init == "authors":
        for net in nets.values():
            init_weights(net, "orthogonal", 1.0, norm_std=0.02, zero_conv_bias=False)
    if norm == "spectral":
        for name, net in nets.items():
            if name != "G":
                spectrally_normalised(net)
    return nets


class AttnGAN(Variant):
    name = "attngan"
    ema_nets = ("G",)
    takes_diff_augment = True
    takes_r1 = True
    takes_hard_mismatch = True
    lr_schedule = "none"  # constant Adam 2e-4, betas (0.5, 0.999)
    collate = staticmethod(attngan.collate)

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        self.z_dim = cfg.GAN.Z_DIM
        self.sizes = stage_sizes(cfg)
        self.d_sizes = discriminator_sizes(cfg)
        self.d_names = [f"D{i}" for i in range(len(self.d_sizes))]
        self.embedder: SentenceEmbedder | None = None
        self.image_encoder = None
        self._fixed = None

    # ----------------------------------------------------------------- data
    def dataset(self, split: str, train: bool):
        cfg = self.cfg
        return attngan.TextImageDataset(
            cfg.DATA_DIR, split, image_sizes=self.sizes, words_num=cfg.TEXT.WORDS_NUM,
            captions_per_image=cfg.TEXT.CAPTIONS_PER_IMAGE, augment=train, flip=cfg.TRAIN.FLIP,
            crop=cfg.TRAIN.CROP_JITTER, wrong_caption=train and cfg.GAN.HARD_MISMATCH > 0)

    def build(self, dataset) -> None:
        cfg = self.cfg
        if not cfg.TRAIN.NET_E:
            raise GanstackError("TRAIN.NET_E is empty: AttnGAN needs a pretrained DAMSM text encoder; train one "
                                "(./train.sh cpu cfg/damsm/shapes.yml) and set TRAIN.NET_E to its text_encoder.pth")
        self.embedder = SentenceEmbedder(cfg.TRAIN.NET_E, dataset.vocab, cfg.TEXT.WORDS_NUM, self.device)
        dim = self.embedder.dim
        if dim != cfg.TEXT.EMBEDDING_DIM:
            raise GanstackError(f"TRAIN.NET_E={cfg.TRAIN.NET_E} gives {dim}-d text features but TEXT.EMBEDDING_DIM "
                                f"is {cfg.TEXT.EMBEDDING_DIM}; set TEXT.EMBEDDING_DIM: {dim}")
        attngan.attach_hard_mismatches(dataset, self.embedder, cfg.GAN.HARD_MISMATCH, cfg.GAN.HARD_MISMATCH_K)
        self.nets.update(self.networks(dim))
        # One Adam per network, as the original (Adam is per parameter: one over all Ds is the same).
        d_params = [p for name in self.d_names for p in self.nets[name].parameters()]
        self.optimizers["D"] = adam(cfg, d_params, cfg.TRAIN.DISCRIMINATOR_LR)
        self.optimizers["G"] = adam(cfg, self.nets["G"].parameters(), cfg.TRAIN.GENERATOR_LR)
        if cfg.TRAIN.FLAG and cfg.TRAIN.SMOOTH.LAMBDA > 0:
            self.image_encoder = self.damsm_image_encoder()
            if self.image_encoder is None:
                raise GanstackError(f"TRAIN.NET_E={cfg.TRAIN.NET_E}: no image_encoder.pth beside it, which the "
                                    "DAMSM loss needs; use a folder the DAMSM job wrote, or TRAIN.SMOOTH.LAMBDA: 0")
            self.image_encoder.to(self.device)

    def networks(self, embedding_dim: int) -> dict[str, nn.Module]:
        return build_networks(self.cfg, embedding_dim)

    def encode_text(self, captions: torch.Tensor, cap_lens: torch.Tensor):
        """Word features (B, D, T), sentence codes (B, D) and the padding mask (B, T), no gradient."""
        words, sentence = self.embedder.embed_words(captions, cap_lens)
        padding = torch.arange(captions.shape[1], device=words.device) >= cap_lens.to(words.device)[:, None]
        return words, sentence, padding

    # ------------------------------------------------------------- training
    def train_step(self, batch: dict, step: int, opt: Updater) -> dict[str, float]:
        G = self.nets["G"]
        words, sentence, padding = self.encode_text(batch["caption"], batch["cap_len"])
        reals = batch["images"][-len(self.d_sizes):]
        z = torch.randn(sentence.shape[0], self.z_dim, device=sentence.device)
        wrong = None  # GAN.HARD_MISMATCH: the dataset's mismatched captions instead of the shifted batch
        if "wrong_caption" in batch:
            wrong = self.encode_text(batch["wrong_caption"], batch["wrong_cap_len"])[1]

        # 1. Every stage's discriminator: real pairs -> real; generated and mismatched pairs -> fake.
        with opt.autocast():
            fakes, _, mu, logvar = G(z, sentence, words, padding)
            d_terms = {}
            r1 = self.r1_weight(step)
            for name, real, fake in zip(self.d_names, reals, fakes[-len(self.d_sizes):]):
                d_terms[f"loss/{name}"], penalty = self.discriminator_loss(name, real, fake.detach(), sentence,
                                                                                 r1 > 0, wrong)
                if r1 > 0:
                    d_terms[f"loss/{name}_r1"] = r1 * penalty
        opt.update("D", sum(d_terms.values()), d_terms)
        scalars = {k: v.item() for k, v in d_terms.items()}

        # 2. The generator: fool every discriminator, match the captions under DAMSM, stay near N(0, I).
        d_plain = {name: unwrap(self.nets[name]) for name in self.d_names}  # bare: keep DDP's hooks out
        with frozen(*d_plain.values()), opt.autocast():
            g_terms = self.adversarial_terms(d_plain, fakes, sentence, lambda D, fake: D(self.augment(fake)))
            g_terms.update(self.caption_terms(fakes[-1], words, sentence, batch, mu, logvar))
        opt.update("G", sum(g_terms.values()), g_terms)
        scalars.update({k: v.item() for k, v in g_terms.items()})
        return scalars

    def adversarial_terms(self, d_plain: dict, fakes: list, sentence: torch.Tensor, code_of) -> dict:
        """G's adversarial terms: every stage's bare D must call its image real, with and without the
        sentence; code_of(D, image) is how that D encodes an image (AttnGAN: augmented; OP-GAN: at its layout)."""
        terms = {}
        for name, fake in zip(self.d_names, fakes[-len(self.d_sizes):]):
            D = d_plain[name]
            code = code_of(D, fake)
            terms[f"loss/G_{name}"] = (generator_term("bce", D.COND_DNET(code, sentence))
                                       + generator_term("bce", D.UNCOND_DNET(code)))
        return terms

    def caption_terms(self, image: torch.Tensor, words: torch.Tensor, sentence: torch.Tensor, batch: dict,
                      mu: torch.Tensor, logvar: torch.Tensor) -> dict[str, torch.Tensor]:
        """G's terms beside the adversarial ones: LAMBDA x DAMSM (word + sentence losses of the
        last image against its captions) and the conditioning augmentation's KL."""
        smooth, terms = self.cfg.TRAIN.SMOOTH, {}
        if smooth.LAMBDA > 0:
            regions, image_code = self.image_encoder(image)
            w0, w1, _ = damsm_word_loss(regions, words, batch["cap_len"], batch["class_id"],
                                        smooth.GAMMA1, smooth.GAMMA2, smooth.GAMMA3)
            s0, s1 = damsm_sentence_loss(image_code, sentence, batch["class_id"], smooth.GAMMA3)
            terms["loss/G_damsm_words"] = smooth.LAMBDA * (w0 + w1)
            terms["loss/G_damsm_sentence"] = smooth.LAMBDA * (s0 + s1)
        terms["loss/G_kl"] = kl_loss(mu.float(), logvar.float())
        return terms

    def discriminator_loss(self, name: str, real: torch.Tensor, fake: torch.Tensor,
                           sentence: torch.Tensor, with_r1: bool = False, wrong: torch.Tensor | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The paper's D loss for one stage, and (with_r1) the R1 penalty of its two real logits.
        `wrong`: sentence codes that do not match the real images (default: the batch shifted by one)."""
        D, heads = self.nets[name], unwrap(self.nets[name])
        if with_r1:
            real = real.detach().requires_grad_(True)
        real_code, fake_code = D(self.augment(real)), D(self.augment(fake))  # GAN.DIFF_AUGMENT, if any
        cond_real_logits, uncond_real_logits = heads.COND_DNET(real_code, sentence), heads.UNCOND_DNET(real_code)
        cond_real = discriminator_term("bce", cond_real_logits, True)
        cond_fake = discriminator_term("bce", heads.COND_DNET(fake_code, sentence), False)
        # mismatched pairs: image i with the caption of image i + 1, or the given captions
        wrong_logits = (heads.COND_DNET(real_code[:-1], sentence[1:]) if wrong is None
                        else heads.COND_DNET(real_code, wrong))
        cond_wrong = discriminator_term("bce", wrong_logits, False)
        uncond_real = discriminator_term("bce", uncond_real_logits, True)
        uncond_fake = discriminator_term("bce", heads.UNCOND_DNET(fake_code), False)
        loss = (uncond_real + cond_real) / 2 + (uncond_fake + cond_fake + cond_wrong) / 3
        penalty = r1_penalty(real, cond_real_logits + uncond_real_logits) if with_r1 else None
        return loss, penalty

    # ------------------------------------------------------------- sampling
    @torch.no_grad()
    def generate(self, conditions: torch.Tensor, noise: torch.Tensor):
        """Every stage's images and attention maps for packed conditions, from the EMA generator."""
        sentence, words, padding = unpack_text(conditions.to(self.device).float(), self.embedder.dim)
        with self.sampling_net("G") as G:
            images, attentions, _, _ = G(noise.to(self.device), sentence, words, padding)
        return [im.float().clamp(-1, 1) for im in images], attentions

    def sample(self, conditions: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.generate(conditions, noise)[0][-1]

    def _pack_ids(self, ids: torch.Tensor, lens: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        out = []
        for s in range(0, len(ids), batch_size):
            words, sentence, padding = self.encode_text(ids[s:s + batch_size].to(self.device),
                                                        lens[s:s + batch_size].to(self.device))
            out.append(pack_text(sentence, words, ~padding).cpu())
        return torch.cat(out) if out else torch.zeros(0, 0)

    def conditions_from_text(self, texts: list[str]) -> torch.Tensor:
        return self._pack_ids(*self.embedder.encode(texts))

    def caption_words(self, text: str) -> list[str]:
        """The words of `text` the generator sees (in the vocabulary, at most TEXT.WORDS_NUM)."""
        ids, length = self.embedder.encode([text])
        return [self.embedder.vocab.ixtoword[int(i)] for i in ids[0, :int(length[0])]]

    def sentence_codes(self, conditions: torch.Tensor) -> torch.Tensor:
        """The DAMSM sentence code of each packed condition (for R-precision)."""
        return conditions[:, :self.embedder.dim]

    def conditions_from_split(self, split: str, count: int, seed: int):
        """(captions, conditions, image indices): one caption, drawn with `seed`, for each of the
        first `count` images."""
        dataset = self.dataset(split, train=False)
        indices = list(range(min(count, len(dataset)))) if count > 0 else list(range(len(dataset)))
        per_image = dataset.captions_per_image
        sents = torch.randint(per_image, (len(indices),), generator=torch.Generator().manual_seed(seed)).tolist()
        chosen = [dataset.split_captions[i * per_image + s] for i, s in zip(indices, sents)]
        texts = [dataset.vocab.decode(c) for c in chosen]
        return texts, self._pack_ids(*self.embedder.padded(chosen)), indices

    def evaluation_conditions(self, split: str) -> tuple[torch.Tensor, list[int]]:
        """Every caption of every image of `split`, and the index of each caption's image."""
        dataset = self.dataset(split, train=False)
        per_image = dataset.captions_per_image
        indices = [i for i in range(len(dataset)) for _ in range(per_image)]
        captions = list(dataset.split_captions[:len(indices)])
        return self._pack_ids(*self.embedder.padded(captions)), indices

    def damsm_image_encoder(self):
        """The DAMSM image encoder paired with TRAIN.NET_E: the DAMSM loss and R-precision."""
        return paired_image_encoder(self.cfg.TRAIN.NET_E)

    # ---------------------------------------------------------------- views
    def attention_strip(self, text: str, conditions: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """One caption's pictures as the paper's figures: for every stage, its image, then each
        word's attention map over the image that stage attended to, the word written under it.
        (3, H, W) in [0, 1], one row per stage after the first."""
        images, attentions = self.generate(conditions[:1], noise[:1])
        words = self.caption_words(text)
        rows = []
        for k, attention in enumerate(attentions):
            # stage k + 1 attends over the features that became stage k's image
            source = images[min(k, len(images) - 1)][0].add(1).div(2)
            maps = attention[0, :len(words)]
            tiles = torch.cat([source[None], attention_overlay(source, maps)])
            rows.append(labelled_strip(tiles, [f"stage {k + 1}"] + words))
        if not rows:  # a one-stage model attends nowhere
            rows.append(labelled_strip(images[-1][:1].add(1).div(2), ["no attention (1 stage)"]))
        width = max(r.shape[2] for r in rows)
        return torch.cat([F.pad(r, (0, width - r.shape[2]), value=1.0) for r in rows], dim=1)

    def visuals(self, batch: dict) -> dict:
        """Fixed test captions (rows) x fixed noise (columns), every stage; the first caption's
        attention strip."""
        if self._fixed is None:
            texts, cond, _ = self.conditions_from_split("test", GRID_CAPTIONS, seed=0)
            noise = self.noise(GRID_SAMPLES, seed=0).repeat(len(texts), 1)
            self._fixed = (texts, cond.repeat_interleave(GRID_SAMPLES, dim=0), noise)
        texts, cond, noise = self._fixed
        images, _ = self.generate(cond, noise)
        out = {f"samples/stage{i}": make_grid(im.add(1).div(2).cpu(), nrow=GRID_SAMPLES, padding=2)
               for i, im in enumerate(images)}
        out["samples/captions"] = "\n".join(f"row {i}: {t}" for i, t in enumerate(texts))
        out["attention/words"] = self.attention_strip(texts[0], cond[:1], noise[:1])
        out["samples/real_batch"] = make_grid(batch["images"][-1][:GRID_SAMPLES].float().add(1).div(2).cpu(),
                                              nrow=GRID_SAMPLES)
        return out

