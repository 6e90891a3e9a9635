"""The diffusers internals the engine relies on, by name: an upgrade that moves one fails here, loudly.

pyproject.toml pins diffusers to the tested minor range; to widen it, run this file against the
new release first. Each entry says what in mechinterp uses it.
"""

from __future__ import annotations

import importlib
import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from mechinterp.testing.tiny import tiny_pipeline

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

#: module -> names imported from it (private modules or private names)
MODULE_NAMES = {
    "diffusers.models.attention_dispatch": ("dispatch_attention_fn",),  # engine/fast_attention: split attention
    "diffusers.models.embeddings": ("apply_rotary_emb",),  # engine/fast_attention: rotary like the stock processor
    "diffusers.models.transformers.transformer_flux2": (  # engine/fast_attention: stock processors' maths
        "Flux2AttnProcessor", "Flux2ParallelSelfAttnProcessor", "_get_qkv_projections"),
    "diffusers.pipelines.flux2.pipeline_flux2_klein": ("compute_empirical_mu",),  # organisms/trainer: the sigmas
}
#: parameter names, in order, of what mechinterp calls positionally or by keyword
SIGNATURES = {
    ("diffusers.models.transformers.transformer_flux2", "Flux2AttnProcessor.__call__"):  # engine/attention
        ("self", "attn", "hidden_states", "encoder_hidden_states", "attention_mask", "image_rotary_emb"),
    ("diffusers.models.transformers.transformer_flux2", "Flux2ParallelSelfAttnProcessor.__call__"):
        ("self", "attn", "hidden_states", "attention_mask", "image_rotary_emb"),
    ("diffusers.models.transformers.transformer_flux2", "_get_qkv_projections"):
        ("attn", "hidden_states", "encoder_hidden_states"),
    ("diffusers.models.transformers.transformer_flux2", "Flux2TransformerBlock.forward"):  # engine/truncate hooks
        ("self", "hidden_states", "encoder_hidden_states", "temb_mod_img", "temb_mod_txt", "image_rotary_emb",
         "joint_attention_kwargs"),
    ("diffusers.pipelines.flux2.pipeline_flux2_klein", "compute_empirical_mu"): ("image_seq_len", "num_steps"),
}
#: private pipeline members (engine/batch: per-sample references; organisms/trainer: latents as the pipeline makes them)
PIPELINE = ("_encode_vae_image", "_pack_latents", "_prepare_latent_ids", "_prepare_image_ids", "_execution_device",
            "prepare_image_latents", "encode_prompt", "vae_scale_factor")
#: engine/batch: the pipeline's reference resize
IMAGE_PROCESSOR = ("_resize_to_target_area",)
#: engine/sites and hooks: the transformer's layout
TRANSFORMER = ("transformer_blocks", "single_transformer_blocks", "context_embedder", "set_attn_processor",
               "attn_processors")
#: engine/fast_attention: attention module attributes of double and single blocks
DOUBLE_ATTENTION = ("to_out", "to_add_out", "norm_q", "norm_k", "norm_added_q", "norm_added_k", "added_kv_proj_dim",
                    "head_dim")
SINGLE_ATTENTION = ("to_qkv_mlp_proj", "inner_dim", "mlp_hidden_dim", "mlp_mult_factor", "mlp_act_fn", "to_out",
                    "norm_q", "norm_k", "head_dim")


def _resolve(module: str, dotted: str):
    obj = importlib.import_module(module)
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def test_installed_diffusers_is_in_the_pinned_range():
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pin = next(Requirement(d) for d in deps if Requirement(d).name == "diffusers")
    assert pin.specifier and any(s.operator == "<" for s in pin.specifier), f"diffusers must have an upper bound: {pin}"
    assert version("diffusers") in pin.specifier, f"diffusers {version('diffusers')} is outside the tested {pin}"


@pytest.mark.parametrize("module, names", MODULE_NAMES.items())
def test_private_names_exist(module, names):
    missing = [n for n in names if not hasattr(importlib.import_module(module), n)]
    assert not missing, f"diffusers {version('diffusers')}: {module} lacks {missing}"


@pytest.mark.parametrize("where, params", SIGNATURES.items(), ids=[w[1] for w in SIGNATURES])
def test_signatures_mechinterp_calls(where, params):
    got = tuple(inspect.signature(_resolve(*where)).parameters)
    assert got[:len(params)] == params, f"diffusers {version('diffusers')}: {where[1]}{got} (mechinterp expects {params})"


def test_pipeline_members_exist():
    pipe = tiny_pipeline()
    transformer = pipe.transformer
    double = transformer.transformer_blocks[0].attn
    single = transformer.single_transformer_blocks[0].attn
    checks = {"pipeline": (pipe, PIPELINE), "image processor": (pipe.image_processor, IMAGE_PROCESSOR),
              "transformer": (transformer, TRANSFORMER), "double-block attention": (double, DOUBLE_ATTENTION),
              "single-block attention": (single, SINGLE_ATTENTION)}
    missing = {what: [n for n in names if not hasattr(obj, n)] for what, (obj, names) in checks.items()}
    assert not any(missing.values()), f"diffusers {version('diffusers')} lacks {missing}"
    stock = _resolve("diffusers.models.transformers.transformer_flux2", "Flux2AttnProcessor")
    single_stock = _resolve("diffusers.models.transformers.transformer_flux2", "Flux2ParallelSelfAttnProcessor")
    assert type(double.processor) is stock and type(single.processor) is single_stock  # the fast path's condition
