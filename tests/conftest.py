"""Shared test configuration. FleetForge is installed into the environment (./forge setup:
`pip install -e .`), so tests import it like users do; nothing edits sys.path here."""
