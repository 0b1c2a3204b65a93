"""Weight initialisations of the original implementations, shared by the nets that follow them.

pix2pix (networks.py init_weights): conv and linear weights from init_type with a gain
(normal: N(0, 0.02)), their biases 0; BatchNorm weights N(1, gain), biases 0.
AttnGAN / StackGAN-v2 (miscc/utils.py weights_init, applied to netG and every netD):
orthogonal conv and linear weights with gain 1, linear biases 0 (conv biases keep their
default); BatchNorm weights N(1, 0.02), biases 0.
"""
from __future__ import annotations

from torch import nn

from ..errors import GanstackError

INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")


def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02, *,
                 norm_std: float | None = None, zero_conv_bias: bool = True) -> nn.Module:
    """Initialise every Conv*/Linear and BatchNorm* layer of `net` in place and return it.

    Weights of conv and linear layers come from `init_type` scaled by `gain`; linear biases
    are zeroed, conv biases too unless `zero_conv_bias` is false. BatchNorm weights are drawn
    from N(1, norm_std) (norm_std defaults to gain), their biases zeroed. Spectral-normalised
    convs are initialised through their weight_orig."""
    if init_type not in INIT_TYPES:
        raise GanstackError(f"weight init {init_type!r} is not one of {', '.join(INIT_TYPES)}")
    std = gain if norm_std is None else norm_std

    def init(m: nn.Module) -> None:
        name = m.__class__.__name__
        weight = getattr(m, "weight_orig", getattr(m, "weight", None))
        if ("Conv" in name or "Linear" in name) and weight is not None:
            if init_type == "normal":
                nn.init.normal_(weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(weight, gain=gain)
            if getattr(m, "bias", None) is not None and ("Linear" in name or zero_conv_bias):
                nn.init.zeros_(m.bias)
        elif "BatchNorm" in name and getattr(m, "weight", None) is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return net.apply(init)


def spectrally_normalised(module: nn.Module) -> nn.Module:
    """Spectral norm (Miyato et al. 2018, one power iteration per forward) on every conv and
    linear weight of `module`, in place. Initialise first: the norm wraps the weights it finds."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(m)
    return module
