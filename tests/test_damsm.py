"""DAMSM encoders, losses and R-precision, checked against AttnGAN's definitions (CPU, fast)."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from torchvision.models import inception_v3

from ganstack.data.negatives import WordSubstitutes
from ganstack.errors import GanstackError
from ganstack.losses import (damsm_sentence_loss, damsm_word_loss, func_attention, sentence_similarity,
                             word_similarity)
from ganstack.metrics.rprecision import _draw_candidates, r_precision
from ganstack.nets.damsm import InceptionImageEncoder, TextEncoder, build_image_encoder

# State-dict names of AttnGAN's RNN_ENCODER (code/model.py: encoder, drop, rnn = nn.LSTM(300, 128,
# 1, batch_first=True, bidirectional=True)), with their shapes for nhidden 256.
ATTNGAN_TEXT_KEYS = {
    "encoder.weight": (50, 300),
    "rnn.weight_ih_l0": (512, 300), "rnn.weight_hh_l0": (512, 128),
    "rnn.bias_ih_l0": (512,), "rnn.bias_hh_l0": (512,),
    "rnn.weight_ih_l0_reverse": (512, 300), "rnn.weight_hh_l0_reverse": (512, 128),
    "rnn.bias_ih_l0_reverse": (512,), "rnn.bias_hh_l0_reverse": (512,),
}
# AttnGAN's CNN_ENCODER: torchvision inception_v3's blocks copied in define_module's order,
# then emb_features = conv1x1(768, nef) (no bias) and emb_cnn_code = nn.Linear(2048, nef).
ATTNGAN_IMAGE_MODULES = [
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
    "Mixed_7a", "Mixed_7b", "Mixed_7c", "emb_features", "emb_cnn_code",
]
ATTNGAN_IMAGE_KEYS = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Mixed_6e.branch_pool.conv.weight": (192, 768, 1, 1),
    "Mixed_7c.branch3x3dbl_3b.bn.weight": (384,),
    "emb_features.weight": (256, 768, 1, 1),
    "emb_cnn_code.weight": (256, 2048),
    "emb_cnn_code.bias": (256,),
}
G1, G2, G3 = 4.0, 5.0, 10.0


# ------------------------------------------------------------------ text encoder
def _captions(lens: list[int], steps: int = 7, ntoken: int = 50, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    caps = torch.randint(1, ntoken, (len(lens), steps), generator=g)
    lens = torch.tensor(lens)
    caps[torch.arange(steps) >= lens[:, None]] = 0
    return caps, lens


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU"])
@pytest.mark.parametrize("fc_layer", [False, True])
def test_text_encoder_shapes_and_padding(rnn_type, fc_layer):
    torch.manual_seed(0)
    enc = TextEncoder(50, rnn_type=rnn_type, fc_layer=fc_layer).eval()
    caps, lens = _captions([3, 7, 1, 5])
    words, sent = enc(caps, lens)
    assert words.shape == (4, 256, 7) and sent.shape == (4, 256)
    pad = torch.arange(7) >= lens[:, None]
    assert words.transpose(1, 2)[pad].abs().max() == 0
    assert words.transpose(1, 2)[~pad].abs().min() > 0
    if not fc_layer:
        # The sentence is the forward state after the last word and the backward state after the first.
        h = 128
        last = words[torch.arange(4), :h, lens - 1]
        torch.testing.assert_close(sent[:, :h], last)
        torch.testing.assert_close(sent[:, h:], words[:, h:, 0])


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU"])
def test_text_encoder_ignores_caption_order(rnn_type):
    torch.manual_seed(0)
    enc = TextEncoder(50, rnn_type=rnn_type, fc_layer=True).eval()
    caps, lens = _captions([2, 7, 4, 7, 1])
    perm = torch.argsort(lens, descending=True)               # AttnGAN's sorted batch
    words, sent = enc(caps, lens)
    words_sorted, sent_sorted = enc(caps[perm], lens[perm])
    torch.testing.assert_close(words[perm], words_sorted)
    torch.testing.assert_close(sent[perm], sent_sorted)


def test_text_encoder_state_dict_names_match_attngan():
    sd = TextEncoder(50).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == ATTNGAN_TEXT_KEYS
    gru = TextEncoder(50, rnn_type="GRU").state_dict()
    assert set(gru) == set(ATTNGAN_TEXT_KEYS) and gru["rnn.weight_ih_l0"].shape == (384, 300)
    assert set(TextEncoder(50, fc_layer=True).state_dict()) == set(ATTNGAN_TEXT_KEYS) | {"fc.weight", "fc.bias"}


# ---------------------------------------------------------------- image encoders
@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """A torchvision inception_v3 state dict in its real file format (random weights)."""
    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    with torch.no_grad():
        # He init keeps activations out of the denormal range (slow on CPU), and random BN
        # statistics make loading them visible.
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_normal_(m.weight)
        for name, buf in net.named_buffers():
            if name.endswith("running_mean") or name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("weights") / "inception_v3_google-0cc3c7bd.pth"
    torch.save(net.state_dict(), path)
    return path


def test_inception_encoder_loads_frozen_trunk(inception_file):
    state = torch.load(inception_file, weights_only=True)
    enc = build_image_encoder("inception", 256, weights_path=inception_file)
    sd = enc.state_dict()
    trunk = [k for k in sd if not k.startswith("emb_")]
    assert set(trunk) == {k for k in state if not k.startswith(("fc.", "AuxLogits."))}
    for k in trunk:
        assert torch.equal(sd[k], state[k]), k

    trunk_params = [p for n, p in enc.named_parameters() if not n.startswith("emb_")]
    assert trunk_params and not any(p.requires_grad for p in trunk_params)
    assert all(p.requires_grad for n, p in enc.named_parameters() if n.startswith("emb_"))

    enc.train()
    assert not any(m.training for n, m in enc.named_modules() if n and not n.startswith("emb_"))
    local, glob = enc(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert local.shape == (2, 256, 17, 17) and glob.shape == (2, 256)
    (local.mean() + glob.mean()).backward()
    assert enc.emb_features.weight.grad is not None and enc.emb_cnn_code.bias.grad is not None
    after = enc.state_dict()
    for k in trunk:  # BatchNorm running statistics did not move in train mode
        assert torch.equal(after[k], state[k]), k


def test_inception_encoder_state_dict_names_match_attngan(inception_file):
    enc = InceptionImageEncoder(256, inception_file)
    assert [name for name, _ in enc.named_children()] == ATTNGAN_IMAGE_MODULES
    sd = enc.state_dict()
    for key, shape in ATTNGAN_IMAGE_KEYS.items():
        assert tuple(sd[key].shape) == shape, key
    assert "emb_features.bias" not in sd


def test_inception_encoder_reads_pre_0_4_file(inception_file, tmp_path):
    """AttnGAN's inception_v3_google-1a9a5a14.pth predates BatchNorm's num_batches_tracked."""
    state = {k: v for k, v in torch.load(inception_file, weights_only=True).items()
             if not k.endswith("num_batches_tracked")}
    old = tmp_path / "inception_v3_google-1a9a5a14.pth"
    torch.save(state, old, _use_new_zipfile_serialization=False)
    enc = InceptionImageEncoder(256, old)
    assert torch.equal(enc.Mixed_7c.branch_pool.conv.weight, state["Mixed_7c.branch_pool.conv.weight"])


def _one_line_error(path, match: str):
    with pytest.raises(GanstackError) as info:
        build_image_encoder("inception", 256, weights_path=path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and match in msg
    return msg


def test_inception_weights_errors(tmp_path, inception_file):
    _one_line_error(tmp_path / "absent.pth", "not found")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a torch file" * 50)
    _one_line_error(garbage, "could not be read")
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3)}, other)
    _one_line_error(other, "not a torchvision inception_v3")
    state = torch.load(inception_file, weights_only=True)
    state["Mixed_6e.branch_pool.conv.weight"] = torch.zeros(3, 3)
    torch.save(state, other)
    _one_line_error(other, "size mismatch for Mixed_6e.branch_pool.conv.weight")


def test_cnn_encoder_shapes():
    enc = build_image_encoder("cnn", 32, image_size=64, ndf=8)
    local, glob = enc(torch.rand(3, 3, 50, 50))
    assert local.shape == (3, 32, 8, 8) and glob.shape == (3, 32)
    with pytest.raises(GanstackError, match="IMAGE_ENCODER"):
        build_image_encoder("vgg", 32)


# ------------------------------------------------------ losses, from the paper's equations
def _naive_relevance(region: torch.Tensor, words: torch.Tensor, g1: float, g2: float):
    """R(Q, D) of one image's regions (D, N) and one caption's words (D, L): eq. 7-10 literally."""
    s = region.T @ words                                          # eq. 7: s[n, t] = e_t . v_n
    s_bar = torch.stack([torch.exp(s[n]) / torch.exp(s[n]).sum() for n in range(s.shape[0])])  # eq. 8
    r = []
    for t in range(words.shape[1]):
        alpha = torch.exp(g1 * s_bar[:, t]) / torch.exp(g1 * s_bar[:, t]).sum()               # eq. 9
        c = (region * alpha).sum(1)
        r.append(torch.dot(c, words[:, t]) / (c.norm() * words[:, t].norm()))
    return torch.log(torch.exp(g2 * torch.stack(r)).sum()), s_bar                              # eq. 10


def _naive_ce(scores: torch.Tensor, class_ids) -> tuple[torch.Tensor, torch.Tensor]:
    """eq. 11-13 with AttnGAN's same-class masking; scores[i, c] for image i, caption c."""
    b = scores.shape[0]
    def ce(rows):
        total = 0.0
        for i in range(b):
            keep = [j for j in range(b) if j == i or class_ids is None or class_ids[j] != class_ids[i]]
            total = total - (rows[i, i] - torch.logsumexp(rows[i, keep], 0))
        return total / b
    return ce(scores), ce(scores.T)


def _naive_word_loss(img, words, lens, class_ids):
    b = img.shape[0]
    sim = torch.zeros(b, b, dtype=img.dtype)
    maps = []
    for c in range(b):
        w = words[c, :, :lens[c]]
        for i in range(b):
            sim[i, c], s_bar = _naive_relevance(img[i].flatten(1), w, G1, G2)
        alpha = torch.softmax(G1 * _naive_relevance(img[c].flatten(1), w, G1, G2)[1], dim=0)
        maps.append(alpha.T.reshape(len(alpha.T), *img.shape[-2:]))
    return (*_naive_ce(sim * G3, class_ids), maps, sim)


def _attngan_loop_sim(img, words, lens):
    """AttnGAN's words_loss loop: slice each caption, repeat it over the batch, func_attention."""
    b = img.shape[0]
    cols = []
    for c in range(b):
        w = words[c:c + 1, :, :lens[c]].repeat(b, 1, 1)
        ctx, _ = func_attention(w, img, G1)
        cos = (w * ctx).sum(1) / (w.norm(dim=1) * ctx.norm(dim=1)).clamp(min=1e-8)
        cols.append(torch.log(torch.exp(cos * G2).sum(1, keepdim=True)))
    return torch.cat(cols, 1)                                     # images x captions


@pytest.fixture
def damsm_inputs():
    g = torch.Generator().manual_seed(3)
    img = torch.randn(6, 8, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    words = torch.randn(6, 8, 7, dtype=torch.float64, generator=g)
    lens = torch.tensor([7, 3, 1, 5, 7, 2])
    words = (words * (torch.arange(7) < lens[:, None])[:, None]).requires_grad_()  # zero padding, as the encoder
    return img, words, lens, np.array([1, 2, 1, 3, 2, 4])


@pytest.mark.parametrize("masked", [False, True])
def test_word_loss_equals_naive(damsm_inputs, masked):
    img, words, lens, classes = damsm_inputs
    classes = classes if masked else None
    loss0, loss1, maps = damsm_word_loss(img, words, lens, classes, G1, G2, G3)
    ref0, ref1, ref_maps, ref_sim = _naive_word_loss(img, words, lens, classes)
    torch.testing.assert_close(loss0, ref0, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(loss1, ref1, rtol=1e-10, atol=1e-12)
    assert [m.shape for m in maps] == [(int(n), 3, 4) for n in lens]
    for m, r in zip(maps, ref_maps):
        torch.testing.assert_close(m, r.detach())

    sim, _ = word_similarity(img, words, lens, G1, G2)
    torch.testing.assert_close(sim.T, ref_sim, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sim.T, _attngan_loop_sim(img, words, lens), rtol=1e-10, atol=1e-12)

    grads = torch.autograd.grad(loss0 + 2 * loss1, (img, words))
    ref_grads = torch.autograd.grad(ref0 + 2 * ref1, (img, words))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10)
    # Padded word features get no gradient: they never enter the loss.
    assert grads[1].transpose(1, 2)[torch.arange(7) >= lens[:, None]].abs().max() == 0


@pytest.mark.parametrize("features", [8, 32])  # 12 regions: contexts formed (8) or through the Gram matrix (32)
def test_word_similarity_paths_equal_attngan_loop(features):
    g = torch.Generator().manual_seed(7)
    img = torch.randn(5, features, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    lens = torch.tensor([6, 2, 1, 4, 6])
    words = torch.randn(5, features, 6, dtype=torch.float64, generator=g)
    words = (words * (torch.arange(6) < lens[:, None])[:, None]).requires_grad_()
    sim, _ = word_similarity(img, words, lens, G1, G2)
    torch.testing.assert_close(sim.T, _attngan_loop_sim(img, words, lens), rtol=1e-10, atol=1e-12)
    loss0, loss1, _ = damsm_word_loss(img, words, lens, None, G1, G2, G3)
    ref0, ref1, _, _ = _naive_word_loss(img, words, lens, None)
    grads = torch.autograd.grad(loss0 + 2 * loss1, (img, words))
    ref_grads = torch.autograd.grad(ref0 + 2 * ref1, (img, words))
    for got, ref in zip(grads, ref_grads):
        torch.testing.assert_close(got, ref, rtol=1e-8, atol=1e-10)


def test_word_similarity_ignores_padding_values(damsm_inputs):
    img, words, lens, _ = damsm_inputs
    noisy = words.detach() + 5 * (torch.arange(7) >= lens[:, None])[:, None]
    torch.testing.assert_close(word_similarity(img, words, lens, G1, G2)[0],
                               word_similarity(img, noisy, lens, G1, G2)[0])


def test_func_attention_shapes_and_normalisation():
    q, ctx = torch.randn(2, 8, 5), torch.randn(2, 8, 3, 4)
    weighted, attn = func_attention(q, ctx, G1)
    assert weighted.shape == (2, 8, 5) and attn.shape == (2, 5, 3, 4)
    torch.testing.assert_close(attn.sum((2, 3)), torch.ones(2, 5))
    torch.testing.assert_close(weighted, torch.einsum("bdn,btn->bdt", ctx.flatten(2), attn.flatten(2)))


@pytest.mark.parametrize("masked", [False, True])
def test_sentence_loss_equals_naive(damsm_inputs, masked):
    g = torch.Generator().manual_seed(5)
    img_code = torch.randn(6, 10, dtype=torch.float64, generator=g)
    sent_code = torch.randn(6, 10, dtype=torch.float64, generator=g)
    classes = damsm_inputs[3] if masked else None
    cos = torch.tensor([[float(torch.dot(a, b) / (a.norm() * b.norm())) for b in sent_code] for a in img_code],
                       dtype=torch.float64)
    torch.testing.assert_close(sentence_similarity(img_code, sent_code), cos)
    ref0, ref1 = _naive_ce(cos * G3, classes)
    loss0, loss1 = damsm_sentence_loss(img_code, sent_code, classes, G3)
    torch.testing.assert_close(loss0, ref0)
    torch.testing.assert_close(loss1, ref1)
    # class_ids may come as a tensor too.
    if masked:
        torch.testing.assert_close(damsm_sentence_loss(img_code, sent_code, torch.tensor(classes), G3)[0], ref0)


def test_losses_under_bf16_autocast(damsm_inputs):
    img, words, lens, classes = damsm_inputs
    img32, words32 = img.detach().float().requires_grad_(), words.detach().float()
    ref = damsm_word_loss(img32, words32, lens, classes, G1, G2, G3)[:2]
    ref_s = damsm_sentence_loss(img32.mean((2, 3)), words32.mean(2), classes, G3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = damsm_word_loss(img32.bfloat16(), words32.bfloat16(), lens, classes, G1, G2, G3)[:2]
        out_s = damsm_sentence_loss(img32.mean((2, 3)).bfloat16(), words32.mean(2).bfloat16(), classes, G3)
    for o, r in zip(out + out_s, ref + ref_s):
        assert o.dtype == torch.float32 and torch.isfinite(o)
        assert abs(o.item() - r.item()) < 0.1 * abs(r.item()) + 0.1
    (out[0] + out_s[1]).backward()
    assert torch.isfinite(img32.grad).all()


# ------------------------------------------------------------------- R-precision
def test_r_precision_identical_codes_is_one():
    codes = torch.randn(120, 16)
    out = r_precision(codes, codes.clone(), candidates=100, runs=3)
    assert out["mean"] == 1.0 and out["std"] == 0.0 and out["runs"] == [1.0] * 3
    assert out["candidates"] == 100 and "99" in out["protocol"]


def test_r_precision_random_codes_is_chance():
    rng = np.random.default_rng(1)
    out = r_precision(rng.standard_normal((400, 16)), rng.standard_normal((400, 16)), candidates=100, runs=10)
    assert abs(out["mean"] - 0.01) < 0.006                       # 4000 trials: sd of the mean ~0.0016
    assert out["std"] == pytest.approx(np.std(out["runs"]))


def test_r_precision_is_seeded_and_matches_a_loop():
    rng = np.random.default_rng(2)
    img, txt = rng.standard_normal((150, 8)), rng.standard_normal((150, 8))
    img[:75] = txt[:75] + 0.8 * rng.standard_normal((75, 8))     # half the pairs related
    classes = rng.integers(0, 6, 150)
    a = r_precision(img, txt, candidates=20, runs=4, seed=7, class_ids=classes)
    assert a == r_precision(img, txt, candidates=20, runs=4, seed=7, class_ids=classes)
    assert a["runs"] != r_precision(img, txt, candidates=20, runs=4, seed=8, class_ids=classes)["runs"]

    draws = np.random.default_rng(7)
    cos = (img / np.linalg.norm(img, axis=1, keepdims=True)) @ (txt / np.linalg.norm(txt, axis=1, keepdims=True)).T
    expected = []
    for _ in range(4):
        cand = _draw_candidates(draws, 150, 19, classes)
        expected.append(np.mean([all(cos[i, i] > cos[i, j] for j in cand[i]) for i in range(150)]))
    assert a["runs"] == pytest.approx(expected)


def test_candidates_are_distinct_other_class_with_fallback():
    rng = np.random.default_rng(0)
    classes = np.array([0] * 30 + list(range(1, 91)))            # class 0: only 90 others < 99
    cand = _draw_candidates(rng, 120, 99, classes)
    assert all(len(set(row)) == 99 for row in cand)
    assert not (cand == np.arange(120)[:, None]).any()
    assert not (classes[cand[30:]] == classes[30:, None]).any()   # other-class only
    assert (classes[cand[:30]] == 0).any()                        # fallback: other images

    counts = np.zeros(10)
    for _ in range(3000):                                        # uniform over the pool
        np.add.at(counts, _draw_candidates(rng, 10, 3)[0], 1)
    assert counts[0] == 0 and np.abs(counts[1:] / 1000 - 1).max() < 0.12


def test_r_precision_needs_enough_images():
    with pytest.raises(GanstackError, match="at least 100 images"):
        r_precision(np.ones((99, 4)), np.ones((99, 4)))


# ------------------------------------------------------------ word-swap hard negatives
def test_hard_negatives_replace_one_content_word_by_one_seen_in_the_same_context():
    # 3 images x 2 captions; word 1 "a" is in every caption (IDF 0: never replaced)
    captions = [[1, 2, 3, 4], [1, 5, 3, 4],      # image 0: "2" and "5" paraphrase each other
                [1, 6, 3, 7], [1, 6, 3, 7],      # image 1
                [1, 8, 3, 4], [1, 8, 9, 4]]      # image 2
    subs = WordSubstitutes(captions, 2, vocab_size=10)
    # between "a" and "3", training captions hold 2, 5, 6, 8; image 0's own words never replace
    assert subs.replacements([1, 2, 3, 4], 1, image=0).tolist() == [6, 8]
    assert subs.replacements([1, 6, 3, 7], 1, image=1).tolist() == [2, 5, 8]
    batch = torch.tensor([[1, 2, 3, 4, 0], [1, 6, 3, 7, 0], [1, 8, 3, 4, 0]])
    lens, images = torch.tensor([4, 4, 4]), torch.tensor([0, 1, 2])
    for seed in range(20):
        neg, neg_lens, owner = subs.negatives(batch, lens, images, 2, torch.Generator().manual_seed(seed))
        assert neg.shape[1] == batch.shape[1] and torch.equal(neg_lens, lens[owner])
        places = {}
        for row, o in zip(neg, owner.tolist()):
            diff = (row != batch[o]).nonzero().flatten().tolist()
            assert len(diff) == 1 and 0 < diff[0] < 4  # one word, never the IDF-0 "a"
            p = diff[0]
            assert int(row[p]) in subs.replacements(batch[o, :4].tolist(), p, o).tolist()
            places.setdefault(o, []).append(p)
        assert all(len(set(p)) == len(p) for p in places.values())  # each negative changes a different word
        assert set(places) == {0, 1, 2}
    # a caption whose every word is either everywhere or has no alternative gives no negative
    lone = WordSubstitutes([[1, 2], [1, 2]], 2, vocab_size=3)
    neg, neg_lens, owner = lone.negatives(torch.tensor([[1, 2]]), torch.tensor([2]), torch.tensor([0]), 3)
    assert neg.shape == (0, 2) and owner.numel() == 0


def test_extra_negative_captions_enter_only_the_image_to_caption_direction(damsm_inputs):
    img, words, lens, classes = damsm_inputs
    base = damsm_word_loss(img, words, lens, classes, G1, G2, G3)[:2]
    owner = torch.tensor([0, 3])
    # copies of captions 0 and 3 as their images' negatives: each image can no longer tell it
    # from its own caption, which adds exactly log(2) when the true caption dominated, less otherwise
    extra = damsm_word_loss(img, words, lens, classes, G1, G2, G3, negatives=(words[owner], lens[owner], owner))[:2]
    torch.testing.assert_close(extra[1], base[1])
    ref0, _, _, sim = _naive_word_loss(img, words, lens, classes)
    rows = sim * G3
    keep = lambda i: [j for j in range(6) if j == i or classes[j] != classes[i]]
    lse = [torch.logsumexp(rows[i, keep(i)], 0) for i in range(6)]
    for i in owner.tolist():
        lse[i] = torch.logaddexp(lse[i], rows[i, i])
    torch.testing.assert_close(extra[0], -sum(rows[i, i] - lse[i] for i in range(6)) / 6)

    g = torch.Generator().manual_seed(5)
    img_code, sent_code = torch.randn(6, 10, generator=g), torch.randn(6, 10, generator=g)
    s_base = damsm_sentence_loss(img_code, sent_code, classes, G3)
    s_same = damsm_sentence_loss(img_code, sent_code, classes, G3, negatives=(sent_code[owner], owner))
    torch.testing.assert_close(s_same[1], s_base[1])
    assert s_same[0] > s_base[0]
    # a negative pointing away from its image barely counts
    s_far = damsm_sentence_loss(img_code, sent_code, classes, G3, negatives=(-img_code[owner], owner))
    assert 0 < s_far[0] - s_base[0] < 1e-3
