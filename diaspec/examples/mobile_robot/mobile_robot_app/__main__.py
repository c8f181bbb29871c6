"""Run the mobile_robot app: python -m mobile_robot_app [--hardware] [--trace] [--seconds N]."""
import sys

from .framework import main

sys.exit(main(__package__))
