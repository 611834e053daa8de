"""Schema of a model catalog file: Hugging Face ``config.json`` fields plus metadata."""

from __future__ import annotations

import functools
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from moecap_sim.geometry import Architecture, parse_hf_config
from moecap_sim.precision import check_precision, GROUPS


class Published(BaseModel):
    """The vendor's headline parameter counts, with the counting convention it uses."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    total_params: float = Field(gt=0)
    active_params: Optional[float] = Field(default=None, gt=0)
    active_convention: Literal["with_embeddings", "without_input_embedding", "non_embedding"] = "with_embeddings"
    tolerance: float = Field(default=0.03, gt=0, le=0.2)
    source: str
    note: Optional[str] = None


class ModelSpec(BaseModel):
    """A catalog model.  ``config`` holds the HF ``config.json`` fields verbatim."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    display_name: str
    aliases: list[str] = []
    hf_repo: Optional[str] = None
    native_precision: Union[str, dict[str, str]] = "bf16"
    published: Optional[Published] = None
    config_source: str
    config: dict[str, Any]
    notes: Optional[str] = None
    path: Optional[str] = None  # where it was loaded from (set by the loader)

    @field_validator("native_precision")
    @classmethod
    def _native(cls, v):
        if isinstance(v, str):
            check_precision(v, "native precision")
        else:
            for g, d in v.items():
                if g != "default" and g not in GROUPS:
                    raise ValueError(f"unknown tensor group '{g}' (known: default, {', '.join(GROUPS)})")
                check_precision(d, "native precision")
        return v

    @field_validator("config")
    @classmethod
    def _config_bounds(cls, v):
        """Integers ≥ 1 where zero is meaningless, bounded (no runaway layer counts), top-k ≤ experts."""
        from moecap_sim.inputs import check_hf_config

        problems = check_hf_config(v)
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @functools.cached_property
    def arch(self) -> Architecture:
        return parse_hf_config(self.config, where=self.path or self.name)
