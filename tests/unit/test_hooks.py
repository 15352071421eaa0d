"""backupctl.hooks with real programs: what `after` is given when the dump ran out of
time, and what comes of each hook's failure."""

from __future__ import annotations

import sys

import pytest

from backupctl import hooks
from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed, Cancelled
from backupctl.hooks import Hooks
from backupctl.registry import App


def app(**fields: tuple[str, ...]) -> App:
    return App("shop", "command", {"argv": ["true"]}, **fields)  # type: ignore[arg-type]


def test_without_hooks_only_the_body_runs() -> None:
    assert Hooks(app()).around(CancelToken(), frozenset(), lambda: 7) == 7


def test_after_still_runs_when_the_dump_used_up_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hooks, "AFTER_GRACE", 30.0)
    token = CancelToken(timeout=0.2)
    ran = ("sh", "-c", 'test "$BACKUPCTL_BACKUP_STATUS" = failed')
    hooked = Hooks(app(after=ran))

    def dump() -> None:
        while not token.wait(1):
            pass
        token.check()

    with pytest.raises(Cancelled):
        hooked.around(token, frozenset(), dump)

    assert hooked.warning is None  # it ran, past the backup's deadline, and exited 0


def test_after_is_stopped_once_its_grace_is_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks, "AFTER_GRACE", 0.3)
    hooked = Hooks(app(after=("sleep", "300")))

    assert hooked.around(CancelToken(timeout=0.01), frozenset(), lambda: "stored") == "stored"

    assert hooked.warning == "after hook: timed out after 0.3s"


def test_a_before_that_cannot_run_fails_the_backup_and_after_still_runs(tmp_path) -> None:
    script = tmp_path / "quiesce"
    script.write_text("no #! line here\n")
    script.chmod(0o755)
    marker = tmp_path / "after-ran"
    after = (sys.executable, "-c", f"open({str(marker)!r}, 'w').write('x')")
    hooked = Hooks(app(before=(str(script),), after=after))

    with pytest.raises(BackupFailed) as excinfo:
        hooked.around(CancelToken(), frozenset(), lambda: pytest.fail("the dump ran"))

    assert str(excinfo.value).startswith(f"before hook: cannot run {script}: ")
    assert marker.exists()


def test_hooks_do_not_see_the_hidden_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_DSN", "postgresql://u:secret@h/d")
    hooked = Hooks(app(before=("sh", "-c", 'test -z "$SHOP_DSN"')))

    assert hooked.around(CancelToken(), frozenset({"SHOP_DSN"}), lambda: 1) == 1
