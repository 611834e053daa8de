"""The ``moecap-sim`` command line: parse, call :mod:`moecap_sim.api`, render.

User mistakes exit 2 with one line on stderr and never a traceback: the project's own
:class:`~moecap_sim.errors.UserError`, usage errors from typer/click (missing or unknown option,
a bad number, a missing command), and file-system errors on paths the user named.  Anything
else is a bug and keeps its traceback.

typer ≥ 0.22 vendors its own copy of click (``typer._click``) and a fresh venv has no ``click``
package at all, so usage errors are recognised from whichever click typer actually uses, never
by importing ``click`` directly.
"""

from __future__ import annotations

import functools
import sys

from moecap_sim.cli.app import app


def _click_classes() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(ClickException classes, Abort classes) of every click this typer may raise."""
    mods = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            mods.append(__import__(name, fromlist=["ClickException"]))
        except ImportError:
            pass
    exc = tuple(m.ClickException for m in mods if hasattr(m, "ClickException"))
    abort = tuple(m.Abort for m in mods if hasattr(m, "Abort"))
    try:
        from typer.exceptions import Abort as TyperAbort  # typer ≥ 0.22

        abort += (TyperAbort,)
    except ImportError:
        pass
    return exc, abort


@functools.lru_cache(maxsize=None)
def _command():
    """The click command tree typer builds from the app (built once per process: ~20 ms)."""
    import typer.main

    return typer.main.get_command(app)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _usage_error(exc: Exception) -> str:
    msg = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    if not msg or "Missing command" in msg:
        cmd = getattr(ctx, "command", None)
        names = sorted(getattr(cmd, "commands", {}) or {})
        msg = "missing command" + (f" (one of: {', '.join(names)})" if names else "")
    path = getattr(ctx, "command_path", None) or "moecap-sim"
    return f"error: {_one_line(msg)} (see '{path} --help')"


def main(argv: list[str] | None = None) -> int:
    from moecap_sim.errors import UserError

    click_exc, click_abort = _click_classes()
    try:
        rc = _command().main(args=argv, prog_name="moecap-sim", standalone_mode=False)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except click_abort:
        print("aborted", file=sys.stderr)
        return 1
    except click_exc as exc:  # usage errors: missing/unknown option, bad value, missing command
        print(_usage_error(exc), file=sys.stderr)
        return 2
    except (IsADirectoryError, NotADirectoryError, FileNotFoundError, PermissionError, FileExistsError) as exc:
        # a path the user named cannot be read or written
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
