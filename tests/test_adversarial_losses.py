"""The shared adversarial losses (losses.py) against their closed forms."""
from __future__ import annotations

import math

import pytest
import torch

from ganstack.losses import (ADVERSARIAL_KINDS, discriminator_term, feature_matching, generator_term,
                             gradient_penalty)

LOGITS = torch.tensor([-2.0, 0.0, 0.5, 3.0])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_bce_with_one_sided_label_smoothing():
    real = discriminator_term("bce", LOGITS, True, real_label=0.9)
    expected = sum(0.9 * softplus(-x) + 0.1 * softplus(x) for x in LOGITS.tolist()) / 4
    assert real.item() == pytest.approx(expected, rel=1e-6)
    fake = discriminator_term("bce", LOGITS, False, real_label=0.9)  # smoothing never touches fakes
    assert fake.item() == pytest.approx(sum(softplus(x) for x in LOGITS.tolist()) / 4, rel=1e-6)
    assert generator_term("bce", LOGITS).item() == pytest.approx(sum(softplus(-x) for x in LOGITS.tolist()) / 4)


def test_lsgan_hinge_wasserstein_closed_forms():
    x = LOGITS.tolist()
    assert discriminator_term("lsgan", LOGITS, True).item() == pytest.approx(sum((v - 1) ** 2 for v in x) / 4)
    assert discriminator_term("lsgan", LOGITS, False).item() == pytest.approx(sum(v * v for v in x) / 4)
    assert generator_term("lsgan", LOGITS).item() == pytest.approx(sum((v - 1) ** 2 for v in x) / 4)
    assert discriminator_term("hinge", LOGITS, True).item() == pytest.approx(sum(max(0, 1 - v) for v in x) / 4)
    assert discriminator_term("hinge", LOGITS, False).item() == pytest.approx(sum(max(0, 1 + v) for v in x) / 4)
    assert discriminator_term("wasserstein", LOGITS, True).item() == pytest.approx(-sum(x) / 4)
    assert discriminator_term("wasserstein", LOGITS, False).item() == pytest.approx(sum(x) / 4)
    for kind in ("hinge", "wasserstein"):
        assert generator_term(kind, LOGITS).item() == pytest.approx(-sum(x) / 4)


def test_losses_are_float32_under_bf16_and_reject_unknown_kinds():
    for kind in ADVERSARIAL_KINDS:
        assert discriminator_term(kind, LOGITS.bfloat16(), True).dtype == torch.float32
    with pytest.raises(ValueError, match="expected one of"):
        generator_term("minimax", LOGITS)


def test_gradient_penalty_of_a_linear_critic():
    torch.manual_seed(0)
    w = torch.randn(3 * 4 * 4)
    critic = lambda x: x.flatten(1) @ w  # noqa: E731 - gradient is w everywhere
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)
    w_param = torch.nn.Parameter(w.clone())
    gp = gradient_penalty(lambda x: x.flatten(1) @ w_param, real, fake)
    gp.backward()  # differentiable w.r.t. the critic (create_graph)
    assert torch.allclose(w_param.grad, 2 * (w.norm() - 1) * w / w.norm(), atol=1e-5)


def test_feature_matching_compares_batch_means():
    fake = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    real = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    loss = feature_matching(fake, real)
    assert loss.item() == pytest.approx(((2 - 1) ** 2 + (3 - 1) ** 2) / 2)
    loss.backward()
    assert fake.grad is not None
