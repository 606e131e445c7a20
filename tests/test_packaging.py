"""The wheel ships every subpackage and the data files (the CI smoke test installs it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import commbox_yaml

ROOT = Path(__file__).parent.parent


def test_every_subpackage_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    package_root = Path(commbox_yaml.__file__).parent
    found = {
        ".".join(("commbox_yaml", *init.parent.relative_to(package_root).parts)).rstrip(".")
        for init in package_root.rglob("__init__.py")
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert {"commbox_yaml.schemas", "commbox_yaml.templates"} <= listed
