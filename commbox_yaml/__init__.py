"""commbox-yaml: send CommBox messages from YAML files kept in git, once."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
