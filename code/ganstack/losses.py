"""Losses shared by the GAN variants.

Adversarial objectives
----------------------
``discriminator_term(kind, logits, real)`` and ``generator_term(kind, logits)`` give
one term of the usual objectives from raw (pre-sigmoid) logits, so every variant
picks its objective by name (``ADVERSARIAL_KINDS``):

* ``bce``          the original minimax GAN with the non-saturating generator loss
                   (sigmoid cross-entropy; ``real_label`` < 1 is one-sided label smoothing);
* ``lsgan``        least squares (Mao et al. 2017): (D - 1)^2 for real, D^2 for fake;
* ``hinge``        max(0, 1 - D) for real, max(0, 1 + D) for fake; G maximises D;
* ``wasserstein``  the WGAN critic: -D for real, +D for fake; G maximises D. Pair it
                   with weight clipping or ``gradient_penalty`` (WGAN-GP).

``feature_matching`` (Salimans et al. 2016) matches the batch means of a
discriminator layer. All of them compute in float32 under autocast.

Image-to-image terms (pix2pix family): ``PIX2PIX_LOSSES`` maps GAN.LOSS names to the
objectives above; ``discriminator_feature_matching`` and ``perceptual_loss`` (VGG19)
are pix2pixHD's; ``mode_seeking`` (MSGAN) makes a noise-injected generator use its noise.

DAMSM (AttnGAN, Xu et al. 2018, section 3.3)
--------------------------------------------
The Deep Attentional Multimodal Similarity Model scores how well an image matches a
caption at two levels, each turned into a two-way classification over the batch:

* word level: every word attends over the image's regions (``func_attention``); the
  relevance of the caption to the image is ``log sum_w exp(gamma2 * cos(word_w, context_w))``
  (``word_similarity``, eq. 10), and ``damsm_word_loss`` asks each image to pick its own
  caption among the batch's captions and each caption its own image (eq. 11-13);
* sentence level: the same with the cosine of the global image code and the sentence
  code (``sentence_similarity``, ``damsm_sentence_loss``).

Similarities are scaled by gamma3 before the softmax, and pairs whose image and caption
belong to the same class (but are not the true pair) are masked to -inf, since they are
not real negatives. These functions reproduce AttnGAN's ``words_loss`` / ``sent_loss``
exactly, but compare all captions with all images in one batched computation instead of
a Python loop over captions, and take each word's cosine with its region context from the
attention's dot products and the regions' Gram matrix rather than forming every pair's
context vectors where there are fewer regions than features (``_context_cosine``). Under
autocast (bf16/fp16) they run in float32: the exp/log/softmax chain loses too much in 8
mantissa bits; float64 inputs stay float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "func_attention", "word_similarity", "sentence_similarity",
    "damsm_word_loss", "damsm_sentence_loss",
    "ADVERSARIAL_KINDS", "discriminator_term", "generator_term", "gradient_penalty", "r1_penalty",
    "feature_matching",
    "PIX2PIX_LOSSES", "multiscale_mean", "discriminator_feature_matching", "perceptual_loss", "mode_seeking",
]

ClassIds = torch.Tensor | np.ndarray | Sequence[int] | None


@contextmanager
def _full_precision(*tensors: torch.Tensor):
    """Yield the tensors as float32 at least (float64 kept), with autocast off."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    with torch.autocast(device_type=tensors[0].device.type, enabled=False):
        yield tuple(t.to(dtype) for t in tensors)


def _word_mask(cap_lens: torch.Tensor, steps: int, device: torch.device) -> torch.Tensor:
    """(B, steps) bool, True at each caption's real words."""
    cap_lens = torch.as_tensor(cap_lens, device=device)
    return torch.arange(steps, device=device) < cap_lens[:, None]


def _cosine(x1: torch.Tensor, x2: torch.Tensor, dim: int, eps: float = 1e-8) -> torch.Tensor:
    """AttnGAN's cosine_similarity: the norm product is clamped, not each norm."""
    return (x1 * x2).sum(dim) / (x1.norm(dim=dim) * x2.norm(dim=dim)).clamp(min=eps)


def func_attention(query: torch.Tensor, context: torch.Tensor, gamma1: float,
                   word_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Word-to-region attention of DAMSM (AttnGAN eq. 7-9), pairing query b with context b.

    query (B, D, T) word features, context (B, D, H, W) region features ->
    (weighted_context (B, D, T): each word's attention-weighted region feature,
     attn (B, T, H, W): each word's attention over the regions, summing to 1).

    The dot products are first normalised over the words for each region (eq. 8), then
    sharpened by gamma1 and normalised over the regions for each word (eq. 9).
    ``word_mask`` (B, T), True at real words, keeps padding out of the first softmax.
    """
    batch, _, steps = query.shape
    height, width = context.shape[-2:]
    ctx = context.flatten(2)                                    # B x D x N
    attn = torch.bmm(ctx.transpose(1, 2), query)                # B x N x T
    if word_mask is not None:
        attn = attn.masked_fill(~word_mask[:, None, :], float("-inf"))
    attn = torch.softmax(attn, dim=2)                           # over words
    attn = torch.softmax(attn * gamma1, dim=1)                  # over regions
    weighted = torch.bmm(ctx, attn)                             # B x D x T
    return weighted, attn.transpose(1, 2).reshape(batch, steps, height, width)


def _context_cosine(ctx: torch.Tensor, words: torch.Tensor, dots: torch.Tensor, attn: torch.Tensor,
                    eps: float = 1e-8) -> torch.Tensor:
    """cos(c_w, e_w) of every word with its region context c_w = ctx_i @ attn[c, i, :, w], as
    AttnGAN's cosine_similarity, without forming the Bc x Bi x D x T contexts: c_w . e_w is
    sum_n attn * dots (the dot products the attention started from) and |c_w|^2 is
    attn^T (ctx_i^T ctx_i) attn: N x N x T multiplications per pair instead of D x N x T, so
    cheaper when the regions N are fewer than the features D (a quarter at 256 features and 8x8
    regions, and no Bc x Bi x D x T tensor to keep for backward; 2.6x faster forward and backward
    at batch 48 on one CPU thread), dearer at Inception's 17x17 regions (1.2x slower), where the
    contexts are formed as AttnGAN does.

    ctx (Bi, D, N), words (Bc, D, T), dots and attn (Bc, Bi, N, T) -> (Bc, Bi, T)."""
    if ctx.shape[2] >= ctx.shape[1]:  # Inception's 17x17 regions of 256 features: form the contexts
        return _cosine(torch.einsum("idn,cint->cidt", ctx, attn), words[:, None], dim=2, eps=eps)
    dot = (attn * dots).sum(2)
    gram = torch.bmm(ctx.transpose(1, 2), ctx)                  # Bi x N x N
    context_sq = (attn * torch.einsum("inm,cimt->cint", gram, attn)).sum(2)
    # the clamp keeps sqrt's gradient finite where a context is exactly zero; such a cosine is 0 either way
    context_norm = context_sq.clamp(min=torch.finfo(context_sq.dtype).tiny).sqrt()
    return dot / (context_norm * words.norm(dim=1)[:, None, :]).clamp(min=eps)


def word_similarity(img_features: torch.Tensor, words: torch.Tensor, cap_lens: torch.Tensor,
                    gamma1: float, gamma2: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Word-level relevance R(Q, D) of every caption to every image (AttnGAN eq. 10).

    img_features (Bi, D, H, W), words (Bc, D, T), cap_lens (Bc,) with every length >= 1 ->
    (sim (Bc, Bi) with sim[c, i] = log sum_{w < len_c} exp(gamma2 * cos(e_w, c_w)),
     attn_maps: for each caption c < min(Bc, Bi), its words' attention on image c,
     (len_c, H, W), detached, for visualisation).

    Padded word positions are masked out of the word softmax and of the sum, so the result
    equals AttnGAN's loop that slices ``words[c, :, :cap_lens[c]]`` for each caption.
    """
    n_cap, _, steps = words.shape
    n_img = img_features.shape[0]
    height, width = img_features.shape[-2:]
    valid = _word_mask(cap_lens, steps, words.device)           # Bc x T
    with _full_precision(img_features, words) as (img_features, words):
        ctx = img_features.flatten(2)                           # Bi x D x N
        # Every (caption, image) pair at once: Bc x Bi x N x T region-word dot products.
        dots = torch.einsum("idn,cdt->cint", ctx, words)
        attn = dots.masked_fill(~valid[:, None, None, :], float("-inf"))
        attn = torch.softmax(attn, dim=3)                       # eq. 8: over the caption's words
        attn = torch.softmax(attn * gamma1, dim=2)              # eq. 9: over regions
        cos = _context_cosine(ctx, words, dots, attn)           # Bc x Bi x T: each word with its context
        # log(sum exp) over each caption's own words; padded words contribute exp(-inf) = 0.
        sim = (cos * gamma2).masked_fill(~valid[:, None, :], float("-inf")).logsumexp(dim=2)
    lens = torch.as_tensor(cap_lens).tolist()
    own = attn.detach().diagonal(dim1=0, dim2=1)                # N x T x min(Bc, Bi)
    # Cloned so that the maps do not keep the whole Bc x Bi attention tensor alive.
    attn_maps = [own[..., c][:, :lens[c]].T.reshape(lens[c], height, width).clone()
                 for c in range(min(n_cap, n_img))]
    return sim, attn_maps


def sentence_similarity(img_code: torch.Tensor, sent_code: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Cosine similarity of every image code (Bi, D) with every sentence code (Bc, D) -> (Bi, Bc)."""
    dots = img_code @ sent_code.T
    norms = img_code.norm(dim=1)[:, None] * sent_code.norm(dim=1)[None, :]
    return dots / norms.clamp(min=eps)


def _same_class_mask(class_ids: ClassIds, batch: int, device: torch.device) -> torch.Tensor | None:
    """(B, B) True where two different samples share a class: not genuine negatives."""
    if class_ids is None:
        return None
    ids = torch.as_tensor(np.asarray(class_ids) if not torch.is_tensor(class_ids) else class_ids,
                          device=device).reshape(-1)
    if ids.numel() != batch:
        raise ValueError(f"class_ids has {ids.numel()} entries for a batch of {batch}")
    mask = ids[:, None] == ids[None, :]
    mask.fill_diagonal_(False)
    return mask


def _two_way_ce(scores: torch.Tensor, class_ids: ClassIds,
                negatives: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """scores (B images, B captions), true pairs on the diagonal -> (image->caption CE, caption->image CE).

    ``negatives`` (B, K): scores of extra negative captions (``data.negatives.WordSubstitutes``), -inf where
    a caption is no negative of an image; they join the image->caption direction only (they
    have no image of their own)."""
    batch = scores.shape[0]
    if scores.shape != (batch, batch):
        raise ValueError(f"DAMSM losses need as many images as captions, got scores {tuple(scores.shape)}")
    mask = _same_class_mask(class_ids, batch, scores.device)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    labels = torch.arange(batch, device=scores.device)
    rows = scores if negatives is None else torch.cat([scores, negatives], dim=1)
    return F.cross_entropy(rows, labels), F.cross_entropy(scores.T, labels)


def _owner_columns(scores: torch.Tensor, owner: torch.Tensor, batch: int) -> torch.Tensor:
    """(K,) scores of negative k against image owner[k] -> (batch, K), -inf elsewhere."""
    out = scores.new_full((batch, scores.shape[0]), float("-inf"))
    return out.index_put((owner.to(scores.device), torch.arange(scores.shape[0], device=scores.device)), scores)


def damsm_word_loss(img_features: torch.Tensor, words: torch.Tensor, cap_lens: torch.Tensor,
                    class_ids: ClassIds, gamma1: float, gamma2: float, gamma3: float,
                    negatives: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """AttnGAN's words_loss: (loss0 image->caption, loss1 caption->image, attn_maps).

    img_features (B, D, H, W) local image features, words (B, D, T), cap_lens (B,),
    class_ids (B,) or None. Image i and caption i are the true pair. ``negatives``
    (words (K, D, T), cap_lens (K,), owner (K,)): extra negative captions, each scored
    against its owner image only (image->caption direction).
    """
    sim, attn_maps = word_similarity(img_features, words, cap_lens, gamma1, gamma2)
    extra = None
    if negatives is not None:
        neg_words, neg_lens, owner = negatives
        neg_sim = paired_word_similarity(img_features[owner], neg_words, neg_lens, gamma1, gamma2)
        extra = _owner_columns(neg_sim, owner, img_features.shape[0])
    with _full_precision(sim) as (sim,):
        loss0, loss1 = _two_way_ce(sim.T * gamma3, class_ids, None if extra is None else extra.float() * gamma3)
    return loss0, loss1, attn_maps


def paired_word_similarity(img_features: torch.Tensor, words: torch.Tensor, cap_lens: torch.Tensor,
                           gamma1: float, gamma2: float) -> torch.Tensor:
    """R(Q, D) of caption k with image k only (K,): ``word_similarity``'s diagonal at K pairs' cost."""
    valid = _word_mask(cap_lens, words.shape[2], words.device)
    with _full_precision(img_features, words) as (img_features, words):
        context, _ = func_attention(words, img_features, gamma1, word_mask=valid)
        cos = _cosine(context, words, dim=1)                    # K x T
        return (cos * gamma2).masked_fill(~valid, float("-inf")).logsumexp(dim=1)


def damsm_sentence_loss(img_code: torch.Tensor, sent_code: torch.Tensor, class_ids: ClassIds,
                        gamma3: float, eps: float = 1e-8,
                        negatives: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """AttnGAN's sent_loss: (loss0 image->caption, loss1 caption->image).

    img_code (B, D) global image codes, sent_code (B, D) sentence codes, class_ids (B,) or None;
    ``negatives`` (sentence codes (K, D), owner (K,)) as in ``damsm_word_loss``.
    """
    with _full_precision(img_code, sent_code) as (img_code, sent_code):
        extra = None
        if negatives is not None:
            neg_code, owner = negatives
            neg_sim = _cosine(img_code[owner], neg_code.to(img_code.dtype), dim=1, eps=eps)
            extra = _owner_columns(neg_sim * gamma3, owner, img_code.shape[0])
        return _two_way_ce(sentence_similarity(img_code, sent_code, eps) * gamma3, class_ids, extra)


# ------------------------------------------------------------ adversarial
ADVERSARIAL_KINDS = ("bce", "lsgan", "hinge", "wasserstein")


def _check_kind(kind: str) -> None:
    if kind not in ADVERSARIAL_KINDS:
        raise ValueError(f"adversarial loss {kind!r}: expected one of {', '.join(ADVERSARIAL_KINDS)}")


def discriminator_term(kind: str, logits: torch.Tensor, real: bool, *, real_label: float = 1.0) -> torch.Tensor:
    """The discriminator's loss on a batch it should call real (or fake)."""
    _check_kind(kind)
    logits = logits.float()
    if kind in ("bce", "lsgan"):
        target = torch.full_like(logits, real_label if real else 0.0)
        if kind == "bce":
            return F.binary_cross_entropy_with_logits(logits, target)
        return F.mse_loss(logits, target)
    if kind == "hinge":
        return F.relu(1.0 - logits).mean() if real else F.relu(1.0 + logits).mean()
    return -logits.mean() if real else logits.mean()


def generator_term(kind: str, logits: torch.Tensor) -> torch.Tensor:
    """The generator's loss on the discriminator's logits for its images."""
    _check_kind(kind)
    logits = logits.float()
    if kind == "bce":  # non-saturating: -log D(G(z))
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    if kind == "lsgan":
        return F.mse_loss(logits, torch.ones_like(logits))
    return -logits.mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(|grad_x critic(x)|_2 - 1)^2] at random
    points between real and fake samples. ``critic`` maps images to logits (B,)."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(mixed).float()
    grad, = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return (grad.float().flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def r1_penalty(images: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E[|grad_x D(x)|^2] on real images, weighted gamma / 2 by the
    caller. ``images`` must require grad and ``scores`` (B,) be D's logits computed from them."""
    grad, = torch.autograd.grad(scores.float().sum(), images, create_graph=True)
    return grad.float().flatten(1).pow(2).sum(1).mean()


def feature_matching(fake_features: torch.Tensor, real_features: torch.Tensor) -> torch.Tensor:
    """Squared distance between the batch-mean features of fake and (fixed) real samples."""
    return F.mse_loss(fake_features.float().mean(0), real_features.detach().float().mean(0))


# ------------------------------------------------------------ image-to-image (pix2pix family)
# GAN.LOSS names of the pix2pix code -> the objectives above; wgangp adds gradient_penalty.
PIX2PIX_LOSSES = {"vanilla": "bce", "lsgan": "lsgan", "hinge": "hinge", "wgangp": "wasserstein"}


def multiscale_mean(terms) -> torch.Tensor:
    """The mean of one loss term per discriminator scale (pix2pixHD sums; the mean keeps the
    scale of a single-D loss, so LAMBDA_L1 = 100 means the same with 1 or 3 scales)."""
    terms = list(terms)
    return sum(terms) / len(terms)


def discriminator_feature_matching(fake_scales, real_scales) -> torch.Tensor:
    """pix2pixHD's feature matching: L1 between D's intermediate activations (all but the logits)
    on fake and real pairs, averaged over layers and scales; real activations are constants."""
    return multiscale_mean(
        sum(F.l1_loss(f.float(), r.detach().float()) for f, r in zip(fake[:-1], real[:-1])) / (len(fake) - 1)
        for fake, real in zip(fake_scales, real_scales))


def perceptual_loss(vgg, fake: torch.Tensor, real: torch.Tensor,
                    weights: Sequence[float] = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)) -> torch.Tensor:
    """pix2pixHD's VGG loss: sum_i w_i |phi_i(fake) - phi_i(real)|_1 over VGG19's relu1_1 ... relu5_1
    (weights as pix2pixHD); ``vgg`` maps images in [-1, 1] to that list of activations."""
    with torch.no_grad():
        targets = vgg(real)
    return sum(w * F.l1_loss(f.float(), t.float()) for w, f, t in zip(weights, vgg(fake), targets))


def mode_seeking(out_a: torch.Tensor, out_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor,
                 eps: float = 1e-5) -> torch.Tensor:
    """MSGAN (Mao et al. 2019): 1 / (|G(x, z_a) - G(x, z_b)|_1 / |z_a - z_b|_1 + eps). Minimising it
    pushes two noise codes apart in the output: G can no longer ignore z, as pix2pix's does."""
    ratio = (out_a.float() - out_b.float()).abs().mean() / (z_a.float() - z_b.float()).abs().mean()
    return 1.0 / (ratio + eps)
