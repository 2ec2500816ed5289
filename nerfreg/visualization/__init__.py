"""Visualizer backends. mmengine's ``LocalVisBackend``, ``TensorboardVisBackend`` and
``WandbVisBackend`` resolve through the parent registry; nerfreg-specific ones go here."""
