"""Exporters of trained scenes (registered in ``nerfreg.registry.EXPORTERS``)."""
