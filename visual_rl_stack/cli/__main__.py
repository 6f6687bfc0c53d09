"""``python -m visual_rl_stack.cli``: the ``vrl`` command."""

import sys

from .main import main

sys.exit(main())
