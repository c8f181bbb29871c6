"""Your device drivers, one module each (simulation needs none)."""
