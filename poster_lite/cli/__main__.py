"""`python -m poster_lite.cli ...` (torchrun needs a module to run: `-m poster_lite.cli train ...`)."""
import sys

from . import main

sys.exit(main())
