"""Ledger operations: named queries run through the connector, which retries them
across a database restart and turns driver errors into LedgerUnavailable."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from backupctl.ledger.connector import Connector, connect_once, driver_errors
from backupctl.ledger.queries import migrations, queries
from backupctl.manifest import Manifest

log = logging.getLogger(__name__)

# A plan that adds this many rows refreshes the table's statistics at once, while
# they are of a ledger under ANALYZE_SHARE times as large.
ANALYZE_AFTER = 10_000
ANALYZE_SHARE = 10

# Taken (per transaction) while migrating, so concurrent first runs don't race.
MIGRATION_LOCK = 0x6261636B7570  # "backup"


@dataclass(frozen=True)
class Claim:
    """A backup this process now holds under a lease, for attempt number `attempt`."""

    id: int
    app_id: str
    run_date: date
    attempt: int
    trigger: str
    lease_left: float | None = None  # seconds of lease left when the claim was seen


@dataclass(frozen=True)
class NightSummary:
    status: str
    planned: int
    succeeded: int
    failed: int
    skipped: int = 0


@dataclass(frozen=True)
class EarlierNight:
    """The latest earlier planned night, against today's registry."""

    run_date: date
    planned: int
    missing: int
    missing_examples: list[str]


def _tag() -> str:
    # Names one claim statement, so that running it again returns what it claimed.
    return secrets.token_hex(8)


class Ledger:
    """Ledger queries and compare-and-set transitions, each safe to retry."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self._q = queries()

    @property
    def connector(self) -> Connector:
        return self._connector

    def another(self, outage: float, io_timeout: float) -> Ledger:
        """A ledger on a connection of its own (the heartbeat's: a statement waiting
        on a row lock or a busy pool must never hold up lease renewals)."""
        c = self._connector
        return Ledger(Connector(c.url, c.schema, size=1, outage=outage, io_timeout=io_timeout))

    def close(self) -> None:
        self._connector.close()

    def _claim_rows(self, name: str, trigger: str, **params: Any) -> list[dict[str, Any]]:
        """Run a claim statement; if it must run again (the connection was lost before
        its answer came), first look for what its first run took."""
        params = {**params, "tag": _tag(), "trigger": trigger}
        query, again = self._q[name].encode(), self._q["claimed_by_tag"].encode()
        tries = 0

        def work(conn: psycopg.Connection[dict[str, Any]]) -> list[dict[str, Any]]:
            nonlocal tries
            tries += 1
            with conn.cursor() as cur:
                if tries > 1:
                    cur.execute(again, params)
                    if found := cur.fetchall():
                        return found
                cur.execute(query, params)
                return cur.fetchall()

        return self._connector.run(work)

    def _rows(self, name: str, **params: Any) -> list[dict[str, Any]]:
        query = self._q[name].encode()

        def work(conn: psycopg.Connection[dict[str, Any]]) -> list[dict[str, Any]]:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []

        return self._connector.run(work)

    def _rows_of_recent_nights(self, name: str, **params: Any) -> list[dict[str, Any]]:
        """_rows for a read of a range of nights, planned for how a ledger lies on disk
        (see index_friendly_plan in queries.sql)."""
        tune, query = self._q["index_friendly_plan"].encode(), self._q[name].encode()

        def work(conn: psycopg.Connection[dict[str, Any]]) -> list[dict[str, Any]]:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(tune)
                cur.execute(query, params)
                return cur.fetchall()

        return self._connector.run(work)

    # -- nights -----------------------------------------------------------------

    def now(self) -> datetime:
        """The database's clock, which leases and deadlines are measured against."""
        value = self._rows("db_now")[0]["now"]
        assert isinstance(value, datetime)
        return value

    def plan(
        self, run_date: date, app_ids: Sequence[str], claim_until: datetime | None = None
    ) -> list[Claim]:
        """Record the night (and any missed before it) and one pending row per app;
        skip the rows of apps no longer listed. New backups of the night may start
        until `claim_until` (None: no limit). Returns the rows skipped (whatever an
        attempt of theirs left in storage is for the caller to remove)."""
        # Sorted: two hosts planning the same night lock rows in the same order.
        params = {"run_date": run_date, "app_ids": sorted(app_ids), "claim_until": claim_until}

        def work(conn: psycopg.Connection[dict[str, Any]]) -> tuple[int, list[Claim]]:
            with conn.transaction(), conn.cursor() as cur:
                for name in ("mark_missed_nights", "close_earlier_nights", "open_night"):
                    cur.execute(self._q[name].encode(), params)
                cur.execute(self._q["plan_backups"].encode(), params)
                added = cur.rowcount
                # Every listed app has its row now: more rows means some apps left.
                cur.execute(self._q["night_size"].encode(), params)
                row = cur.fetchone()
                if row is None or row["n"] <= len(app_ids):
                    return added, []
                return added, self._skip_removed(cur, run_date, app_ids)

        added, skipped = self._connector.run(work)
        if added >= ANALYZE_AFTER and self._statistics_behind(added):
            # Until autovacuum gets to it the planner believes the night is empty and
            # picks plans that re-read the whole night for each batch.
            self._connector.run(lambda conn: conn.execute("ANALYZE backups"))
        return skipped

    def _statistics_behind(self, added: int) -> bool:
        """Whether `added` rows are news to the planner: a young ledger's statistics
        know too few nights to expect a new one as large as the last. With a history
        they do (rows per night, from the nights they know), and ANALYZE, which
        samples the whole table, would cost more than the plan itself."""
        known = int(self._rows("backups_rows_known")[0]["n"])
        return known < 0 or added * ANALYZE_SHARE >= known

    def skip_removed(self, run_date: date, app_ids: Sequence[str]) -> list[Claim]:
        """Skip the night's unfinished rows of apps not in `app_ids` (a retry's view of
        the registry); return them."""

        def work(conn: psycopg.Connection[dict[str, Any]]) -> list[Claim]:
            with conn.transaction(), conn.cursor() as cur:
                return self._skip_removed(cur, run_date, app_ids)

        return self._connector.run(work)

    def _skip_removed(
        self, cur: psycopg.Cursor[dict[str, Any]], run_date: date, app_ids: Sequence[str]
    ) -> list[Claim]:
        cur.execute(self._q["unfinished_rows"].encode(), {"run_date": run_date})
        listed = set(app_ids)
        gone = sorted(row["id"] for row in cur.fetchall() if row["app_id"] not in listed)
        if not gone:
            return []
        cur.execute(self._q["skip_removed"].encode(), {"ids": gone})
        return [_claim(row) for row in cur.fetchall()]

    def earlier_night(self, run_date: date, app_ids: Sequence[str]) -> EarlierNight | None:
        """The latest night before `run_date` that planned backups, compared with
        `app_ids`: what the registry guard needs."""
        rows = self._rows("latest_planned_before", run_date=run_date)
        if not rows:
            return None
        listed = set(app_ids)
        missing = sorted(row["app_id"] for row in rows if row["app_id"] not in listed)
        return EarlierNight(rows[0]["run_date"], len(rows), len(missing), missing[:5])

    def close_night(self, run_date: date) -> NightSummary | None:
        """Recount the night from its rows and mark it complete, incomplete or running."""
        self._rows("close_night", run_date=run_date)
        night = self.get_night(run_date)
        if night is None:
            return None
        return NightSummary(
            *(night[k] for k in ("status", "planned", "succeeded", "failed", "skipped"))
        )

    def get_night(self, run_date: date) -> dict[str, Any] | None:
        rows = self._rows("get_night", run_date=run_date)
        return rows[0] if rows else None

    def latest_night(self) -> date | None:
        value = self._rows("latest_night")[0]["run_date"]
        return value if isinstance(value, date) else None

    def night_range(self) -> tuple[date, date] | None:
        """The first and last night recorded (missed ones included); None if none is."""
        row = self._rows("night_range")[0]
        if not isinstance(row["first"], date) or not isinstance(row["last"], date):
            return None
        return row["first"], row["last"]

    def night_apps(self, run_date: date, limit: int) -> tuple[int, list[str]]:
        """How many apps have a nightly backup in the night, and the first `limit` ids."""
        row = self._rows("night_apps", run_date=run_date, limit=limit)[0]
        return int(row["apps"]), [str(a) for a in row["sample"]]

    def night_statuses(self, run_date: date, app_id: str | None = None) -> dict[str, int]:
        """The night's nightly backups (or one app's) counted by status."""
        rows = self._rows("night_statuses", run_date=run_date, app_id=app_id)
        return {str(row["status"]): int(row["n"]) for row in rows}

    def night_backups(self, run_date: date) -> list[dict[str, Any]]:
        return self._rows("night_backups", run_date=run_date)

    def night_pending(
        self, run_date: date, max_attempts: int, app_id: str | None = None
    ) -> dict[str, Any]:
        """Rows of the night (or of one app) held elsewhere or waiting for a retry."""
        return self._rows(
            "night_pending", run_date=run_date, max_attempts=max_attempts, app_id=app_id
        )[0]

    def nightly_artifact(self, app_id: str, run_date: date) -> dict[str, Any] | None:
        """The nightly backup row of an app for a night, whatever its status."""
        rows = self._rows("nightly_artifact", app_id=app_id, run_date=run_date)
        return rows[0] if rows else None

    def latest_nightly_succeeded(self, app_id: str) -> dict[str, Any] | None:
        """The app's succeeded nightly backup of the latest night that has one."""
        rows = self._rows("latest_nightly_succeeded", app_id=app_id)
        return rows[0] if rows else None

    def backup_by_id(self, backup_id: int) -> dict[str, Any] | None:
        rows = self._rows("backup_by_id", id=backup_id)
        return rows[0] if rows else None

    def list_nights(self, last: int) -> list[dict[str, Any]]:
        """The latest `last` nights, newest first, with counts by status and bytes."""
        return self._rows("list_nights", last=last)

    def grid_nights(self, last: int) -> list[dict[str, Any]]:
        """The latest `last` nights recorded (missed ones too), newest first, with
        how many drills each has (and how many failed)."""
        return self._rows("grid_nights", last=last)

    def grid_cells(self, first: date, last: date, *, notes: bool) -> list[dict[str, Any]]:
        """The nightly backups of the nights from `first` to `last`: status, size,
        duration, whether it carries a warning and, with `notes`, its error or
        warnings cut to NOTE_CHARS (as stored: redact before showing)."""
        from backupctl.grid import NOTE_CHARS

        return self._rows_of_recent_nights(
            "grid_cells", first=first, last=last, notes=notes, note_chars=NOTE_CHARS
        )

    def grid_states(self, first: date, last: date) -> list[dict[str, Any]]:
        """The nightly backups of the nights from `first` to `last`: only their
        status and whether they carry a warning (what the terminal's grid shows)."""
        return self._rows_of_recent_nights("grid_states", first=first, last=last)

    def grid_drills(
        self, first: date, last: date, app_ids: Sequence[str] | None, limit: int
    ) -> list[dict[str, Any]]:
        """Up to `limit` of the latest drills of the nights from `first` to `last`
        (of `app_ids` only, unless None), failed ones first."""
        from backupctl.grid import NOTE_CHARS

        return self._rows(
            "grid_drills",
            first=first,
            last=last,
            app_ids=list(app_ids) if app_ids is not None else None,
            limit=limit,
            note_chars=NOTE_CHARS,
        )

    def last_successes(self, app_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per app id, its latest succeeded backup (nightly or ad hoc)."""
        rows = self._rows("last_successes", app_ids=list(app_ids))
        return {row["app_id"]: row for row in rows}

    def grant_retry(self, run_date: date, app_id: str | None) -> list[str]:
        """Give the night's failed backups (or one app's) another round of attempts."""
        return [
            row["app_id"] for row in self._rows("grant_retry", run_date=run_date, app_id=app_id)
        ]

    def reap_adhoc(self, app_id: str) -> list[Claim]:
        """Fail the app's ad-hoc backups whose process died; return them for clean-up."""
        return [_claim(row) for row in self._rows("reap_adhoc", app_id=app_id)]

    def start_adhoc(self, app_id: str, run_date: date, owner: str, lease: float) -> Claim:
        """Record an ad-hoc backup of `app_id`, already claimed by `owner`."""
        rows = self._claim_rows(
            "start_adhoc", "adhoc", app_id=app_id, run_date=run_date, owner=owner, lease=lease
        )
        return _claim(rows[0])

    def succeeded_backups(self, run_date: date | None, app_id: str | None) -> list[dict[str, Any]]:
        """Succeeded backups (nightly and ad hoc) of a night or of all nights."""
        return self._rows("succeeded_backups", run_date=run_date, app_id=app_id)

    def nightly_succeeded_by_app(self) -> list[dict[str, Any]]:
        return self._rows("nightly_succeeded_by_app")

    def backups_by_ids(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """id -> app_id, status and artifact_uri, for the rows that exist."""
        return {row["id"]: row for row in self._rows("backups_by_ids", ids=sorted(set(ids)))}

    def mark_pruned(self, backup_ids: Iterable[int]) -> set[int]:
        """succeeded -> pruned, in one statement, before their artifacts are deleted;
        return the ids now pruned (those another process changed meanwhile are not)."""
        rows = self._rows("mark_pruned", ids=sorted(set(backup_ids)))
        return {int(row["id"]) for row in rows}

    # -- claims and leases --------------------------------------------------------

    def claim_nightly(
        self,
        run_date: date,
        owner: str,
        limit: int,
        lease: float,
        max_attempts: int,
        app_id: str | None = None,
    ) -> list[Claim]:
        """Take up to `limit` claimable backups of the night (or of one app's) under a
        lease for `owner`."""
        rows = self._claim_rows(
            "claim_nightly",
            "nightly",
            run_date=run_date,
            owner=owner,
            limit=limit,
            lease=lease,
            max_attempts=max_attempts,
            app_id=app_id,
        )
        return [_claim(row) for row in rows]

    def claim_backup(
        self,
        backup_id: int,
        app_id: str,
        run_date: date,
        owner: str,
        lease: float,
        max_attempts: int,
    ) -> Claim | None:
        """Claim the backup a queue message names, if it may run now and the message matches."""
        rows = self._claim_rows(
            "claim_backup",
            "nightly",
            id=backup_id,
            app_id=app_id,
            run_date=run_date,
            owner=owner,
            lease=lease,
            max_attempts=max_attempts,
        )
        return _claim(rows[0]) if rows else None

    def unsend(self, backup_id: int) -> None:
        """enqueued -> pending: its message is gone, a rerun must send it again."""
        self._rows("unsend", id=backup_id)

    def skip_claimed(self, claim: Claim, owner: str, reason: str) -> bool:
        """running -> skipped, for a row this process claimed whose app is gone."""
        rows = self._rows(
            "skip_claimed", id=claim.id, owner=owner, attempt=claim.attempt, reason=reason
        )
        return bool(rows)

    def enqueue(
        self,
        run_date: date,
        limit: int,
        max_attempts: int,
        resend_after: float,
        send: Callable[[list[dict[str, Any]]], set[int]],
        after_id: int = 0,
        app_id: str | None = None,
    ) -> tuple[int, int, int]:
        """Lock up to `limit` rows (ids above `after_id`) that need sending, `send` them,
        and mark the ids it returns as enqueued, in one transaction: if `send` raises,
        nothing changes. Returns (rows locked, rows marked, the last id locked)."""
        params = {
            "run_date": run_date,
            "limit": limit,
            "max_attempts": max_attempts,
            "resend_after": resend_after,
            "after_id": after_id,
            "app_id": app_id,
        }

        # Run again after a lost connection, it sends again: a duplicate delivery,
        # which workers are built for.
        def work(conn: psycopg.Connection[dict[str, Any]]) -> tuple[int, int, int]:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(self._q["lock_for_enqueue"].encode(), params)
                rows = cur.fetchall()
                if not rows:
                    return 0, 0, after_id
                sent = send(rows)
                if sent:
                    cur.execute(self._q["mark_enqueued"].encode(), {"ids": sorted(sent)})
                return len(rows), len(sent), rows[-1]["id"]

        return self._connector.run(work)

    def night_has_open_rows(self, run_date: date) -> bool:
        return bool(self._rows("night_has_open_rows", run_date=run_date)[0]["open"])

    def reap_expired(self, run_date: date, max_attempts: int) -> list[Claim]:
        """Fail rows whose holder died on the last attempt; return them for clean-up."""
        rows = self._rows("reap_expired", run_date=run_date, max_attempts=max_attempts)
        return [_claim(row) for row in rows]

    def heartbeat(self, owner: str, ids: Sequence[int], lease: float) -> set[tuple[int, int]]:
        """Extend the leases `owner` still holds; return the (id, attempt) pairs kept."""
        if not ids:
            return set()
        rows = self._rows("heartbeat", owner=owner, ids=list(ids), lease=lease)
        return {(row["id"], row["attempts"]) for row in rows}

    def finish_succeeded(
        self,
        claim: Claim,
        owner: str,
        artifact_uri: str,
        size_bytes: int,
        sha256: str,
        written_by: str | None = None,
        manifest: Manifest | None = None,
        warning: str | None = None,
        hook_warning: str | None = None,
    ) -> bool:
        """Mark the backup succeeded if `owner` still holds this attempt (fencing),
        with the program that wrote it (`written_by`, e.g. "pg_dump 16.2"; None for
        kinds that record none), what it holds (`manifest`) and what looks wrong
        about it (`warning`, e.g. far smaller than usual; `hook_warning`: its after
        hook failed). True also when this very
        finish had committed already (an answer lost with the connection): the
        caller must never delete an artifact the row points to."""
        rows = self._rows(
            "finish_succeeded",
            id=claim.id,
            owner=owner,
            attempt=claim.attempt,
            artifact_uri=artifact_uri,
            size_bytes=size_bytes,
            sha256=sha256,
            written_by=written_by,
            manifest=manifest.dumps() if manifest is not None else None,
            warning=warning,
            hook_warning=hook_warning[:4000] if hook_warning else None,
        )
        return bool(rows)

    def finish_failed(
        self,
        claim: Claim,
        owner: str,
        error: str,
        retry_wait: float,
        retry_wait_max: float,
        *,
        final_after: int | None = None,
        hook_warning: str | None = None,
    ) -> bool:
        """Mark the attempt failed if `owner` still holds it; schedule the retry's
        earliest time (retry_wait doubling per attempt, at most retry_wait_max).
        `final_after` (max_attempts): no more attempts in this round, as if it was
        the last; an operator's `retry` still grants a new round. `hook_warning`:
        the app's after hook failed too."""
        rows = self._rows(
            "finish_failed",
            id=claim.id,
            owner=owner,
            attempt=claim.attempt,
            error=error[:4000],
            retry_wait=retry_wait,
            retry_wait_max=retry_wait_max,
            final=final_after is not None,
            max_attempts=final_after or 0,
            hook_warning=hook_warning[:4000] if hook_warning else None,
        )
        return bool(rows)

    def usual_sizes(self, app_id: str, run_date: date, limit: int) -> list[int]:
        """The stored sizes of the app's latest `limit` succeeded nightly backups
        before `run_date` (pruned ones included), newest first."""
        rows = self._rows("usual_sizes", app_id=app_id, run_date=run_date, limit=limit)
        return [int(row["size_bytes"]) for row in rows]

    def manifest(self, backup_id: int) -> Manifest | None:
        """What a backup was found to hold when it succeeded; None for a backup
        without one (made before manifests, or not succeeded)."""
        rows = self._rows("backup_manifest", id=backup_id)
        return Manifest.from_json(rows[0]["manifest"]) if rows else None

    # -- drills -------------------------------------------------------------------

    def drillable_backup(self, app_id: str, run_date: date | None) -> dict[str, Any] | None:
        """The app's succeeded nightly backup of `run_date` (None: of the latest night
        that has one), with its manifest (jsonb, None for older rows)."""
        rows = self._rows("drillable_backup", app_id=app_id, run_date=run_date)
        return rows[0] if rows else None

    def record_drill(
        self,
        *,
        app_id: str,
        backup_id: int,
        run_date: date,
        started_at: datetime,
        duration_s: float,
        passed: bool,
        restored: dict[str, Any],
        error: str | None,
    ) -> int:
        """Record a finished drill (one row, written once); return its id."""
        import json

        rows = self._rows(
            "record_drill",
            app_id=app_id,
            backup_id=backup_id,
            run_date=run_date,
            started_at=started_at,
            duration_s=duration_s,
            status="passed" if passed else "failed",
            restored=json.dumps(restored, separators=(",", ":")),
            error=error[:4000] if error is not None else None,
        )
        return int(rows[0]["id"])

    def latest_drills(self, app_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per app id: its latest drill (last_status, last_started_at, ...; None
        when never drilled) and when its latest passed drill finished."""
        rows = self._rows("latest_drills", app_ids=sorted(set(app_ids)))
        return {str(row["app_id"]): row for row in rows}

    def night_drills(self, run_date: date) -> list[dict[str, Any]]:
        """The drills of a night's backups, per app newest first."""
        return self._rows("night_drills", run_date=run_date)

    def release(self, claim: Claim, owner: str, status: str = "pending") -> bool:
        """Give back a claim cut short by shutdown, so it costs no attempt."""
        rows = self._rows("release", id=claim.id, owner=owner, attempt=claim.attempt, status=status)
        return bool(rows)

    # -- notifications ----------------------------------------------------------------

    def claim_notification(
        self, run_date: date, event: str, url_hash: str, owner: str, stale_after: float
    ) -> bool:
        """Take the right to send `event` of `run_date` to the URL hashed `url_hash`:
        True if this owner may send it now (nobody did, the last send failed, or its
        sender has held it longer than `stale_after` seconds)."""
        rows = self._rows(
            "claim_notification",
            run_date=run_date,
            event=event,
            url_hash=url_hash,
            owner=owner,
            stale_after=stale_after,
        )
        return bool(rows)

    def finish_notification(
        self,
        run_date: date,
        event: str,
        url_hash: str,
        owner: str,
        *,
        sent: bool,
        error: str | None = None,
    ) -> bool:
        """Mark a claimed notification sent, or failed (so the next sender retries it).
        False if the claim was taken over meanwhile."""
        rows = self._rows(
            "finish_notification",
            run_date=run_date,
            event=event,
            url_hash=url_hash,
            owner=owner,
            status="sent" if sent else "failed",
            error=None if sent else (error or "failed")[:1000],
        )
        return bool(rows)

    def night_before(self, run_date: date) -> dict[str, Any] | None:
        """The latest recorded night before `run_date`, with `bad`: it failed or was missed."""
        rows = self._rows("night_before", run_date=run_date)
        return rows[0] if rows else None

    def night_notifications(self, run_date: date) -> list[dict[str, Any]]:
        """The notifications claimed for a night, by event."""
        return self._rows("night_notifications", run_date=run_date)

    # -- audit ----------------------------------------------------------------------

    def start_invocation(self, command: str, args: str, run_date: date | None) -> int:
        row = self._rows(
            "start_invocation",
            command=command,
            args=args,
            host=socket.gethostname(),
            pid=os.getpid(),
            os_user=_os_user(),
            run_date=run_date,
        )[0]
        return int(row["id"])

    def finish_invocation(self, invocation_id: int, exit_code: int) -> None:
        self._rows("finish_invocation", id=invocation_id, exit_code=exit_code)


def _claim(row: dict[str, Any]) -> Claim:
    return Claim(
        id=row["id"],
        app_id=row["app_id"],
        run_date=row["run_date"],
        attempt=row["attempts"],
        trigger=row["trigger"],
        lease_left=row.get("lease_left"),
    )


def _os_user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, ImportError):
        return str(os.getuid())


def migrate(conn: psycopg.Connection[Any], schema: str) -> list[int]:
    """Apply pending migrations under an advisory lock; return the versions applied."""
    wanted = migrations()
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
        # CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema
        # is there: a role given only its own schema must still get in.
        cur.execute(
            "SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = %s",
            [schema],
        )
        found = cur.fetchone()
        if found is None:
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        elif not found[0]:
            # Else the search path silently skips it and the first statement fails
            # with "no schema has been selected".
            raise psycopg.errors.InsufficientPrivilege(
                f"permission denied for schema {schema}: the role needs USAGE on it "
                "(and privileges on its tables)"
            )
        cur.execute("SELECT to_regclass('schema_migrations')")
        if cur.fetchone() == (None,):  # (a role with no CREATE needs none once it exists)
            cur.execute(
                "CREATE TABLE schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        applied = {row[0] for row in cur.execute("SELECT version FROM schema_migrations")}
        done = []
        for version, name, text in wanted:
            if version in applied:
                continue
            log.info("applying ledger migration %04d_%s", version, name)
            cur.execute(text.encode())
            cur.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", [version, name]
            )
            done.append(version)
    return done


def connect_ledger(
    url: str, schema: str, *, upgrade: bool = True, size: int = 4, outage: float = 0.0
) -> Ledger:
    """Connect to the ledger at `url`, bring its schema up to date, and return it.

    The first connection is made at once, so a wrong URL or a server that is away is
    one clear error now; later statements go through a pool of up to `size`
    connections and are retried for `outage` seconds across a restart."""
    conn = connect_once(url, schema)
    try:
        if upgrade:
            with driver_errors(url):
                migrate(conn, schema)
    finally:
        conn.close()
    return Ledger(Connector(url, schema, size=size, outage=outage))
