"""Stimuli: the image checks (images.py) and the stimulus-set ZIP reader (manifest.py)."""
