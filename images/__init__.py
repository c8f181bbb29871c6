"""The image engine: resolves and merges layers, then realises them with a backend."""
