"""Property tests (Hypothesis): whatever a config file, a --set override or a caption holds, the
answer is a result or one GanstackError, never a traceback."""
from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from ganstack.config import _all_keys, load_config, parse_override, DEFAULTS
from ganstack.errors import GanstackError

KEYS = _all_keys(DEFAULTS)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=40), st.sampled_from(["cnn", "attngan", "hinge", "1e-4", "-1", "nan", "inf"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                      max_leaves=12)


def nested(key: str, value):
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


@st.composite
def documents(draw):
    """Mostly real keys (so values get checked deeply), some invented ones, sometimes a _BASE_."""
    doc = {}
    for key in draw(st.lists(st.one_of(st.sampled_from(KEYS), st.text(max_size=20)), max_size=6)):
        top = nested(key, draw(values)) if key else {"": draw(values)}
        doc.update(top)
    if draw(st.booleans()):
        doc["_BASE_"] = draw(st.one_of(st.sampled_from([str(ROOT / "cfg/attngan/shapes.yml"),
                                                        str(ROOT / "cfg/pix2pix/facades.yml"), "missing.yml"]),
                                       values))
    return doc


def loads_or_refuses(path, overrides=()) -> None:
    try:
        load_config(path, list(overrides))
    except GanstackError as e:
        assert "\n" not in str(e).strip(), str(e)


@FUZZ
@given(doc=documents())
def test_any_yaml_document_loads_or_is_one_line(tmp_path, doc):
    path = tmp_path / "fuzz.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    loads_or_refuses(path)


@FUZZ
@given(data=st.one_of(st.binary(max_size=600), st.text(max_size=600).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_any_bytes_as_a_config_file_load_or_are_one_line(tmp_path, data):
    path = tmp_path / "fuzz.yml"
    path.write_bytes(data)
    loads_or_refuses(path)


@FUZZ
@given(overrides=st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), st.text(max_size=30)),
    st.builds(lambda k, v: f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}", st.sampled_from(KEYS), values),
    st.text(max_size=40)), max_size=4))
def test_any_set_override_applies_or_is_one_line(overrides):
    for text in overrides:
        try:
            parse_override(text)
        except GanstackError:
            pass
    loads_or_refuses(ROOT / "cfg/attngan/shapes.yml", overrides)


@pytest.fixture(scope="module")
def text_variants(workspace, tmp_path_factory):
    """AttnGAN and GAN-INT-CLS after one training step, loaded as `ganstack sample` loads them."""
    from ganstack.cli import main
    from ganstack.engine.evaluate import load_variant
    out = tmp_path_factory.mktemp("fuzz_runs")
    loaded = []
    for family in ("attngan", "gan_int_cls"):
        overrides = [f"OUTPUT_DIR={out}", "RUN_NAME=fuzz", "TRAIN.MAX_STEPS=1"]
        args = ["train", str(workspace.cfgs[family]), "--device", "cpu"]
        assert main(args + [a for o in overrides for a in ("--set", o)]) == 0
        cfg = load_config(workspace.cfgs[family], overrides)
        loaded.append(load_variant(cfg, None, "cpu")[0])
        (out / "fuzz").rename(out / f"fuzz_{family}")
    return loaded


WORDS = ["a", "red", "blue", "circle", "star", "at", "the", "top", "left", "small", "\u00e9", "\U0001f600", "", "   "]
captions = st.one_of(st.text(max_size=300), st.text(alphabet="abcdefghij \t\n.,!?'-", max_size=300),
                     st.lists(st.sampled_from(WORDS), max_size=400).map(" ".join))  # up to 400 words


@settings(max_examples=50, deadline=None)
@given(text=captions)
def test_any_caption_gives_finite_images_or_one_line(text_variants, text):
    import torch
    for variant in text_variants:
        try:
            cond = variant.conditions_from_text([text])
        except GanstackError as e:
            assert "\n" not in str(e).strip(), str(e)
            continue
        images = variant.sample(cond.expand(2, *cond.shape[1:]), variant.noise(2, seed=0))
        assert images.shape[0] == 2 and torch.isfinite(images).all()
