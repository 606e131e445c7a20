from __future__ import annotations

from commbox_yaml.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
