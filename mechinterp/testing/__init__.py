"""Test beds for the engine and judges: tiny real pipelines, the real Qwen3 tokenizer, loopback fakes."""

from mechinterp.testing.qwen3 import qwen3_tokenizer
from mechinterp.testing.tiny import tiny_pipeline

__all__ = ["qwen3_tokenizer", "tiny_pipeline"]
