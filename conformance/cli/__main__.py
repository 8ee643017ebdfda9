"""``python -m sephb.conformance.cli``: the ``sephb`` command."""

import sys

from sephb.conformance.cli import main

sys.exit(main())
