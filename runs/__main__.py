"""``python -m runs list|status ID|cancel ID|run ID|delete ID``: the background jobs from a shell."""

import sys

from runs import main

sys.exit(main())
