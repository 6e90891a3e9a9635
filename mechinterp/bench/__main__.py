"""``python -m mechinterp.bench``: the ``bench`` subcommand as a module."""

import sys

from mechinterp.bench.cli import main

sys.exit(main())
