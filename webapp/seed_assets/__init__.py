"""Assets the demo seed makes for itself (``webapp/seed.py``): drawn listing photos."""
