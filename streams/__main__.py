"""`python -m streams …` runs the CLI."""

import sys

from streams.cli import main

sys.exit(main())
