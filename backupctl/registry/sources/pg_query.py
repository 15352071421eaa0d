"""Registry source: a query on a Postgres database, a platform's control plane.

`registry = "postgresql://..."` with `registry_query`: each row is an app, its
columns named like the fields of the TOML tables (a NULL is a field not given), and
a `json`/`jsonb` column `params`, when there is one, is merged in (a field given
both ways is refused). The query runs in a read-only transaction, with
`registry_timeout` as both the connect and the statement timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from backupctl.errors import RegistryError
from backupctl.redact import redact_text, redact_url
from backupctl.registry.sources import (
    Entry,
    RegistrySpec,
    Retryable,
    app_label,
    json_type,
    with_retries,
)

if TYPE_CHECKING:
    import psycopg


class PgQuery:
    """A postgresql:// registry URL and its `registry_query`."""

    def __init__(self, spec: RegistrySpec) -> None:
        from psycopg.conninfo import conninfo_to_dict

        self._spec = spec
        self.label = f"{redact_url(spec.location)} (registry_query)"
        try:
            params = conninfo_to_dict(spec.location)
        except Exception:  # its message may quote the URL, password and all
            raise RegistryError(
                [f"{self.label}: registry is not a valid PostgreSQL connection URL"]
            ) from None
        password = params.get("password")
        self._password = str(password) if password else ""
        self._options = str(params.get("options") or "")

    def stamp(self) -> Callable[[], object] | None:
        return None

    def _clean(self, exc: BaseException) -> str:
        """The driver's message: its first line, the password masked."""
        text = str(exc).strip().splitlines()
        return redact_text(text[0] if text else type(exc).__name__, [self._password])

    def read(self) -> tuple[list[Entry], list[str]]:
        names, rows = with_retries(self.label, self._query)
        if len(set(names)) != len(names):
            twice = sorted({name for name in names if names.count(name) > 1})
            raise RegistryError(
                [f"{self.label}: the query returns more than one column named {twice[0]!r}"]
            )
        entries: list[Entry] = []
        problems: list[str] = []
        for number, row in enumerate(rows, start=1):
            table, problem = _merged(dict(zip(names, row, strict=True)))
            if problem is not None:
                problems.append(f"{self.label}: {app_label(table, number)}: {problem}")
                continue
            entries.append(Entry(table, self.label, number))
        return entries, problems

    def _query(self) -> tuple[list[str], list[tuple[Any, ...]]]:
        import psycopg

        timeout = max(1, round(self._spec.timeout))
        try:
            conn = psycopg.connect(
                self._spec.location,
                # Never libpq's fallback to PGPASSWORD, maybe the ledger's (a ~/.pgpass works).
                password=self._password,
                connect_timeout=timeout,
                options=f"{self._options} -c statement_timeout={timeout * 1000}".strip(),
            )
        except psycopg.Error as exc:
            raise self._failed(exc, None) from None
        with conn:
            conn.read_only = True  # a registry is read; a query that writes is refused
            try:
                cursor = conn.execute(self._spec.query or "")
                if cursor.description is None:
                    raise RegistryError(
                        [f"{self.label}: registry_query returns no rows: it must be a SELECT"]
                    )
                names = [column.name for column in cursor.description]
                return names, cursor.fetchall()
            except psycopg.Error as exc:
                raise self._failed(exc, "registry_query failed") from None

    def _failed(self, exc: psycopg.Error, what: str | None) -> Exception:
        import psycopg

        text = f"{what}: {self._clean(exc)}" if what else self._clean(exc)
        # A connection that fails, a statement timeout, a server shutting down: maybe
        # not next time (libpq gives no SQLSTATE to tell a refused password apart).
        if isinstance(exc, psycopg.OperationalError):
            return Retryable(text)
        return RegistryError([f"{self.label}: {text}"])


def _merged(row: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A row's columns with its `params` object merged in, or why it can't be."""
    table = {name: value for name, value in row.items() if name != "params"}
    params = row.get("params")
    if params is None:
        return table, None
    if not isinstance(params, dict):
        return table, (
            f"params must be a json or jsonb object, got {json_type(params)} "
            "(a text column: cast it, params::jsonb)"
        )
    both = sorted(name for name in params if table.get(name) is not None)
    if both:
        return table, f"field {both[0]!r} is given both as a column and in params"
    return {**table, **params}, None
