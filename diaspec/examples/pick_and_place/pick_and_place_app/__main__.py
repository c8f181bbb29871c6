"""Run the pick_and_place app: python -m pick_and_place_app [--hardware] [--trace] [--seconds N]."""
import sys

from .framework import main

sys.exit(main(__package__))
