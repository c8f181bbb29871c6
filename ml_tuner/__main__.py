"""`python -m ml_tuner ...`: the same as the `ml-tuner` command."""
import sys

from ml_tuner.cli import main

sys.exit(main())
