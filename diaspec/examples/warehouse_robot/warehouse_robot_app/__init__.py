"""The warehouse_robot app (your package; diaspec writes framework/ only)."""
