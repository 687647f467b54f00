"""Headless Chromium for the web UI's tests: the distribution's browser (Debian's
chromium, which `make test` installs when missing), driven by Playwright.

Playwright's own browser download is never used: `executable_path` names the system's
binary (CLOUDCHAIN_CHROMIUM, else /usr/bin/chromium or chromium on the PATH). Each
launch gets a new empty profile (Playwright makes one per launch) and the flags this
machine's closed network needs: without the background-networking ones, Chromium's
calls home are refused, many at a time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root in a container
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
)
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def chromium_path() -> str | None:
    """The system's Chromium, or None if there is none."""
    named = os.environ.get("CLOUDCHAIN_CHROMIUM")
    if named and Path(named).exists():
        return named
    for candidate in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


@contextmanager
def chromium() -> Iterator[Browser]:
    path = chromium_path()
    assert path is not None, "no Chromium: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=list(CHROMIUM_FLAGS))
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class WatchedPage:
    """A page and what it reported: console errors and warnings, uncaught exceptions,
    failed requests, dialogs (an alert a payload ran), and how many times it loaded (a
    live update must not reload)."""

    page: Page
    problems: list[str] = field(default_factory=list)
    loads: int = 0

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")


@contextmanager
def watched_page(browser: Browser, viewport: dict[str, int] = DESKTOP) -> Iterator[WatchedPage]:
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    watched = WatchedPage(page)
    page.on("console", watched._console)
    page.on("pageerror", lambda error: watched.problems.append(f"uncaught: {error}"))
    page.on("requestfailed", lambda r: watched.problems.append(f"request failed: {r.url}"))
    page.on("load", lambda _: setattr(watched, "loads", watched.loads + 1))
    page.on("dialog", lambda dialog: watched.problems.append(f"dialog: {dialog.message}"))
    try:
        yield watched
    finally:
        context.close()
