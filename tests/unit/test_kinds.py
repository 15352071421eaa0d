"""Backup kinds: `command` streams a program's stdout, `files` tars a directory."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from backupctl.cancel import CancelToken
from backupctl.errors import BackupFailed, Cancelled
from backupctl.kinds import KINDS, KindOptions, kind_class, kind_for
from backupctl.kinds.command import CommandKind
from backupctl.kinds.fields import KindSpec
from backupctl.kinds.files import FilesKind
from backupctl.kinds.process import STDERR_TAIL, stream_stdout
from backupctl.registry import App


class Sink:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes, /) -> int:
        return self.buffer.write(data)

    @property
    def data(self) -> bytes:
        return self.buffer.getvalue()


def command_app(*argv: str) -> App:
    return App("cmd", "command", {"argv": list(argv)})


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def is_gone(pid: int) -> bool:
    """True once `pid` has exited (gone, or a zombie nobody has reaped yet)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return state.split()[1] in ("Z", "X")


def test_kind_for_picks_the_kind_by_name() -> None:
    assert isinstance(kind_for(App("a", "command", {"argv": ["true"]})), CommandKind)
    assert isinstance(kind_for(App("a", "files", {"path": "/"})), FilesKind)
    with pytest.raises(ValueError) as excinfo:
        kind_for(App("a", "oracle"))
    assert str(excinfo.value) == "unknown kind 'oracle'"


def test_kinds_name_their_file_extension() -> None:
    assert CommandKind.extension == "out"
    assert FilesKind.extension == "tar"


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_registered_kind_has_the_whole_interface(name: str) -> None:
    cls = kind_class(name)
    kind = cls(KindOptions())
    for method in ("dump", "secrets", "preflight", "restore", "drill"):
        assert callable(getattr(kind, method)), f"{name}: no {method}"
    assert isinstance(cls.fields, KindSpec)
    assert cls.fields.required <= set(cls.fields.fields)
    assert cls.fields.paths <= set(cls.fields.fields)
    assert all(group <= set(cls.fields.fields) for group in cls.fields.one_of)
    assert re.fullmatch(r"[a-z0-9]+", cls.extension)  # artifacts.py's pattern


def test_no_two_kinds_share_an_extension() -> None:
    extensions = [kind_class(name).extension for name in KINDS]
    assert len(set(extensions)) == len(extensions)


def test_a_kinds_module_is_imported_only_when_the_kind_is_used() -> None:
    code = (
        "import sys; import backupctl.kinds, backupctl.registry;"
        "print(sorted(m for m in sys.modules if m.startswith('backupctl.kinds.')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_command_stdout_is_copied_exactly() -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB, binary, more than one read chunk
    code = "import sys; sys.stdout.buffer.write(bytes(range(256)) * 8192)"
    out = Sink()

    CommandKind().dump(command_app(*python(code)), out, CancelToken())

    assert out.data == payload


def test_command_with_no_output_writes_nothing() -> None:
    out = Sink()

    CommandKind().dump(command_app("true"), out, CancelToken())

    assert out.data == b""


def test_command_stderr_is_not_part_of_the_artifact() -> None:
    out = Sink()

    CommandKind().dump(
        command_app(*python("import sys; print('data'); print('noise', file=sys.stderr)")),
        out,
        CancelToken(),
    )

    assert out.data == b"data\n"


def test_command_exiting_non_zero_fails_with_the_status_and_stderr_tail() -> None:
    code = "import sys; print('partial'); print('disk full', file=sys.stderr); sys.exit(3)"

    with pytest.raises(BackupFailed) as excinfo:
        CommandKind().dump(command_app(*python(code)), Sink(), CancelToken())

    assert str(excinfo.value) == "command exited with status 3: disk full"
    assert not isinstance(excinfo.value, Cancelled)


def test_command_exiting_non_zero_without_stderr_says_only_the_status() -> None:
    with pytest.raises(BackupFailed) as excinfo:
        CommandKind().dump(command_app("false"), Sink(), CancelToken())

    assert str(excinfo.value) == "command exited with status 1"


def test_only_the_tail_of_a_long_stderr_is_kept() -> None:
    code = (
        "import sys\n"
        "for i in range(5000): print(f'line {i:05d}', file=sys.stderr)\n"
        "print('the last word', file=sys.stderr); sys.exit(2)"
    )

    with pytest.raises(BackupFailed) as excinfo:
        CommandKind().dump(command_app(*python(code)), Sink(), CancelToken())

    message = str(excinfo.value)
    assert message.startswith("command exited with status 2: ")
    assert message.endswith("line 04999\nthe last word")
    assert len(message) <= len("command exited with status 2: ") + STDERR_TAIL
    assert "line 00000" not in message


def test_command_killed_by_a_signal_says_so() -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"

    with pytest.raises(BackupFailed) as excinfo:
        CommandKind().dump(command_app(*python(code)), Sink(), CancelToken())

    assert str(excinfo.value) == "command was killed by signal 15"


def test_missing_program_fails_with_program_not_found() -> None:
    with pytest.raises(BackupFailed) as excinfo:
        CommandKind().dump(
            command_app("/nonexistent/crm-export", "--stdout"), Sink(), CancelToken()
        )

    assert str(excinfo.value) == "command: program not found: /nonexistent/crm-export"


def test_program_that_is_not_executable_fails_clearly(tmp_path: Path) -> None:
    script = tmp_path / "export.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)

    with pytest.raises(BackupFailed) as excinfo:
        CommandKind().dump(command_app(str(script)), Sink(), CancelToken())

    assert str(excinfo.value) == f"command: program not executable: {script}"


def test_stream_stdout_labels_messages_with_the_program_name_by_default() -> None:
    with pytest.raises(BackupFailed) as excinfo:
        stream_stdout(["/bin/false"], Sink(), CancelToken())

    assert str(excinfo.value) == "false exited with status 1"


def test_stream_stdout_passes_only_the_given_environment() -> None:
    out = Sink()

    stream_stdout(
        python("import os; print(sorted(k for k in os.environ if k.startswith('BK_')))"),
        out,
        CancelToken(),
        env={"BK_ONE": "1", "BK_TWO": "2"},
    )

    assert out.data == b"['BK_ONE', 'BK_TWO']\n"


def test_a_short_timeout_kills_a_long_sleep_quickly_and_raises_cancelled() -> None:
    started = time.monotonic()

    with pytest.raises(Cancelled) as excinfo:
        CommandKind().dump(command_app("sleep", "30"), Sink(), CancelToken(timeout=0.3))

    assert str(excinfo.value) == "timed out after 0.3s"
    assert "timed out" in str(excinfo.value)
    assert time.monotonic() - started < 5


def test_an_explicit_cancel_stops_the_program_with_its_reason() -> None:
    cancel = CancelToken()
    timer = threading.Timer(0.2, cancel.cancel, args=("lease lost",))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(Cancelled) as excinfo:
            CommandKind().dump(command_app("sleep", "30"), Sink(), cancel)
    finally:
        timer.cancel()

    assert str(excinfo.value) == "lease lost"
    assert time.monotonic() - started < 5


def test_cancel_kills_the_programs_children_too() -> None:
    # sh starts a grandchild `sleep 30` (holding stdout open), prints its pid and waits.
    out = Sink()
    started = time.monotonic()

    with pytest.raises(Cancelled):
        stream_stdout(["sh", "-c", "sleep 30 & echo $!; wait"], out, CancelToken(timeout=0.3))

    assert time.monotonic() - started < 5
    grandchild = int(out.data.decode().strip())
    deadline = time.monotonic() + 3
    while not is_gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert is_gone(grandchild)


def test_an_already_cancelled_token_stops_the_program_at_once() -> None:
    cancel = CancelToken()
    cancel.cancel("shutting down")

    with pytest.raises(Cancelled) as excinfo:
        CommandKind().dump(command_app("sleep", "30"), Sink(), cancel)

    assert str(excinfo.value) == "shutting down"


def make_tree(root: Path) -> None:
    (root / "docs" / "deep" / "er").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_text("alpha")
    (root / "docs" / "b.bin").write_bytes(bytes(range(256)))
    (root / "docs" / "deep" / "er" / "c.txt").write_text("gamma")
    (root / ".hidden").write_text("dot")
    (root / "link").symlink_to("a.txt")


def tree_members(root: Path) -> set[str]:
    found: set[str] = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add((Path(folder) / name).relative_to(root).as_posix())
    return found


def tar_of(data: bytes) -> tarfile.TarFile:
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:")


def test_files_kind_writes_a_tar_whose_members_equal_the_source_tree(tmp_path: Path) -> None:
    source = tmp_path / "uploads"
    source.mkdir()
    make_tree(source)
    out = Sink()

    FilesKind().dump(App("up", "files", {"path": str(source)}), out, CancelToken())

    with tar_of(out.data) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members.pop(".").isdir()  # the folder itself: its mode, owner and mtime
        assert set(members) == tree_members(source)
        assert all(not name.startswith(("/", "uploads")) for name in members)
        assert members["empty"].isdir()
        assert members["link"].issym() and members["link"].linkname == "a.txt"
        for name in ("a.txt", "docs/b.bin", "docs/deep/er/c.txt", ".hidden"):
            extracted = tar.extractfile(members[name])
            assert extracted is not None
            assert extracted.read() == (source / name).read_bytes()


def test_files_kind_of_an_empty_directory_holds_only_the_folder_itself(tmp_path: Path) -> None:
    out = Sink()

    result = FilesKind().dump(App("up", "files", {"path": str(tmp_path)}), out, CancelToken())

    with tar_of(out.data) as tar:
        assert [m.name for m in tar.getmembers()] == ["."]
    assert result.empty == f"the folder {tmp_path} holds no files"


def test_files_kind_counts_the_regular_files_and_their_bytes(tmp_path: Path) -> None:
    source = tmp_path / "uploads"
    source.mkdir()
    make_tree(source)
    regular = [p for p in source.rglob("*") if p.is_file() and not p.is_symlink()]

    result = FilesKind().dump(App("up", "files", {"path": str(source)}), Sink(), CancelToken())

    assert result.manifest["files"] == len(regular)
    assert result.manifest["file_bytes"] == sum(p.stat().st_size for p in regular)
    assert result.empty is None


def test_a_folder_of_empty_folders_holds_no_files(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)

    result = FilesKind().dump(App("up", "files", {"path": str(tmp_path)}), Sink(), CancelToken())

    assert (result.manifest["files"], result.manifest["file_bytes"]) == (0, 0)
    assert result.empty is not None


def test_files_kind_with_a_missing_path_fails_with_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "gone"

    with pytest.raises(BackupFailed) as excinfo:
        FilesKind().dump(App("up", "files", {"path": str(missing)}), Sink(), CancelToken())

    assert str(excinfo.value) == f"path {missing} does not exist"


def test_files_kind_with_a_file_instead_of_a_folder_fails(tmp_path: Path) -> None:
    file = tmp_path / "file.txt"
    file.write_text("x")

    with pytest.raises(BackupFailed) as excinfo:
        FilesKind().dump(App("up", "files", {"path": str(file)}), Sink(), CancelToken())

    assert str(excinfo.value) == f"path {file} is not a directory"


def test_files_kind_stops_when_cancelled(tmp_path: Path) -> None:
    make_tree(tmp_path)
    cancel = CancelToken()
    cancel.cancel("lease lost")

    with pytest.raises(Cancelled) as excinfo:
        FilesKind().dump(App("up", "files", {"path": str(tmp_path)}), Sink(), cancel)

    assert str(excinfo.value) == "lease lost"


def test_preflight_checks_every_argv_field_a_drill_argv_too(tmp_path: Path) -> None:
    from backupctl.kinds.preflight import field_problems

    # No kind takes a drill_argv yet; one that does is checked without more code.
    app = App("cmd", "command", {"argv": [sys.executable], "drill_argv": [str(tmp_path / "d")]})
    assert field_problems(app) == [f"drill_argv: program {tmp_path / 'd'} does not exist"]
    assert CommandKind().preflight(command_app(sys.executable, "-V")) == []


def test_preflight_looks_programs_up_on_the_path_they_will_run_with(tmp_path: Path) -> None:
    from backupctl.kinds.preflight import program_problems

    assert program_problems("argv", "sh", {"PATH": "/usr/bin:/bin"}) == []
    assert program_problems("argv", "sh", {"PATH": str(tmp_path)}) == [
        f"argv: program 'sh' not found on PATH ({tmp_path})"
    ]


def test_files_preflight_is_quiet_for_a_readable_folder(tmp_path: Path) -> None:
    assert FilesKind().preflight(App("f", "files", {"path": str(tmp_path)})) == []
    missing = tmp_path / "gone"
    assert FilesKind().preflight(App("f", "files", {"path": str(missing)})) == [
        f"path {missing} does not exist"
    ]
