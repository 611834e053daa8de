"""User-facing errors.

A :class:`UserError` is a mistake in what the user asked for or supplied (unknown name,
malformed spec file, impossible flag combination).  The CLI prints its message and exits
with code 2, without a traceback.  Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """A mistake in user input; the CLI exits 2 and prints only the message."""

    exit_code = 2


class SpecError(UserError):
    """A spec file (model, device, system, calibration, trace) failed validation."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        lines = [f"invalid spec file {path}:"] + [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


def close_matches(word: str, candidates: Iterable[str], n: int = 4) -> list[str]:
    """Names from ``candidates`` that look like ``word`` (case-insensitive), best first."""
    cands = list(candidates)
    lowered = {c.lower(): c for c in cands}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.5)
    # Substring matches help with short queries such as "r1" or "h100".
    for c in cands:
        if word.lower() in c.lower() and c.lower() not in hits:
            hits.append(c.lower())
    return [lowered[h] for h in hits[:n]]


def unknown_name(kind: str, word: str, candidates: Iterable[str]) -> UserError:
    """Build the standard 'unknown X' error with close matches."""
    matches = close_matches(word, candidates)
    hint = f" Did you mean: {', '.join(matches)}?" if matches else ""
    return UserError(f"unknown {kind} '{word}'.{hint} (list them with `moecap-sim {'models' if kind == 'model' else 'hw'} list`)")
