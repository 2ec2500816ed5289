"""Command-line entry points (``nerfreg-train``, ``nerfreg-test``)."""
