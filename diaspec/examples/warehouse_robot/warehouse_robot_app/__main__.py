"""Run the warehouse_robot app: python -m warehouse_robot_app [--hardware] [--trace] [--seconds N]."""
import sys

from .framework import main

sys.exit(main(__package__))
