"""A tiny FLUX.2-klein pipeline built offline from the real diffusers/transformers classes.

(In the library, below the tools that build on it — the organisms, the benchmarks; the tests
take it from :mod:`mechinterp.testing`.)

It is the engine's test bed: every code path the real ``Flux2KleinPipeline`` takes (chat
template, Qwen3 hidden-state stacking, VAE encode of the reference, latent packing, the
double/single stream transformer, the flow-match scheduler) runs here on a CPU in well
under a second, with random weights. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mechinterp.engine.meta import ModelMeta
from mechinterp.engine.model import save_pipeline

#: the sequence length the tiny pipeline uses for its text (the real model uses 512)
TINY_TEXT_LEN = 48

#: Qwen-style chat template (the subset the FLUX.2 pipeline uses: one user turn, generation
#: prompt, thinking disabled), so the chat scaffolding tokens exist exactly as on the real model.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}"
    "{% endif %}"
)

#: words the tokenizer is trained on: the paper's task vocabulary, so instructions tokenize
#: into a handful of tokens rather than bytes
_CORPUS = [
    "draw a {obj} in this color",
    "draw the {obj} in this color, keep everything else",
    "make a {obj} in the style of this image",
    "add a {obj} to the scene",
    "remove the {obj} from the scene",
    "a photo of a person holding a {obj}",
]
_WORDS = (
    "ball car chair couch hat mug pillow vase square circle triangle cross ring bar diamond star "
    "blue brown green orange pink purple red yellow white black gray cat dog tree house lamp"
).split()


def build_tokenizer():
    """Train a small byte-level BPE in-process and wrap it as a Qwen-style fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [line.format(obj=w) for line in _CORPUS for w in _WORDS] * 3
    corpus += [" ".join(_WORDS), "user assistant system", "\n\n"]
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=specials[1:],
        model_max_length=512,
        padding_side="right",
    )
    fast.chat_template = QWEN_CHAT_TEMPLATE
    return fast


def tiny_components(seed: int = 0, num_layers: int = 2, num_single_layers: int = 2, tokenizer=None) -> dict:
    """The five components of a tiny ``Flux2KleinPipeline``, random weights seeded by ``seed``.

    ``tokenizer`` replaces the small trained one (e.g. ``qwen3_tokenizer()``, the real one);
    the text encoder's vocabulary follows it.
    """
    from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2Transformer2DModel
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = build_tokenizer() if tokenizer is None else tokenizer
    torch.manual_seed(seed)
    transformer = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=num_layers,
        num_single_layers=num_single_layers,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=48,
        timestep_guidance_channels=32,
        axes_dims_rope=(4, 4, 4, 4),
        guidance_embeds=False,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKLFlux2(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=64,
    )
    torch.manual_seed(seed + 2)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=28,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    text_encoder = Qwen3ForCausalLM(config)
    scheduler = FlowMatchEulerDiscreteScheduler()
    for module in (transformer, vae, text_encoder):
        module.eval()
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }


def tiny_pipeline(seed: int = 0, save_to: str | Path | None = None, num_layers: int = 2, num_single_layers: int = 2,
                  tokenizer=None):
    """Build a tiny, deterministic ``diffusers.Flux2KleinPipeline`` (CPU, float32, 64x64 images).

    With ``save_to`` the pipeline is also written there with ``save_pretrained`` plus the
    project's ``mechinterp.json`` (text length), so ``mechinterp.load(save_to)`` reloads it.
    ``tokenizer``: see ``tiny_components``.
    """
    from diffusers import Flux2KleinPipeline

    pipe = Flux2KleinPipeline(**tiny_components(seed, num_layers, num_single_layers, tokenizer), is_distilled=True)
    pipe.set_progress_bar_config(disable=True)
    ModelMeta(max_sequence_length=TINY_TEXT_LEN, default_size=64).attach(pipe)
    if save_to is not None:
        save_pipeline(pipe, save_to)
    return pipe
