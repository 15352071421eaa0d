"""make screenshot: the example fleet's report page, as docs/report.png.

Builds a ledger of its own (the embedded Postgres, in a temporary folder) for the
apps of examples/apps.toml over four weeks of nights, all through the real CLI with
`run-nightly --date`: the wiki's uploads grow night by night, one night its before
hook fails (a failure), one night most uploads are gone (far smaller than usual: a warning),
one night host-facts' after hook fails (a warning), one night nobody ran (missed),
and a drill restores the latest backups. Then `backupctl report --html` writes the
page and headless Chromium renders it.

    python -m scripts.screenshot [--out docs/report.png] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from datetime import date, timedelta
from pathlib import Path

from scripts.chromium import screenshot
from scripts.png import read_png

REPO = Path(__file__).resolve().parent.parent
FIRST = date(2026, 11, 1)
NIGHTS = 28
MISSED = {date(2026, 11, 19)}
WIKI_FAILS = {date(2026, 11, 12)}  # its before hook fails: the backup fails
WIKI_SHRUNK = {date(2026, 11, 24)}  # most of it is gone: far smaller than usual
HOOK_FAILS = {date(2026, 11, 27)}  # host-facts' after hook exits 1


def registry_text(wiki: Path, night: date) -> str:
    """examples/apps.toml as it stood that night (the wiki's folder, a failing hook)."""
    apps = tomllib.loads((REPO / "examples" / "apps.toml").read_text())["app"]
    lines = []
    for app in apps:
        lines.append("[[app]]")
        for key, value in app.items():
            if key == "path":
                value = str(wiki)
            lines.append(f"{key} = {_toml(value)}")
        if app["id"] == "wiki-uploads" and night in WIKI_FAILS:
            hook = "import sys; sys.stderr.write('snapshot: volume wiki-uploads busy'); sys.exit(2)"
            lines.append(f"before = {_toml([sys.executable, '-c', hook])}")
        if app["id"] == "host-facts" and night in HOOK_FAILS:
            hook = "import sys; sys.stderr.write('resume: queue still paused'); sys.exit(1)"
            lines.append(f"after = {_toml([sys.executable, '-c', hook])}")
        lines.append("")
    return "\n".join(lines)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def grow_wiki(wiki: Path, night: date) -> None:
    """One more upload each night (random bytes: they do not compress away)."""
    (wiki / f"upload-{night}.bin").write_bytes(os.urandom(6000 + 150 * night.day))


def build(root: Path) -> Path:
    """The ledger and backups of four weeks of the example fleet in `root`; returns
    the configuration file."""
    wiki = root / "wiki"
    shutil.copytree(REPO / "examples" / "data" / "wiki", wiki)
    config = root / "backupctl.toml"
    config.write_text(
        f'registry = "{root / "apps.toml"}"\nstate_dir = "{root / "state"}"\n'
        f'storage = "{(root / "storage").as_uri()}"\n'
        '[run]\nmax_attempts = 1\nretry_wait = "0s"\n'
    )
    for n in range(NIGHTS):
        night = FIRST + timedelta(days=n)
        if night in MISSED:
            continue
        grow_wiki(wiki, night)
        if night in WIKI_SHRUNK:
            kept = sorted(wiki.glob("upload-*.bin"))
            for extra in kept:
                extra.rename(root / extra.name)
        (root / "apps.toml").write_text(registry_text(wiki, night))
        cli(config, "run-nightly", "--date", night.isoformat(), ok=(0, 1))
        for moved in root.glob("upload-*.bin"):
            moved.rename(wiki / moved.name)
    cli(config, "drill", ok=(0,))
    return config


def cli(config: Path, *args: str, ok: tuple[int, ...] = (0,)) -> None:
    """Run the real CLI; stop with its output when it exits otherwise than `ok`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUPCTL_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "backupctl", "--config", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode not in ok:
        raise SystemExit(
            f"backupctl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "report.png")
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="backupctl-screenshot-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        config = build(root)
        page = root / "report.html"
        cli(config, "report", "--html", str(page), "--last", str(NIGHTS))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(page, args.out, width=1000, height=1200)
    image = read_png(args.out)
    print(f"wrote {args.out}: {image.width}x{image.height}, {len(image.colours())} colours")


if __name__ == "__main__":
    main()
