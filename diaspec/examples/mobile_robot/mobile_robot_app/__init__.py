"""The mobile_robot app (your package; diaspec writes framework/ only)."""
