"""Observability as code: the metric catalog, the registry built from it, the HTTP endpoints."""
