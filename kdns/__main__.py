"""``python -m kdns``: the same as the ``kdns`` command."""

from __future__ import annotations

import sys

from kdns.cli import main

sys.exit(main())
