"""Model registry: YAML files in ``moecap_sim/catalog/models/`` and HF ``config.json`` paths."""

from __future__ import annotations

import functools
from pathlib import Path

from moecap_sim.catalog import Registry, read_structured
from moecap_sim.errors import SpecError
from moecap_sim.specs.model import ModelSpec
from moecap_sim.specs.validation import validate_spec

_DIR = Path(__file__).resolve().parent / "models"


@functools.lru_cache(maxsize=None)
def registry() -> Registry:
    return Registry("model", lambda: _DIR, ModelSpec)


def _native_from_hf(cfg: dict) -> object:
    """Guess the checkpoint's storage scheme from an HF config's quantization_config/torch_dtype."""
    q = cfg.get("quantization_config") or {}
    method = str(q.get("quant_method", "")).lower()
    if method == "mxfp4":
        return {"default": "bf16", "experts": "mxfp4"}
    if method == "fp8":
        return "fp8"
    if method in ("awq", "gptq"):
        return "int4" if q.get("bits", 4) == 4 else "int8"
    dt = str(cfg.get("torch_dtype", cfg.get("dtype", "bfloat16"))).replace("torch.", "")
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(dt, "bf16")


def _from_hf_config(path: Path) -> ModelSpec:
    cfg = read_structured(path)
    if not isinstance(cfg, dict):
        raise SpecError(str(path), ["expected a JSON object (a Hugging Face config.json)"])
    if "config" in cfg and "name" in cfg:  # a catalog-style YAML/JSON file given by path
        spec = validate_spec(ModelSpec, cfg, str(path))
        return spec.model_copy(update={"path": str(path)})
    name = str(cfg.get("_name_or_path") or path.parent.name or path.stem)
    from moecap_sim.inputs import check_hf_config

    problems = check_hf_config(cfg)
    if problems:
        raise SpecError(str(path), problems)
    spec = ModelSpec(name=name.split("/")[-1].lower(), display_name=name, native_precision=_native_from_hf(cfg),
                     config_source=f"user file {path}", config=cfg, path=str(path))
    a = spec.arch  # parse now so errors surface at load time
    if not a.layers:
        raise SpecError(str(path), ["the config describes no layers"])
    if a.moe_layers and a.active_params("with_embeddings") > a.total_params * (1 + 1e-9):
        raise SpecError(str(path), [f"active parameters ({a.active_params('with_embeddings'):.3g}) exceed the total "
                                    f"({a.total_params:.3g}): check num_experts_per_tok against the expert count"])
    return spec


@functools.lru_cache(maxsize=None)
def get_model(name: str) -> ModelSpec:
    """A catalog model by name or alias (case-insensitive), or a path to an HF ``config.json``
    (or a catalog-style YAML)."""
    reg = registry()
    path = reg.path_of(name)
    if path.parent.resolve() == _DIR.resolve():
        spec = reg.get(name)
        spec = spec.model_copy(update={"path": str(path)})
        spec.arch
        return spec
    return _from_hf_config(path)


def list_models() -> list[ModelSpec]:
    return [get_model(n) for n in registry().names()]
