"""check's output against the Nagios plugin output grammar, over real scenarios.

The grammar (Nagios plugin API, "Plugin Output" and "Performance Data"):

    TEXT [| PERFDATA]
    LONG TEXT (any number of lines, no '|' ...)
    [... | PERFDATA continuation (the rest of the output)]

PERFDATA is space-separated items `'label'=value[UOM];[warn];[crit];[min];[max]`;
the label is quoted when it holds a space, '=' or "'" (a quote doubled inside),
value, min and max are [-0-9.]+ (value also 'U'), UOM one of s ms us % B KB MB GB TB c,
warn and crit ranges `[@][start:][end]` (start may be '~'); trailing empty fields may
be left out.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from backupctl.nagios import Perf, clean, plugin_output
from tests.conftest import Setup, wait_for
from tests.e2e.test_judged_apps import command_app, registry
from tests.e2e.test_nightly_cli import slow_app
from tests.e2e.test_operator_cli import rows_of_tonight

NIGHT = "2026-11-28"
STATES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}

_NUMBER = r"-?[0-9]+(?:\.[0-9]+)?"
_RANGE = rf"@?(?:(?:~|{_NUMBER})?:)?(?:{_NUMBER})?"
_LABEL = r"'(?:[^']|'')+'|[^\s'=|]+"
_ITEM = re.compile(
    rf"(?P<label>{_LABEL})=(?P<value>U|{_NUMBER})(?P<uom>s|ms|us|%|B|KB|MB|GB|TB|c)?"
    rf"(?:;(?P<warn>{_RANGE})(?:;(?P<crit>{_RANGE})(?:;(?P<min>{_NUMBER})?"
    rf"(?:;(?P<max>{_NUMBER})?)?)?)?)?"
)


@dataclass
class PluginOutput:
    text: str
    perfdata: dict[str, re.Match[str]]
    long_text: list[str]


def parse_perfdata(data: str) -> dict[str, re.Match[str]]:
    """Every item of a PERFDATA string, by label; fails on anything that is not one."""
    items: dict[str, re.Match[str]] = {}
    rest = data.strip(" ")
    while rest:
        match = _ITEM.match(rest)
        assert match, f"not a perfdata item at {rest!r} (in {data!r})"
        after = rest[match.end() :]
        assert after == "" or after.startswith(" "), f"junk after an item: {after!r}"
        label = match["label"]
        if label.startswith("'"):
            label = label[1:-1].replace("''", "'")
        assert label not in items, f"label {label!r} twice"
        items[label] = match
        rest = after.lstrip(" ")
    return items


def parse_plugin_output(output: str) -> PluginOutput:
    """Check `output` against the grammar; return its parts."""
    assert output.endswith("\n") and output.strip(), repr(output)
    assert "\r" not in output, "a carriage return splits a line for some readers"
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", output), "control characters"
    first, *later = output[:-1].split("\n")
    text, bar, perf = first.partition("|")
    assert text.strip(), "the status line has no text"
    perfdata = parse_perfdata(perf) if bar else {}
    long_text: list[str] = []
    for index, line in enumerate(later):
        if "|" in line:  # only as the perfdata continuation, which runs to the end
            head, _, tail = line.partition("|")
            long_text.append(head)
            for more in parse_perfdata(" ".join([tail, *later[index + 1 :]])).items():
                perfdata.setdefault(*more)
            break
        long_text.append(line)
    return PluginOutput(text.rstrip(" "), perfdata, long_text)


def nagios(result: subprocess.CompletedProcess[str]) -> PluginOutput:
    """A check run's output, checked against the grammar and its exit code."""
    stdout, code = result.stdout, result.returncode
    parsed = parse_plugin_output(stdout)
    assert code in STATES, (code, stdout)
    assert parsed.text.startswith(f"{STATES[code]}: "), (code, stdout)
    return parsed


def our_perfdata(parsed: PluginOutput) -> dict[str, str]:
    """The perfdata check writes, each item as value+UOM (the thresholds aside)."""
    assert list(parsed.perfdata) == ["apps", "succeeded", "failed", "bytes", "age"]
    return {k: m["value"] + (m["uom"] or "") for k, m in parsed.perfdata.items()}


# -- the checker itself ---------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        "OK: fine\n",
        "OK: fine | time=0.897ms;20;40;; ok=1\n",
        "DISK OK | /=382MB;15264;15269;; /var=218MB;9443;9448\n",
        "OK | 'a b'=1 'it''s'=2c;@10:20;~:5;0;100 x=U\nlong text\nmore\n",
        "OK: x\nlong text | cont=1s\nmore=2;3\n",
    ],
)
def test_the_checker_accepts_what_the_grammar_allows(output: str) -> None:
    parse_plugin_output(output)


@pytest.mark.parametrize(
    "output",
    [
        "",
        "OK: no newline at the end",
        "OK: x | a=1 | b=2\n",  # a second '|' in the perfdata
        "OK: x | a b=1\n",  # a label with a space must be quoted
        "OK: x | a=1e9\n",  # no exponents
        "OK: x | a=1parsecs\n",  # not a UOM
        "OK: x | a=1 a=2\n",
        "OK: x\r\nmore\n",
        " | a=1\n",  # no text
        "OK: gzip: stdout | broken pipe\n",  # an error's '|' read as perfdata
    ],
)
def test_the_checker_refuses_what_it_does_not(output: str) -> None:
    with pytest.raises(AssertionError):
        parse_plugin_output(output)


def test_perfdata_items_quote_labels_and_write_plain_numbers() -> None:
    items = [
        Perf("a b", 1),
        Perf("it's", 2, "c", warn="10", crit="@5:20", min="0"),
        Perf("x=y", 10**13, "B"),
        Perf("half", 0.5, "s"),
        Perf("unknown", None, "s", crit="60"),
    ]
    out = plugin_output("OK: fine", items, ["  line | with a bar", "two\nlines"]) + "\n"

    parsed = parse_plugin_output(out)

    assert list(parsed.perfdata) == ["a b", "it's", "x=y", "half", "unknown"]
    assert parsed.perfdata["x=y"]["value"] == "10000000000000"
    assert parsed.perfdata["half"]["value"] == "0.5"
    assert parsed.perfdata["unknown"]["value"] == "U"
    assert parsed.long_text == ["  line / with a bar", "two; lines"]


def test_clean_text_is_one_line_without_a_bar_and_cut_to_length() -> None:
    assert clean("a | b\r\n\tc\x00d\n") == "a / b;  c d"
    long = clean("x" * 1000)
    assert len(long) == 300 and long.endswith("...")


# -- real scenarios -------------------------------------------------------------------

# What a failing program may leave in its error: bars, line breaks, quotes, '=' and ';'.
NASTY = (
    "gzip: stdout | broken pipe\nsecond line 'single' \"double\" a=b;c;; |x|\r\n\ttabbed | last\n"
)


def nasty_app(setup: Setup, app_id: str) -> str:
    script = setup.root / f"{app_id}.py"
    script.write_text(f"import sys\nsys.stderr.write({NASTY!r})\nsys.exit(1)\n")
    return (
        f'\n[[app]]\nid = "{app_id}"\nkind = "command"\nargv = ["{sys.executable}", "{script}"]\n'
    )


def run_night(setup: Setup, *args: str) -> None:
    setup.cli("run-nightly", "--date", NIGHT, *args, BACKUPCTL_RUN_MAX_ATTEMPTS="1")


def test_ok_night_with_its_perfdata(setup: Setup) -> None:
    registry(setup, command_app("a"), command_app("b"))
    run_night(setup)

    parsed = nagios(setup.cli("check", "--date", NIGHT, "--max-age", "30h"))

    assert parsed.text == f"OK: night {NIGHT} complete, 2 apps backed up"
    perf = our_perfdata(parsed)
    sizes = setup.query("SELECT sum(size_bytes) FROM backupctl.backups")[0][0]
    assert (perf["apps"], perf["succeeded"], perf["failed"]) == ("2", "2", "0")
    assert perf["bytes"] == f"{sizes}B"
    assert re.fullmatch(r"[0-9]+s", perf["age"]) and int(perf["age"][:-1]) < 120
    assert parsed.perfdata["age"]["crit"] == str(30 * 3600)
    assert [line.split(":")[0] for line in parsed.long_text] == ["  a", "  b"]


def test_critical_with_errors_full_of_bars_newlines_and_quotes(setup: Setup) -> None:
    registry(setup, command_app("good"), nasty_app(setup, "nasty"))
    run_night(setup)

    result = setup.cli("check", "--date", NIGHT)
    parsed = nagios(result)

    assert result.returncode == 2
    assert parsed.text.startswith(f"CRITICAL: night {NIGHT}: 1 failed (nasty)")
    perf = our_perfdata(parsed)
    assert (perf["apps"], perf["succeeded"], perf["failed"], perf["age"]) == ("2", "1", "1", "U")
    (nasty,) = [line for line in parsed.long_text if line.startswith("  nasty:")]
    assert "gzip: stdout / broken pipe; second line 'single' \"double\" a=b;c;; /x/" in nasty
    assert "tabbed / last" in nasty
    assert len(parsed.long_text) == 2  # one line per app, whatever the error held
    # JSON keeps the error as it was.
    doc = json.loads(setup.cli("check", "--date", NIGHT, "--json").stdout)
    error = next(a["problem"] for a in doc["apps"] if a["app_id"] == "nasty")
    assert "stdout | broken pipe\n" in error


def test_a_history_app_with_a_nasty_error(setup: Setup) -> None:
    registry(setup, command_app("good"), nasty_app(setup, "nasty"))
    run_night(setup)
    registry(setup, command_app("good"))

    parsed = nagios(setup.cli("check", "--date", NIGHT))

    assert parsed.text.startswith("OK: ")
    assert our_perfdata(parsed)["failed"] == "0"
    assert any("not judged - " in line and "/ broken pipe" in line for line in parsed.long_text)


def test_warning_while_the_night_runs(setup: Setup) -> None:
    gate = setup.root / "gate"
    setup.write_registry(slow_app("slow", chunks=2, delay=0.01, gate=gate))
    proc = setup.start("run-nightly")  # tonight, whole-day window
    try:
        wait_for(lambda: rows_of_tonight(setup) == ["running"])
        result = setup.cli("check")
        parsed = nagios(result)
        assert result.returncode == 1, result.stdout
        assert our_perfdata(parsed)["age"] == "U"  # it never succeeded yet
    finally:
        gate.touch()
        proc.communicate(timeout=60)
    parsed = nagios(setup.cli("check"))
    assert parsed.text.startswith("OK: ")
    assert our_perfdata(parsed)["succeeded"] == "1"


def test_warning_for_an_unreadable_registry_whose_path_has_a_bar(setup: Setup) -> None:
    registry(setup, command_app("a"))
    run_night(setup)
    gone = setup.root / "apps|old.toml"

    result = setup.cli("check", "--date", NIGHT, BACKUPCTL_REGISTRY=str(gone))
    parsed = nagios(result)

    assert result.returncode == 1
    assert f"the registry can't be read ({setup.root}/apps/old.toml: no such" in parsed.text


def test_critical_for_a_missing_night_and_a_new_app(setup: Setup) -> None:
    registry(setup, command_app("a"))
    run_night(setup)
    registry(setup, command_app("a"), command_app("new"))

    for night in (NIGHT, "2026-11-27"):
        result = setup.cli("check", "--date", night)
        parsed = nagios(result)
        assert result.returncode == 2
        assert our_perfdata(parsed)["apps"] == "2"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:hunter2@127.0.0.1:1/x",
        "postgresql://u:s3cret%zz@h/x",  # malformed: a configuration error
        "postgresql://u@bad|host:1/x?application_name=a|b",
    ],
)
def test_unknown_when_the_ledger_cannot_be_read(setup: Setup, url: str) -> None:
    registry(setup, command_app("a"))

    result = setup.cli("check", BACKUPCTL_DATABASE_URL=url)
    parsed = nagios(result)

    assert result.returncode == 3, result.stdout + result.stderr
    assert parsed.perfdata == {} and parsed.long_text == []
    assert "hunter2" not in result.stdout and "s3cret" not in result.stdout
