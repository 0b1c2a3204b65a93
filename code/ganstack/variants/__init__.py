"""Variant registry: VARIANT in the config names one of these."""
from __future__ import annotations

import importlib

_VARIANTS = {
    "aging_conditional": "ganstack.variants.aging_conditional:AgingConditional",
    "aging_cycle": "ganstack.variants.aging_cycle:AgingCycle",
    "attngan": "ganstack.variants.attngan:AttnGAN",
    "damsm": "ganstack.variants.damsm:DAMSM",
    "gan_int_cls": "ganstack.variants.gan_int_cls:GanIntCls",
    "opgan": "ganstack.variants.opgan:OPGAN",
    "pix2pix": "ganstack.variants.pix2pix:Pix2Pix",
    "srcnn": "ganstack.variants.srcnn:SRCNNVariant",
    "srgan": "ganstack.variants.srgan:SRGANVariant",
    "srresnet": "ganstack.variants.srresnet:SRResNetVariant",
    "stackgan2": "ganstack.variants.stackgan2:StackGAN2",
}


def known_variants() -> list[str]:
    return sorted(_VARIANTS)


def get_variant(name: str):
    module, cls = _VARIANTS[name].split(":")
    return getattr(importlib.import_module(module), cls)
