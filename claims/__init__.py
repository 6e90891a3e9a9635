"""The paper's claims suite: one test module per paper table or claim family.

In a checkout this folder is ``claims/`` (``pytest claims/ -m color``); the wheel ships the
same modules as the package ``mechinterp.claims.paper`` (``pytest --pyargs
mechinterp.claims.paper -m color``), so the paper's claims run from an installed mechinterp
too. The modules hold no machinery: the pytest plugin parametrizes each test over the
registry's claims and runs, judges and decides them.
"""
