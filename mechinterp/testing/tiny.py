"""The tiny FLUX.2-klein pipeline for tests (built by :mod:`mechinterp.engine.tiny`; saved by the engine's
:func:`~mechinterp.engine.model.save_pipeline`): the test helpers import the library, never the reverse."""

from mechinterp.engine.model import save_pipeline
from mechinterp.engine.tiny import QWEN_CHAT_TEMPLATE, TINY_TEXT_LEN, build_tokenizer, tiny_components, tiny_pipeline

__all__ = ["QWEN_CHAT_TEMPLATE", "TINY_TEXT_LEN", "build_tokenizer", "save_pipeline", "tiny_components", "tiny_pipeline"]
