"""`python -m diaspec check|generate|graph|new ...`."""
import sys

from diaspec.cli import main

sys.exit(main())
