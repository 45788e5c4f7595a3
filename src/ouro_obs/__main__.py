"""``python -m ouro_obs``: the ``ouro-obs`` command."""

from __future__ import annotations

import sys

from ouro_obs.cli import main

__all__: list[str] = []

sys.exit(main())
