"""Nagios plugin output: a status line with performance data, then long text.

Nagios reads everything after the first `|` of the status line as performance data,
and a `|` in a later line starts more of it; so no text of ours (an error a backup
left, a path, a message) may bring one in, nor a line break that splits a line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from backupctl.wording import one_line

MAX_TEXT = 300  # characters of an error in a line (a stderr tail may be 4000)
MAX_LINE = 1000


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """`text` made safe for one line of plugin output: on one line, every `|` a `/`,
    cut to `limit` characters."""
    text = one_line(text).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


@dataclass(frozen=True)
class Perf:
    """One performance data item: `label=value[uom];[warn];[crit];[min];[max]`."""

    label: str
    value: int | float | None  # None: could not be determined ("U")
    uom: str = ""
    warn: str = ""
    crit: str = ""
    min: str = ""
    max: str = ""

    def __str__(self) -> str:
        label = self.label
        if re.search(r"[\s=']", label):
            label = "'" + label.replace("'", "''") + "'"
        value = "U" if self.value is None else _number(self.value) + self.uom
        item = ";".join([f"{label}={value}", self.warn, self.crit, self.min, self.max])
        return item.rstrip(";")


def _number(value: float) -> str:
    # Plain digits only: the grammar has no exponent (1e+09), no inf or nan.
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def plugin_output(status: str, perfdata: Sequence[Perf], long_text: Sequence[str]) -> str:
    """The whole output: `STATUS | PERFDATA` on the first line, then one line per
    entry of `long_text`; each one cleaned, whatever its parts were."""
    first = clean(status, MAX_LINE)
    if perfdata:
        first += " | " + " ".join(str(item) for item in perfdata)
    return "\n".join([first, *(clean(line, MAX_LINE) for line in long_text)])
