"""Performance benchmarks of the intervention engine and the GPU cost of a reproduction (issue 9).

``python -m mechinterp.bench`` or ``mechinterp bench``: see ``mechinterp.bench.cli``.
"""
