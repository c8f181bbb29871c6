"""Your contexts and controllers, one module each."""
