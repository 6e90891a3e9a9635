"""Test beds for the engine and judges: tiny real pipelines and loopback fakes."""
