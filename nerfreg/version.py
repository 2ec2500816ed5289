"""Version of the nerfreg package (single source of truth for setup.py and checkpoints)."""

__version__ = '0.1.0'
