"""Built-in templates shipped with commbox-yaml (loaded with importlib.resources)."""
