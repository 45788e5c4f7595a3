from __future__ import annotations

import sys

from ouro_obs.cli import main

sys.exit(main())
