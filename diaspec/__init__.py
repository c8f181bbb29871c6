"""DiaSpec compiler: design a Sense/Compute/Control robot app, check it, generate its framework."""
