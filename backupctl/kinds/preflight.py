"""What would make a backup fail if it ran now, field by field: the checks behind
`Kind.preflight`, which `config check` reports (exit 1) without failing the
configuration, since a mount or a package may still appear before the night.

Every message starts with the field it is about (`path /srv/wiki does not exist`,
`argv: program 'crm-export' not found on PATH (...)`); `config check` puts the app
in front. Access is judged for the user running the check: run it as the user
the backups run as.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from backupctl.kinds import kind_class
from backupctl.registry.model import App


def this_user() -> str:
    """'user backup (uid 34)': whom the access checks were made for."""
    import pwd

    uid = os.geteuid()
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:  # a uid without a passwd entry (containers)
        return f"uid {uid}"


def _access(path: str, mode: int) -> bool:
    # The effective ids are the ones the backup's open() and exec() will use.
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)


def _stat(path: str) -> os.stat_result | str:
    """The path's stat, or why it has none (said after the path)."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return "does not exist"
    except PermissionError:
        return f"can't be reached by {this_user()}: a folder on the way is not searchable"
    except NotADirectoryError:
        return "does not exist (a part of it is not a folder)"
    except OSError as exc:
        return f"can't be looked at: {exc.strerror}"


def path_problems(field: str, path: str) -> list[str]:
    """Why folder `path` (the value of `field`) can't be read now: missing, not a
    folder, or not readable and searchable by this user."""
    found = _stat(path)
    if isinstance(found, str):
        return [f"{field} {path} {found}"]
    if not stat.S_ISDIR(found.st_mode):
        return [f"{field} {path} is not a folder"]
    if not _access(path, os.R_OK | os.X_OK):
        return [f"{field} {path} is not readable by {this_user()}"]
    return []


def program_problems(
    field: str, program: str, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Why `program` (the first item of argv-like `field`: an absolute path, or a name
    looked up on the PATH of `environ`) can't be started now."""
    if "/" in program:
        return [f"{field}: {p}" for p in _executable_problems(program)]
    # The folders subprocess searches: the environment's PATH, else os.defpath.
    folders = os.get_exec_path(dict(os.environ if environ is None else environ))
    search = os.pathsep.join(folders)
    found = [os.path.join(d, program) for d in folders if os.path.isfile(os.path.join(d, program))]
    if any(not _executable_problems(candidate) for candidate in found):
        return []
    if found:  # there, but this user may not run it: say so rather than "not found"
        return [f"{field}: {p} (found on PATH)" for p in _executable_problems(found[0])]
    return [f"{field}: program {program!r} not found on PATH ({search})"]


def _executable_problems(program: str) -> list[str]:
    found = _stat(program)
    if isinstance(found, str):
        return [f"program {program} {found}"]
    if stat.S_ISDIR(found.st_mode):
        return [f"program {program} is a folder, not a program"]
    if not _access(program, os.X_OK):
        return [f"program {program} is not executable by {this_user()}"]
    return []


def field_problems(app: App) -> list[str]:
    """The problems of every path-like and program field of `app` that is set: the
    paths its kind's spec lists, and `argv` or any `*_argv` (e.g. a `drill_argv`),
    so a field added later is checked without a second list to keep in step."""
    spec = kind_class(app.kind).fields
    problems: list[str] = []
    for name in sorted(spec.paths):
        value = app.params.get(name)
        if isinstance(value, str):
            problems.extend(path_problems(name, value))
    for name in sorted(app.params):
        value = app.params[name]
        if (name == "argv" or name.endswith("_argv")) and isinstance(value, list) and value:
            problems.extend(program_problems(name, str(value[0])))
    return problems


def hook_problems(app: App) -> list[str]:
    """The problems of the app's `before` and `after` hook programs (any kind's)."""
    problems: list[str] = []
    for name, argv in (("before", app.before), ("after", app.after)):
        if argv:
            problems.extend(program_problems(name, argv[0]))
    return problems
