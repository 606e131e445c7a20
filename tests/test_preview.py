"""preview: the plan as a static site, checked as files and in a real browser.

The browser is Debian's chromium, headless, driven by Playwright with `executable_path` set to
it (no browser download). The site is written by the CLI, as a user runs it.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from commbox_yaml.cli import main
from commbox_yaml.commands.plan import compute_plan
from commbox_yaml.context import Context
from commbox_yaml.output import Console
from commbox_yaml.preview.site import message_renderer
from tests.projects import project
from tests.test_against import git

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECRET = "sk_live_51HxQ2bC3vT8mLrWq9ZkFd7N"

COMMBOX = """\
version: 1
streams:
  email: b9910a75a46c492c9cf46a910cdba0012
  sms: 5fd0c1
  wa: 5fd0c2
  chat: 5fd0c3
vars: [vars/common.yaml]
sensitive: [api_key]
"""

MESSAGES = """\
name: html-email
channel: email
stream: email
user_stream_provider_id: releases@acme.example
subject: "Acme {{ version }} is out"
to: [{address: ops@acme.example, name: Ops}]
message: >-
  <html><body><h1 id="title">Acme {{ version }}</h1>
  <p>Your key ends in {{ api_key[-4:] }}.</p>
  <img src="https://tracker.example/pixel.gif" alt="tracking pixel">
  <script>document.title = "SCRIPT RAN"; parent.document.title = "SCRIPT RAN";</script>
  </body></html>
---
name: oncall-sms
channel: sms
stream: sms
user_stream_provider_id: "972544444444"
for_each: people
message: "Release {{ version }} for {{ item }}: deploy at 10:00"
---
name: customer-wa
channel: whatsapp
stream: wa
user_stream_provider_id: "972544444444"
to: ["972544444444"]
template: {name: release_notice, language: en_US, params: ["{{ version }}", "Acme"]}
message: "Acme {{ version }} is out"
---
name: team-chat
channel: chat
stream: chat
user_stream_provider_id: "972544444444"
message: "Shipping {{ version }} now"
"""


def make(root: Path) -> Path:
    return project(
        root,
        MESSAGES,
        f"version: '1.4'\napi_key: {SECRET}\npeople: [ann, bob]\n",
        commbox=COMMBOX,
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = make(tmp_path / "p")
    assert main(["-C", str(root), "preview"]) == 0
    return root / ".commbox" / "preview"


# -- the files ------------------------------------------------------------------------------------


def test_every_planned_address_is_listed_with_a_page(site: Path) -> None:
    index = (site / "index.html").read_text()
    addresses = ["html-email", "oncall-sms[ann]", "oncall-sms[bob]", "customer-wa", "team-chat"]
    for address in addresses:
        assert f">{address}</a>" in index
    pages = list((site / "messages").glob("*.html"))
    assert len(pages) == len(addresses)
    for href in re.findall(r'href="(messages/[^"]+)"', index):
        assert (site / href).is_file()


def test_nothing_is_loaded_from_the_network(site: Path) -> None:
    for page in [site / "index.html", *(site / "messages").glob("*.html")]:
        text = page.read_text()
        # The email's own pixel is inside the sandboxed srcdoc (escaped), never the page's own.
        outside = re.sub(r'srcdoc="[^"]*"', "", text)
        assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", outside), page
        assert "url(http" not in outside
        assert "default-src 'none'" in html.unescape(text)


def test_a_sensitive_value_never_shows(site: Path) -> None:
    for page in [site / "index.html", *(site / "messages").glob("*.html")]:
        text = page.read_text()
        assert SECRET not in text
        assert SECRET[-4:] not in text.replace("(sensitive)", "")
    email = next((site / "messages").glob("html-email-*.html")).read_text()
    assert "(sensitive)" in email


def test_the_token_written_into_a_message_shows_as_sensitive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a sensitive variable, so no template marks it: the redactor alone hides it (and
    the pages of messages without it are written from their requests as they are)."""
    token = "tok-preview-5c1e9a7f3b"
    monkeypatch.setenv("COMMBOX_API_TOKEN", token)
    root = make(tmp_path / "p")
    messages = root / "messages" / "main.yaml"
    messages.write_text(messages.read_text().replace("now", f"now ({token.upper()})"))
    assert main(["-C", str(root), "preview"]) == 0
    pages = root / ".commbox" / "preview" / "messages"
    chat = next(pages.glob("team-chat-*.html")).read_text()
    assert "Shipping 1.4 now ((sensitive))" in chat
    for page in [pages.parent / "index.html", *pages.glob("*.html")]:
        text = page.read_text()
        assert token.upper() not in text
        assert token not in text
    assert "Release 1.4 for ann" in next(pages.glob("oncall-sms-ann-*.html")).read_text()


def test_remote_images_load_only_with_allow_remote(tmp_path: Path) -> None:
    root = make(tmp_path / "p")
    for flags, policy in (
        ([], "img-src data:;"),
        (["--allow-remote"], "img-src data: http: https:"),
    ):
        assert main(["-C", str(root), "preview", *flags]) == 0
        email = next((root / ".commbox" / "preview" / "messages").glob("html-email-*.html"))
        assert policy in html.unescape(email.read_text())


def test_sms_and_whatsapp_pages_show_segments_and_parameters(site: Path) -> None:
    sms = next((site / "messages").glob("oncall-sms-ann-*.html")).read_text()
    assert "Segments" in sms
    assert "GSM-7" in sms
    wa = next((site / "messages").glob("customer-wa-*.html")).read_text()
    assert "release_notice" in wa
    assert "en_US" in wa
    assert re.search(r"<dt>\{\{1\}\}</dt><dd>1.4</dd>", wa)


def test_a_glob_selects_messages_and_one_matching_nothing_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make(tmp_path / "p")
    assert main(["-C", str(root), "preview", "oncall-sms[*]", "--out", "site"]) == 0
    assert len(list((root / "site" / "messages").glob("*.html"))) == 2
    capsys.readouterr()
    assert main(["-C", str(root), "preview", "nothing-*"]) == 1
    assert "no planned message matches nothing-*" in capsys.readouterr().err


def test_a_site_written_over_an_older_one_is_the_site_written_afresh(tmp_path: Path) -> None:
    """Pages are written over the previous run's in place: a page that got shorter keeps none
    of its old bytes, and the page of a message that is gone is removed."""
    root = make(tmp_path / "p")
    variables = root / "vars" / "common.yaml"
    variables.write_text(variables.read_text().replace("'1.4'", "'1.4.0-with-a-long-suffix'"))
    assert main(["-C", str(root), "preview", "--out", "site"]) == 0
    variables.write_text(variables.read_text().replace("'1.4.0-with-a-long-suffix'", "'1.5'"))
    messages = root / "messages" / "main.yaml"
    messages.write_text(messages.read_text().split("---\nname: team-chat")[0])
    assert main(["-C", str(root), "preview", "--out", "site"]) == 0
    assert main(["-C", str(root), "preview", "--out", "fresh"]) == 0
    over, fresh = root / "site" / "messages", root / "fresh" / "messages"
    assert sorted(p.name for p in over.iterdir()) == sorted(p.name for p in fresh.iterdir())
    assert not list(over.glob("team-chat-*.html"))
    for page in fresh.iterdir():
        assert (over / page.name).read_bytes() == page.read_bytes(), page.name
    index = (root / "site" / "index.html").read_bytes()
    assert index == (root / "fresh" / "index.html").read_bytes()


# -- in a real browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:  # a page not shown in a browser is not tested: fail loudly
        pytest.fail("Debian's chromium is not installed: apt-get install chromium (.ci/run does)")

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def _open(browser: object, url: str) -> tuple[object, list[str]]:
    """The page at `url`, and what went wrong in it: console errors, script errors, and any
    fetch from outside this machine."""
    page = browser.new_page()  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    # A request the page's policy blocks may still be announced; one that finished was fetched.
    page.on(
        "requestfinished",
        lambda r: (
            errors.append(f"network: {r.url}")
            if r.url.startswith(("http://", "https://")) and "127.0.0.1" not in r.url
            else None
        ),
    )
    page.goto(url)
    return page, errors


def test_the_index_and_each_channel_load_without_console_errors(
    site: Path, browser: object
) -> None:
    page, errors = _open(browser, (site / "index.html").as_uri())
    assert page.locator("#messages tbody tr").count() == 5  # type: ignore[attr-defined]
    page.select_option("#filter-channel", "sms")  # type: ignore[attr-defined]
    assert page.locator("#messages tbody tr:visible").count() == 2  # type: ignore[attr-defined]
    for name in ("oncall-sms-ann", "customer-wa", "team-chat"):
        other, more = _open(browser, next((site / "messages").glob(f"{name}-*.html")).as_uri())
        assert more == [], (name, more)
        other.close()  # type: ignore[attr-defined]
    assert errors == []


def test_an_email_page_runs_no_script_toggles_its_width_and_is_photographed(
    site: Path, browser: object, tmp_path: Path
) -> None:
    url = next((site / "messages").glob("html-email-*.html")).as_uri()
    page, errors = _open(browser, url)
    frame = page.frame_locator("#email-html")  # type: ignore[attr-defined]
    assert frame.locator("#title").inner_text() == "Acme 1.4"
    assert page.title() != "SCRIPT RAN"  # type: ignore[attr-defined]
    assert frame.locator("title").count() == 0 or "SCRIPT" not in page.title()  # type: ignore[attr-defined]
    width = page.locator("#email-html").evaluate("e => e.getBoundingClientRect().width")  # type: ignore[attr-defined]
    page.click("text=Phone (375 px)")  # type: ignore[attr-defined]
    narrow = page.locator("#email-html").evaluate("e => e.getBoundingClientRect().width")  # type: ignore[attr-defined]
    assert narrow == 375
    assert width > narrow
    # The remote pixel was blocked (the frame's policy says so on the console), never fetched.
    assert not [e for e in errors if e.startswith("network:")], errors
    shot = tmp_path / "email.png"
    page.screenshot(path=str(shot), full_page=True)  # type: ignore[attr-defined]
    assert shot.stat().st_size > 10_000


def test_serve_reloads_the_page_after_a_vars_file_is_edited(
    tmp_path: Path, browser: object
) -> None:
    root = make(tmp_path / "p")
    child = subprocess.Popen(
        [sys.executable, "-m", "commbox_yaml", "-C", str(root), "preview", "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        url = ""
        while not url:
            line = child.stdout.readline()
            assert line, child.stderr.read() if child.stderr else "preview --serve ended"
            found = re.search(r"Serving (http://127\.0\.0\.1:\d+/)", line)
            url = found.group(1) if found else ""
        page, errors = _open(browser, url + "index.html")
        page.click("text=team-chat")  # type: ignore[attr-defined]
        page.wait_for_selector("text=Shipping 1.4 now")  # type: ignore[attr-defined]
        (root / "vars" / "common.yaml").write_text(
            f"version: '1.5'\napi_key: {SECRET}\npeople: [ann, bob]\n"
        )
        # The open page reloads by itself (it polls the served version), within seconds.
        page.wait_for_selector("text=Shipping 1.5 now", timeout=20_000)  # type: ignore[attr-defined]
        version = urllib.request.urlopen(url + "__version").read().decode()
        assert int(version) >= 2
        assert errors == []
    finally:
        child.terminate()
        child.communicate(timeout=10)


def test_against_a_ref_shows_old_and_new_side_by_side(tmp_path: Path) -> None:
    root = make(tmp_path / "p")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    chat = root / "messages" / "main.yaml"
    chat.write_text(
        chat.read_text().replace("Shipping {{ version }} now", "Shipping {{ version }} today")
    )
    assert main(["-C", str(root), "preview", "--against", "main"]) == 0
    site = root / ".commbox" / "preview"
    page = next((site / "messages").glob("team-chat-*.html")).read_text()
    assert '<td class="old">Shipping 1.4 <del>now</del></td>' in page
    assert '<td class="new">Shipping 1.4 <ins>today</ins></td>' in page
    index = (site / "index.html").read_text()
    assert "<th>Since main</th>" in index
    assert "<td>changed</td>" in index


def test_a_page_rendered_around_its_blocks_is_the_page_jinja_renders_whole(
    tmp_path: Path,
) -> None:
    """The site renders the page around every message once (message_renderer): each page
    must be byte for byte what Jinja renders from the whole template."""
    from commbox_yaml.preview.site import SiteOptions, _environment, _message_view

    root = make(tmp_path / "p")
    ctx = Context(root, Console())
    plan = compute_plan(ctx, argparse.Namespace(target=[], replace=[], sandbox=False), ctx.ledger())
    env = _environment()
    common = {
        "csp": "x",
        "project": "p",
        "live": True,
        "version": 3,
        "against": None,
        "root": "../",
    }
    fast = message_renderer(env, common)
    whole = env.get_template("message.html.j2")
    for message in plan.messages:
        if message.request is None:
            continue
        view = _message_view(message, None, ctx.console.redactor, SiteOptions("p"))
        assert fast(view) == whole.render(common, m=view)


def test_the_site_environment_looks_up_a_dict_as_jinja_does() -> None:
    """The site's environment finds a dict's keys without trying an attribute first: the
    same text as Jinja's own, a method's name still the method, a missing key an error."""
    import jinja2

    from commbox_yaml.preview.site import _environment

    source = "{{ d.a }} {{ d['b'] }} {{ d.items is callable }} {{ d.get('keys') }}"
    data = {"d": {"a": "<x>", "b": 2, "items": "shadowed", "keys": "k"}}
    ours, theirs = _environment(), jinja2.Environment(autoescape=True)
    assert ours.from_string(source).render(data) == theirs.from_string(source).render(data)
    assert ours.from_string(source).render(data) == "&lt;x&gt; 2 True k"
    with pytest.raises(jinja2.UndefinedError, match="no attribute 'missing'"):
        ours.from_string("{{ d.missing }}").render(data)
