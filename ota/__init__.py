"""Over-the-air updates over SSH: signed bundles, delta transfer, A/B slots, trial boot, rollback."""
