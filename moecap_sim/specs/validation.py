"""Turn pydantic validation errors into messages naming the file, the field and the value."""

from __future__ import annotations

from typing import Any, Type, TypeVar

from pydantic import BaseModel, ValidationError

from moecap_sim.errors import SpecError, close_matches

M = TypeVar("M", bound=BaseModel)


def _allowed_fields(cls: Type[BaseModel], loc: tuple) -> list[str]:
    """Field names allowed at ``loc`` (used to suggest close matches for a typo)."""
    current: Any = cls
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        # unwrap Optional[X] / X | None
        args = getattr(ann, "__args__", None)
        if args:
            ann = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), ann)
        current = ann
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def validate_spec(cls: Type[M], data: Any, path: str) -> M:
    """Validate ``data`` against ``cls``; raise :class:`SpecError` with one line per problem."""
    if not isinstance(data, dict):
        raise SpecError(path, [f"expected a mapping at the top level, got {type(data).__name__}"])
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            field = ".".join(loc) or "(top level)"
            typ = err["type"]
            if typ == "missing":
                problems.append(f"field '{field}' is missing")
            elif typ == "extra_forbidden":
                hint = close_matches(loc[-1], _allowed_fields(cls, loc))
                extra = f" (did you mean {', '.join(repr(h) for h in hint)}?)" if hint else ""
                problems.append(f"field '{field}' is not a known field{extra}")
            else:
                msg = err["msg"]
                if msg.startswith("Value error, "):
                    msg = msg[len("Value error, "):]
                value = err.get("input")
                vtxt = repr(value) if not isinstance(value, dict) else "{...}"
                if not loc:
                    problems.append(msg)
                else:
                    problems.append(f"field '{field}' = {vtxt}: {msg}")
        raise SpecError(path, problems) from None
