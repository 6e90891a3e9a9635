"""Model shapes for benchmarking: the FLUX.2-klein-9B configs, synthetic inputs, FLOPs.

``KLEIN_9B`` is the transformer config of FLUX.2-klein-9B as the issue and the model card state
it (8 double + 24 single blocks, 32 heads x 128, Qwen3-8B text features 3 x 4096 = 12288);
``QWEN3_8B`` its text encoder's config, and the FLUX.2 VAE is ``AutoencoderKLFlux2``'s default
config. Weights are random — only the shapes matter for timing. ``forward_flops`` is the analytic
FLOP count of one transformer forward (linear layers + attention), used for projections.
"""

from __future__ import annotations

import torch

from mechinterp.engine.layout import TokenLayout

KLEIN_9B = dict(patch_size=1, in_channels=128, num_layers=8, num_single_layers=24, attention_head_dim=128,
                num_attention_heads=32, joint_attention_dim=12288, timestep_guidance_channels=256, mlp_ratio=3.0,
                axes_dims_rope=(32, 32, 32, 32), rope_theta=2000, guidance_embeds=False)

#: a CPU-sized transformer with the same block structure ratios, for transformer-level CPU timings
SMALL = dict(patch_size=1, in_channels=16, num_layers=2, num_single_layers=4, attention_head_dim=32,
             num_attention_heads=4, joint_attention_dim=96, timestep_guidance_channels=32, mlp_ratio=3.0,
             axes_dims_rope=(8, 8, 8, 8), guidance_embeds=False)

#: the text encoder of FLUX.2-klein-9B (Qwen3-8B); the pipeline stacks its hidden states 9, 18, 27
QWEN3_8B = dict(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False)

#: token counts of one edit: 1024² output and one 1024² reference on FLUX.2 (VAE x8, 2x2 packing)
TOKENS_1024 = dict(text=512, image=4096, ref=4096)
TOKENS_SMALL = dict(text=128, image=1024, ref=1024)


#: the random-weight transformer benches: config, tokens of one edit, dtype
TRANSFORMERS = {"small": (SMALL, TOKENS_SMALL, torch.float32), "klein-9b": (KLEIN_9B, TOKENS_1024, torch.bfloat16)}


def build_transformer(config: dict, device="cpu", dtype=torch.float32, seed: int = 0):
    """A ``Flux2Transformer2DModel`` with random weights, built directly on ``device``."""
    from diffusers import Flux2Transformer2DModel

    torch.manual_seed(seed)
    with torch.device(device):
        model = Flux2Transformer2DModel(**config)
    return model.to(dtype=dtype).eval()


def klein_9b_pipeline(transformer, device, dtype=torch.bfloat16, seed: int = 0, text_config: dict = QWEN3_8B):
    """A ``Flux2KleinPipeline`` at FLUX.2-klein-9B shapes around ``transformer``: a random Qwen3-8B
    text encoder (``text_config``), the FLUX.2 VAE with random weights, and the tiny in-process
    tokenizer (its token ids fit any vocabulary; the text is padded to 512 tokens as on the real model)."""
    from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from mechinterp.engine.tiny import build_tokenizer

    torch.manual_seed(seed)
    with torch.device(device):
        text_encoder = Qwen3ForCausalLM._from_config(Qwen3Config(**text_config), dtype=dtype)
        vae = AutoencoderKLFlux2()
    pipe = Flux2KleinPipeline(transformer=transformer, vae=vae.to(dtype=dtype).eval(), text_encoder=text_encoder.eval(),
                              tokenizer=build_tokenizer(), scheduler=FlowMatchEulerDiscreteScheduler(), is_distilled=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def synthetic_layout(text: int, image: int, ref: int) -> TokenLayout:
    """A layout with FLUX.2-like text groups: scaffolding, a 16-token instruction, padding."""
    span = lambda a, b: torch.arange(a, b, dtype=torch.long)  # noqa: E731
    content, used = span(5, 21), 26
    template = torch.cat([span(0, 5), span(21, used)])
    groups = {"text": span(0, text), "text.content": content, "text.padding": torch.cat([template, span(used, text)]),
              "text.template": template, "text.pad": span(used, text), "image": span(text, text + image),
              "ref": span(text + image, text + image + ref)}
    return TokenLayout(text_len=text, n_image=image, n_ref=ref, groups=groups)


def synthetic_inputs(config: dict, layout: TokenLayout, device, dtype, seed: int = 0) -> dict:
    """Transformer keyword arguments for one forward of ``layout``, shaped as the pipeline makes them."""
    gen = torch.Generator().manual_seed(seed)
    side = int(round(layout.n_image ** 0.5))
    hw = torch.cartesian_prod(torch.arange(1), torch.arange(side), torch.arange(side), torch.arange(1))
    rside = int(round(max(layout.n_ref, 1) ** 0.5))
    ref = torch.cartesian_prod(torch.tensor([10]), torch.arange(rside), torch.arange(rside), torch.arange(1))[: layout.n_ref]
    img_ids = torch.cat([hw, ref])[None]
    txt_ids = torch.cartesian_prod(torch.arange(1), torch.arange(1), torch.arange(1), torch.arange(layout.text_len))[None]
    x = torch.randn(1, layout.n_image + layout.n_ref, config["in_channels"], generator=gen)
    enc = torch.randn(1, layout.text_len, config["joint_attention_dim"], generator=gen)
    to = dict(device=device, dtype=dtype)
    return dict(hidden_states=x.to(**to), encoder_hidden_states=enc.to(**to), timestep=torch.tensor([0.5], **to),
                img_ids=img_ids.to(device), txt_ids=txt_ids.to(device), guidance=None, return_dict=False)


def forward_flops(config: dict, text: int, image: int, ref: int, cutoff_flat: int | None = None) -> float:
    """FLOPs of one transformer forward; with ``cutoff_flat`` the reference leaves after that block.

    Linear layers: each token goes once through one stream's weights per block (double: QKV, out,
    SwiGLU MLP; single: fused QKV+MLP in, fused out). Attention: ``4 S^2 d`` per block.
    """
    d = config["num_attention_heads"] * config["attention_head_dim"]
    m = config.get("mlp_ratio", 3.0)
    per_token_double = 2 * (4 * d * d + 2 * m * d * d + m * d * d)  # QKV+out, MLP in (gated x2), MLP out
    per_token_single = 2 * (3 * d * d + 2 * m * d * d + (d + m * d) * d)
    total = 0.0
    blocks = [per_token_double] * config["num_layers"] + [per_token_single] * config["num_single_layers"]
    for i, per_token in enumerate(blocks):
        s = text + image + (0 if cutoff_flat is not None and i > cutoff_flat else ref)
        total += per_token * s + 4 * s * s * d
    return total
