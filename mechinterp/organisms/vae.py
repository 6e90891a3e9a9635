"""An ``AutoencoderKLFlux2`` set analytically so that colours survive the round trip exactly.

Training a VAE this small to keep colours took longer than a whole organism (its GroupNorm
layers normalise away absolute colour levels), so the organisms set theirs by hand instead:
every residual branch is zeroed (each ResNet block is the identity or a channel embedding),
each downsampler averages 2×2 pixels and each upsampler copies them, and the two output
GroupNorms are made affine-exact by a constant *anchor* channel plus a negated copy of the
colour channels (the group mean is then constant and the variance all but constant). The
encoder's latent is the mean RGB of each pixel block (8×8 with the organisms' four VAE blocks,
in ``[-1, 1]``); the decoder draws it back as a block of that colour. The batch-norm statistics are then fitted to the organisms' images.
"""

from __future__ import annotations

import torch
from torch import nn

ANCHOR = 1000.0  # value of the constant channel that pins the GroupNorm statistics
SHIFT = 20.0  # offset keeping SiLU in its linear range (SiLU(x) = x to 1e-7 for x >= 20)


def _zero(module: nn.Module) -> None:
    for p in module.parameters():
        nn.init.zeros_(p)


def _identity_conv(conv: nn.Conv2d) -> None:
    """Make ``conv`` copy its input channels (embedding or truncating when counts differ)."""
    _zero(conv)
    k = conv.kernel_size[0] // 2
    with torch.no_grad():
        for c in range(min(conv.in_channels, conv.out_channels)):
            conv.weight[c, c, k, k] = 1.0


def _identity_resnets(block) -> None:
    for res in block.resnets:
        _zero(res.conv2)
        if res.conv_shortcut is not None:
            _identity_conv(res.conv_shortcut)


def _colour_in(conv: nn.Conv2d) -> None:
    """First conv: channels 0-2 = colour, 3-5 = -colour, 6 = anchor."""
    _zero(conv)
    k = conv.kernel_size[0] // 2
    with torch.no_grad():
        for c in range(3):
            conv.weight[c, c, k, k] = 1.0
            conv.weight[3 + c, c, k, k] = -1.0
        conv.bias[6] = ANCHOR


def _exact_norm_out(norm: nn.GroupNorm, conv_out: nn.Conv2d, n_out: int) -> None:
    """GroupNorm + SiLU + conv that return channels 0-2 of the input unchanged (as outputs 0-2)."""
    if norm.num_groups != 1:
        raise ValueError(f"the analytic VAE needs norm_num_groups=1, got {norm.num_groups}")
    c_total = norm.num_channels
    mu = ANCHOR / c_total
    sigma = (ANCHOR**2 / c_total - mu**2) ** 0.5
    with torch.no_grad():
        norm.weight.zero_()
        norm.bias.zero_()
        norm.weight[:3] = sigma
        norm.bias[:3] = mu + SHIFT
    _zero(conv_out)
    k = conv_out.kernel_size[0] // 2
    with torch.no_grad():
        for c in range(min(3, n_out)):
            conv_out.weight[c, c, k, k] = 1.0
            conv_out.bias[c] = -SHIFT


def set_analytic(vae) -> None:
    """Overwrite ``vae``'s weights with the colour-exact block-averaging autoencoder described above."""
    enc, dec = vae.encoder, vae.decoder
    _colour_in(enc.conv_in)
    for block in enc.down_blocks:
        _identity_resnets(block)
        for down in block.downsamplers or []:
            _zero(down.conv)
            with torch.no_grad():
                for c in range(down.conv.in_channels):
                    down.conv.weight[c, c, :2, :2] = 0.25
    _identity_resnets(enc.mid_block)
    _exact_norm_out(enc.conv_norm_out, enc.conv_out, enc.conv_out.out_channels)
    _identity_conv(vae.quant_conv)
    _identity_conv(vae.post_quant_conv)
    _colour_in(dec.conv_in)
    _identity_resnets(dec.mid_block)
    for block in dec.up_blocks:
        _identity_resnets(block)
        for up in block.upsamplers or []:
            _identity_conv(up.conv)
    _exact_norm_out(dec.conv_norm_out, dec.conv_out, 3)


def fit_latent_stats(pipe, pixels: torch.Tensor) -> None:
    """Set the VAE's batch-norm statistics (used by the pipeline to scale latents) from ``pixels``."""
    with torch.no_grad():
        lat = pipe._patchify_latents(pipe.vae.encode(pixels).latent_dist.mode())
        pipe.vae.bn.running_mean.copy_(lat.mean(dim=(0, 2, 3)))
        pipe.vae.bn.running_var.copy_(lat.var(dim=(0, 2, 3)))
