"""Test beds for the engine and judges: tiny real pipelines and loopback fakes."""

from mechinterp.testing.tiny import tiny_pipeline

__all__ = ["tiny_pipeline"]
