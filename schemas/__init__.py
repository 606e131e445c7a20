"""JSON Schemas shipped with commbox-yaml (loaded with importlib.resources)."""
