"""Headless Chromium: a page rendered to a PNG, as a person would see it.

Debian's `chromium` package (`apt-get install chromium`); .ci/system-packages
installs it for the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

INSTALL = "apt-get install chromium"

# No first-run chores, no background traffic: the page alone is loaded.
QUIET = (
    "--headless",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--mute-audio",
)


def find_chromium() -> str | None:
    """The Chromium program, or None when it is not installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot_argv(
    program: str, page: Path, png: Path, width: int, height: int, profile: Path
) -> list[str]:
    """The argv that renders `page` at `width` x `height` CSS pixels into `png`."""
    argv = [program, *QUIET, f"--user-data-dir={profile}"]
    if os.geteuid() == 0:  # Chromium's sandbox refuses to start as root
        argv.append("--no-sandbox")
    return [
        *argv,
        f"--window-size={width},{height}",
        f"--screenshot={png}",
        page.resolve().as_uri(),
    ]


def screenshot(page: Path, png: Path, width: int = 1100, height: int = 1500) -> None:
    """Render the HTML file `page` into `png` with headless Chromium (a profile of
    its own, removed afterwards). Raises RuntimeError naming what went wrong."""
    program = find_chromium()
    if program is None:
        raise RuntimeError(f"Chromium is not installed: {INSTALL}")
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="backupctl-chromium-") as profile:
        argv = screenshot_argv(program, page, png, width, height, Path(profile))
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL
        )
    if not png.exists() or png.stat().st_size == 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"chromium wrote no screenshot (exit {proc.returncode}): {tail}")
