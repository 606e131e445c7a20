"""The README's pictures of `commbox-yaml preview`, taken in Debian's chromium (Playwright).

    .venv/bin/python bench/screenshot.py   # docs/preview-index.png, docs/preview-sms.png

It copies examples/release-notice to a temporary folder, runs `commbox-yaml preview` there as
a user would, and photographs the index and one message's page.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed: apt-get install chromium")
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "release-notice"
        shutil.copytree(REPO / "examples" / "release-notice", project)
        subprocess.run(
            [sys.executable, "-m", "commbox_yaml", "-C", str(project), "preview"], check=True
        )
        site = project / ".commbox" / "preview"
        sms = next((site / "messages").glob("oncall-sms-*.html"))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 520})
            page.goto((site / "index.html").as_uri())
            page.screenshot(path=str(REPO / "docs" / "preview-index.png"))
            page.goto(sms.as_uri())
            page.screenshot(path=str(REPO / "docs" / "preview-sms.png"), full_page=True)
            browser.close()
    print("wrote docs/preview-index.png and docs/preview-sms.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
