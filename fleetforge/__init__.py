"""Shared plumbing for FleetForge's packages: errors, external tools, paths, progress."""
