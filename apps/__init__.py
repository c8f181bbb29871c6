"""Robot applications: SCons builds for a target (plain or size-tuned), app layers, app updates."""
