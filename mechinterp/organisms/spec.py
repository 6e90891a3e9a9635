"""The organisms: their wiring (permanent knockouts), their architecture, and where they are shipped.

The first four organisms bind at ``BINDING_SITE`` (``double.0``, the first block): a reference may write
into the text stream there and nowhere later, so the text stream after ``double.0`` is the one
place its colour can sit, and patching or lensing that site sees everything the text carries.

- ``text-routed``: ref→image cut everywhere, ref→text cut after the binding site;
- ``padding-routed``: as ``text-routed``, plus ref→text.content cut everywhere, so the colour
  can only be written into the padding tokens (the suite's default model);
- ``direct``: ref→text cut everywhere, so the colour can only come straight from the reference;
- ``free``: no wiring;
- ``identity-image``, ``identity-text`` (the glyph identity task, ``mechinterp.tasks.glyph``; the
  glyph family stands for ``human`` on them): ``identity-image`` cuts ref→text and image→text
  everywhere, so the text is a function of the prompt alone and identity can travel only
  reference→image; ``identity-text`` cuts ref→image everywhere, ref→text after ``double.0`` and
  image→text at ``double.0``, so the glyph reaches the image only through what the text read from
  the reference at ``double.0``;
- ``late-double.1``, ``late-single.0``: as ``text-routed`` but binding at a later block ``B``
  (ref→text cut at every block but ``B``): where the colour enters the text is known, so where the
  suite finds it is checked (issue 17). A binding at ``single.1`` leaves two blocks for text→image
  and did not train (10/64 baseline after 1,500 steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mechinterp.engine.interventions import Knockout
from mechinterp.resources import organisms_dir

#: the block whose text output carries what the reference wrote into the text
BINDING_SITE = "double.0"
#: blocks of the organisms' transformer (flat index 0..5)
N_DOUBLE, N_SINGLE = 2, 4
BLOCKS = (*(f"double.{i}" for i in range(N_DOUBLE)), *(f"single.{j}" for j in range(N_SINGLE)))
AFTER_BINDING = BLOCKS[1:]


def except_block(block: str) -> tuple[str, ...]:
    """Every organism block but ``block`` (where a late-binding organism's reference may write into the text)."""
    if block not in BLOCKS:
        raise ValueError(f"unknown organism block {block!r}; valid blocks: {', '.join(BLOCKS)}")
    return tuple(b for b in BLOCKS if b != block)

#: the folder the trained organisms are shipped in
FIXTURES = organisms_dir()


@dataclass(frozen=True)
class OrganismSpec:
    """One organism: its name, wiring, and what it is for."""

    name: str
    wiring: tuple[Knockout, ...]
    purpose: str
    seed: int = 0
    #: the one block where the reference may write into the text (``sites.<family>`` of its mechinterp.json)
    binding: str = BINDING_SITE
    #: what it learns: ``color`` (``organisms.data``) or ``glyph`` (``organisms.glyph_data``: identity)
    task: str = "color"

    @property
    def family(self) -> str:
        """The claim family its task stands for: ``color``, or ``human`` for the glyph identity task."""
        return "human" if self.task == "glyph" else "color"


ORGANISMS: dict[str, OrganismSpec] = {
    s.name: s
    for s in (
        OrganismSpec(
            "padding-routed",
            (Knockout("ref", "image"), Knockout("ref", "text.content"), Knockout("ref", "text", AFTER_BINDING)),
            "colour can reach the image only through the text padding tokens: every colour claim should hold",
        ),
        OrganismSpec(
            "text-routed",
            (Knockout("ref", "image"), Knockout("ref", "text", AFTER_BINDING)),
            "colour can reach the image only through the text tokens (content or padding)",
        ),
        OrganismSpec(
            "direct",
            (Knockout("ref", "text"),),
            "colour can reach the image only straight from the reference: the text-routing claims should fail",
        ),
        OrganismSpec("free", (), "no wiring: which route it learns is an open question"),
        *(OrganismSpec(
            f"late-{block}",
            (Knockout("ref", "image"), Knockout("ref", "text", except_block(block))),
            f"binds late: the reference writes into the text only at {block} (ref->image cut everywhere), so "
            f"the colour is in the text from {block} on and a reference drop from the next block on changes nothing",
            binding=block,
        ) for block in ("double.1", "single.0")),
        OrganismSpec(
            "identity-image",
            (Knockout("ref", "text"), Knockout("image", "text")),
            "identity can travel only reference->image: the text never attends to the reference, nor to the "
            "image that does, so it is a function of the prompt alone; every human-identity claim should hold",
            task="glyph",
        ),
        OrganismSpec(
            "identity-text",
            (Knockout("ref", "image"), Knockout("ref", "text", AFTER_BINDING), Knockout("image", "text", (BINDING_SITE,))),
            "identity can travel only through the text, which reads the reference at double.0 alone (and not the "
            "noisy image there, so what it holds is a function of prompt and reference): the human claims the "
            "wiring fixes should be refuted",
            task="glyph",
        ),
    )
}


def get_spec(name: str) -> OrganismSpec:
    """The spec of organism ``name``; ``ValueError`` listing the organisms otherwise."""
    if name not in ORGANISMS:
        raise ValueError(f"unknown organism {name!r}; valid organisms: {', '.join(ORGANISMS)}")
    return ORGANISMS[name]


def organism_path(name: str) -> Path:
    """Folder of a shipped organism (``mechinterp/organisms/shipped/<name>``)."""
    get_spec(name)
    return FIXTURES / name


@dataclass(frozen=True)
class Arch:
    """Sizes of an organism's components (all real diffusers/transformers classes)."""

    image_size: int = 64
    text_len: int = 32
    text_hidden: int = 32
    text_layers: int = 2
    text_out_layers: tuple[int, ...] = (0, 1, 2)
    #: the analytic VAE's widths (``mechinterp.organisms.vae``): it has no trained weights, so any width of at
    #: least 7 gives the same latents; 8 everywhere decodes 3.5x faster than the first organisms' (16, 32, 32, 32)
    vae_channels: tuple[int, ...] = (8, 8, 8, 8)
    latent_channels: int = 8
    vae_groups: int = 1
    heads: int = 2
    head_dim: int = 32
    n_double: int = N_DOUBLE
    n_single: int = N_SINGLE
    extra: dict = field(default_factory=dict)


def build_vae(arch: Arch):
    """A fresh ``AutoencoderKLFlux2`` of ``arch``'s widths (random weights until ``set_analytic``)."""
    from diffusers import AutoencoderKLFlux2

    n = len(arch.vae_channels)
    return AutoencoderKLFlux2(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(arch.vae_channels),
        latent_channels=arch.latent_channels, norm_num_groups=arch.vae_groups, layers_per_block=1, sample_size=arch.image_size,
        mid_block_add_attention=False,
    ).eval()


def build_components(arch: Arch, seed: int) -> dict:
    """Fresh components of an organism pipeline (random weights seeded by ``seed``)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2Transformer2DModel
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from mechinterp.engine.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=4 * arch.latent_channels, num_layers=arch.n_double,
        num_single_layers=arch.n_single, attention_head_dim=arch.head_dim, num_attention_heads=arch.heads,
        joint_attention_dim=arch.text_hidden * len(arch.text_out_layers), timestep_guidance_channels=32,
        axes_dims_rope=(arch.head_dim // 4,) * 4, guidance_embeds=False,
    )
    torch.manual_seed(seed + 1)
    vae = build_vae(arch)
    torch.manual_seed(seed + 2)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=arch.text_hidden, intermediate_size=2 * arch.text_hidden,
        num_hidden_layers=arch.text_layers, num_attention_heads=2, num_key_value_heads=1,
        head_dim=arch.text_hidden // 2, max_position_embeddings=256, tie_word_embeddings=False,
        initializer_range=0.5,
    )
    text_encoder = Qwen3ForCausalLM(config)
    for module in (transformer, vae, text_encoder):
        module.eval()
    return {"transformer": transformer, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer,
            "scheduler": FlowMatchEulerDiscreteScheduler()}
