"""The pick_and_place app (your package; diaspec writes framework/ only)."""
