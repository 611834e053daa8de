"""The ``moecap-sim`` command line: parse, call :mod:`moecap_sim.api`, render.

User mistakes (:class:`moecap_sim.errors.UserError`) print one clear message and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

from moecap_sim.cli.app import app


def main(argv: list[str] | None = None) -> int:
    from moecap_sim.errors import UserError

    try:
        app(args=argv, prog_name="moecap-sim", standalone_mode=False)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:  # typer/click exits (help, usage errors)
        return int(exc.code or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # click usage errors raised in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
