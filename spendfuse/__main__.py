"""``python -m spendfuse``: the same command line as the ``spendfuse`` script."""

import sys

from spendfuse.cli.main import main

sys.exit(main())
