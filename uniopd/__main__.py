"""`python -m uniopd ...` is the `uniopd` command (what `accelerate launch -m uniopd run ...` runs)."""

import sys

from uniopd.commands.cli import main

sys.exit(main())
