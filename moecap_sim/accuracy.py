"""Accuracy axis of the CAP prediction: published scores, quantization deltas, radar value.

Data lives in ``moecap_sim/catalog/accuracy.yaml`` (every number with its source; see the
file's header for conventions).  This module only reads it; it imports nothing but ``yaml``
and the standard library so that ``predict`` stays fast, and parses the file once.

Rules implemented here
----------------------
* **Scores** are returned as published, one flat entry per (table, benchmark), each with its
  checkpoint, precision, setting, provenance and expanded source.  A model with no published
  scores gets an empty list and the reason from the catalog; nothing is filled in.
* **Precision scored** = the precision of the entry chosen for the radar (else of the model's
  first table, else the native precision).
* **Quantization delta** (for the radar benchmark, MMLU):

  - requested precision equals the scored one (bf16 and fp16 count as the same 16-bit class)
    -> no delta;
  - requested precision is 16/32-bit and not narrower than the scored one (e.g. bf16 weights
    dequantized from an fp8 release) -> no delta: the weights hold the same values;
  - otherwise the delta applies: a *measured* paired delta for this model, from the scored
    precision to the requested one, on MMLU (verified, in points, no caveat) is used and cited;
    else the accuracy.md §5 *prior* for the requested format (MMLU-type column), whose range
    midpoint is used and labelled "prior"; else ``delta_points`` is ``None`` with the note
    "no published delta".
* **radar_score** = the model's MMLU, chosen by the rule stated in the catalog (``radar.rule``):
  verified entries only; vendor before third-party; served checkpoint (reasoning/instruct)
  before base; then file order.  Plus the delta when one applies; ``None`` when the delta
  applies but none is published, or when the model has no MMLU.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import yaml

CATALOG_PATH = Path(__file__).resolve().parent / "catalog" / "accuracy.yaml"

#: Storage width used to decide whether a requested precision is narrower than the scored one.
BITS = {"fp32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4, "mxfp4": 4, "nvfp4": 4}
_SIXTEEN = ("bf16", "fp16")
_HIGH = ("fp32", "bf16", "fp16")
#: Served checkpoints rank before base ones when choosing the radar entry.
_KIND_RANK = {"reasoning": 0, "instruct": 0, "unstated": 1, "base": 2}
_PROV_RANK = {"vendor": 0, "third-party": 1}
NO_DELTA_NOTE = "no published delta"


# ------------------------------------------------------------------------------------ loading

@functools.lru_cache(maxsize=1)
def _catalog() -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(CATALOG_PATH, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=loader)


def _tags(src: Union[str, list, None]) -> list[str]:
    if src is None:
        return []
    return [src] if isinstance(src, str) else list(src)


def cite(src: Union[str, list, None], detail: Optional[str] = None) -> str:
    """Expand source tags to a short citation, e.g. ``"Mixtral of Experts, arXiv 2401.04088
    [MIXTRAL] (Table 2)"``.  Unknown tags are kept as they are."""
    sources = _catalog().get("sources", {})
    parts = [f"{sources[t]} [{t}]" if t in sources else f"[{t}]" for t in _tags(src)]
    text = "; ".join(parts)
    return f"{text} ({detail})" if detail else text


@functools.lru_cache(maxsize=None)
def _entries(model: str) -> tuple:
    """Flattened score entries of one model (cached; callers get copies)."""
    spec = (_catalog().get("models") or {}).get(model)
    if not spec:
        return ()
    out = []
    for table in spec.get("tables", []):
        for s in table.get("scores", []):
            e = {
                "benchmark": s["benchmark"],
                "score": float(s["score"]),
                "checkpoint": table["checkpoint"],
                "checkpoint_kind": table.get("kind", "unstated"),
                "precision": table.get("precision"),
                "precision_stated": bool(table.get("precision_stated", False)),
                "setting": s.get("setting", table.get("setting")),
                "provenance": table.get("provenance", "third-party"),
                "source": cite(table.get("source"), table.get("table")),
                "source_tags": _tags(table.get("source")),
                "harness": " ".join(_tags(table.get("source"))) + (f" {table['table']}" if table.get("table") else ""),
                "verified": bool(s.get("verified", True)),
            }
            if s.get("note"):
                e["note"] = s["note"]
            if table.get("precision_note"):
                e["precision_note"] = table["precision_note"]
            out.append(e)
    return tuple(out)


# ------------------------------------------------------------------------------- public data

def radar_benchmark() -> str:
    return _catalog()["radar"]["benchmark"]


def radar_rule() -> str:
    return " ".join(_catalog()["radar"]["rule"].split())


def list_benchmarks() -> list[str]:
    """Canonical benchmark names the catalog uses (sorted)."""
    return sorted(_catalog().get("benchmarks", {}))


def benchmark_class(benchmark: str) -> Optional[str]:
    """``knowledge``, ``short-math``, ``long-reasoning`` or ``chat`` (None if unknown)."""
    return (_catalog().get("benchmarks", {}).get(benchmark) or {}).get("class")


def models_with_scores() -> list[str]:
    """Catalog model names that have at least one published score."""
    return sorted(m for m, spec in (_catalog().get("models") or {}).items() if _entries(m))


def models_without_scores() -> dict[str, str]:
    """Model name -> reason, for models explicitly listed as having no published scores."""
    return {m: " ".join(str(r).split()) for m, r in (_catalog().get("no_published_scores") or {}).items()}


def scores_for(model_name: str, benchmark: Optional[str] = None) -> list[dict]:
    """Published score entries of a model (optionally one benchmark), as JSON-ready dicts."""
    out = [copy.deepcopy(e) for e in _entries(_key(model_name))]
    return [e for e in out if benchmark is None or e["benchmark"] == benchmark]


def quantization_entries(model_name: Optional[str] = None) -> list[dict]:
    """Quantization entries for a model (and the "any MoE" priors when ``model_name`` is None)."""
    items = _catalog().get("quantization") or []
    if model_name is None:
        return copy.deepcopy(items)
    key = _key(model_name)
    return copy.deepcopy([q for q in items if q.get("model") == key])


def expert_reduction_for(model_name: str) -> list[dict]:
    """Published accuracy effects of expert pruning / reduced top-k for a model (data only)."""
    key = _key(model_name)
    return [dict(e, source=cite(e.get("source"))) for e in (_catalog().get("expert_reduction") or [])
            if e.get("model") == key]


def radar_entry(model_name: str) -> Optional[dict]:
    """The score entry the radar uses (see the module docstring), or None."""
    bench = radar_benchmark()
    cands = [(i, e) for i, e in enumerate(_entries(_key(model_name))) if e["benchmark"] == bench and e["verified"]]
    if not cands:
        return None
    _, best = min(cands, key=lambda ie: (_PROV_RANK.get(ie[1]["provenance"], 9),
                                          _KIND_RANK.get(ie[1]["checkpoint_kind"], 9), ie[0]))
    return copy.deepcopy(best)


# ------------------------------------------------------------------------------ precisions

def _key(model_name: str) -> str:
    return str(model_name).strip().lower()


def normalize_precision(p: Union[str, Mapping[str, str], None]) -> Optional[str]:
    """A precision name, or None for 'native'/'auto'/None.  A mixed native scheme
    (``{default: bf16, experts: mxfp4}``) is named after its expert precision, which is what the
    vendor's scores are labelled with (gpt-oss: mxfp4)."""
    if p is None:
        return None
    if isinstance(p, Mapping):
        return normalize_precision(p.get("experts") or p.get("default"))
    s = str(p).strip().lower()
    if s.startswith("native "):
        s = s[len("native "):].split()[0]
    return None if s in ("", "native", "auto") else s


def _same_class(a: Optional[str], b: Optional[str]) -> bool:
    return a == b or (a in _SIXTEEN and b in _SIXTEEN)


# ----------------------------------------------------------------------------- quantization

def _measured_delta(model: str, scored: str, used: str, bench: str) -> Optional[tuple[dict, dict]]:
    for q in _catalog().get("quantization") or []:
        if (q.get("model") != model or q.get("kind") != "measured" or not q.get("verified", False)
                or q.get("caveat") or q.get("unit", "points") != "points"
                or q.get("to_precision") != used or not _same_class(q.get("from_precision"), scored)):
            continue
        for r in q.get("results", []):
            if r.get("benchmark") == bench and r.get("delta_points") is not None:
                return q, r
    return None


def _prior(used: str) -> Optional[dict]:
    for q in _catalog().get("quantization") or []:
        if q.get("kind") == "prior" and q.get("model") == "any MoE" and q.get("to_precision") == used:
            return q
    return None


def _related(model: str, used: str, exclude: Optional[dict]) -> list[dict]:
    """Other published evidence for this model at the requested precision (not auto-applied)."""
    out = []
    for q in _catalog().get("quantization") or []:
        if q is exclude or q.get("model") != model or q.get("to_precision") != used:
            continue
        item = {k: q[k] for k in ("kind", "checkpoint", "from_precision", "to_precision", "method",
                                  "statement", "caveat", "verified") if k in q}
        if q.get("results"):
            item["results"] = copy.deepcopy(q["results"])
        item["source"] = cite(q.get("source"))
        out.append(item)
    return out


def _fmt(x: float) -> str:
    return f"{x:+.2f}".rstrip("0").rstrip(".") if x != 0 else "0"


def quantization_delta(model_name: str, precision_scored: Optional[str], precision_used: Optional[str],
                       benchmark: Optional[str] = None) -> dict:
    """The accuracy change going from the scored precision to the requested one (see module doc)."""
    model, bench = _key(model_name), benchmark or radar_benchmark()
    cls = benchmark_class(bench) or "knowledge"
    q: dict[str, Any] = {"applies": False, "benchmark": bench, "delta_points": None, "delta_range": None,
                         "kind": None, "basis": None, "source": None, "note": "", "related": []}
    scored, used = precision_scored, precision_used
    if scored is None or used is None:
        q["note"] = "precision not known; no delta applied"
        return q
    if _same_class(used, scored):
        q["note"] = (f"requested precision {used} is the precision the scores were published at"
                     + (" (bf16 and fp16 treated as the same 16-bit class)" if used != scored else "")
                     + ": no delta")
        return q
    if used in _HIGH and BITS.get(used, 0) >= BITS.get(scored, 99):
        q["note"] = (f"{used} is not narrower than the scored {scored}: the weights are up-cast/dequantized "
                     "and hold the same values, so the published score stands")
        return q

    q["applies"] = True
    hit = _measured_delta(model, scored, used, bench)
    if hit:
        entry, r = hit
        d = float(r["delta_points"])
        q.update(delta_points=d, kind="measured", source=cite(entry.get("source")),
                 basis=(f"measured {entry['from_precision']}->{entry['to_precision']} on {entry.get('checkpoint', model)}"
                        f" ({entry.get('method', '')}): {bench} {r['baseline']} -> {r['quantized']} ({_fmt(d)} points)"
                        f" ({cite(entry.get('source'))})"),
                 note="measured paired delta (same model, same harness, two precisions)")
        others = [x for x in entry.get("results", []) if x is not r]
        if others:
            q["other_benchmarks"] = copy.deepcopy(others)
        q["related"] = _related(model, used, entry)
        return q

    prior = _prior(used) if BITS.get(used, 99) <= BITS.get(scored, 0) else None
    rng = (prior or {}).get("by_class", {}).get(cls) if prior else None
    if prior and rng is not None:
        lo, hi = float(rng[0]), float(rng[1])
        mid = round((lo + hi) / 2, 3)
        q.update(delta_points=mid, delta_range=[lo, hi], kind="prior", source=cite(prior.get("source")),
                 basis=(f"prior: {prior.get('method')} on any MoE, {cls} benchmarks {_fmt(lo)} to {_fmt(hi)} points"
                        f" (midpoint {_fmt(mid)} used); basis {prior.get('basis')} ({cite(prior.get('source'))})"),
                 note=(f"no measured {scored}->{used} delta for {model}; using the reference's default prior, "
                       "which is an analysis, not a published measurement"))
        if used in ("nvfp4", "mxfp4"):
            q["note"] += ("; the prior assumes attention and router stay high precision (quantizing attention "
                          "too cost -2.9 MMLU on Mixtral [COMM-MIXTRAL-NVFP4])")
        if prior.get("note"):
            q["prior_note"] = prior["note"]
    else:
        q["note"] = f"{NO_DELTA_NOTE} for {scored} -> {used} on {bench}-type benchmarks"
    q["related"] = _related(model, used, None)
    return q


# ------------------------------------------------------------------------------ main entry

def accuracy_for(model_name: str, precision_used: Union[str, None],
                 native_precision: Union[str, Mapping[str, str], None]) -> dict:
    """JSON-ready accuracy block for ``predict``: published scores with sources, the precision
    they were scored at, the quantization delta to ``precision_used`` and the radar value."""
    model = _key(model_name)
    native = normalize_precision(native_precision)
    used = normalize_precision(precision_used) or native
    entries = scores_for(model)
    r_entry = radar_entry(model)
    if r_entry is not None:
        scored = r_entry["precision"]
    else:
        scored = next((e["precision"] for e in entries if e["precision"]), None) or native
    quant = quantization_delta(model, scored, used)
    if r_entry is None:
        scored_basis = ("no radar entry; precision of the model's first published table" if entries
                        else "no published scores; native precision")
    elif r_entry.get("precision_note"):
        scored_basis = r_entry["precision_note"]
    elif r_entry["precision_stated"]:
        scored_basis = "stated by the source"
    else:
        scored_basis = (f"not stated by the source; the released {scored} checkpoint is assumed "
                        "(vendor scores are usually for the shipped precision)")

    baseline = r_entry["score"] if r_entry else None
    if baseline is None:
        radar = None
    elif not quant["applies"]:
        radar = baseline
    elif quant["delta_points"] is None:
        radar = None
    else:
        radar = round(min(100.0, max(0.0, baseline + quant["delta_points"])), 2)

    reason = models_without_scores().get(model)
    if r_entry is not None:
        summary = (f"{r_entry['benchmark']} {baseline:g} ({r_entry['checkpoint']}, {r_entry['provenance']}"
                   + (f", {r_entry['setting']}" if r_entry.get("setting") else "")
                   + f"; {r_entry['source']}) scored at {scored}")
        if quant["applies"]:
            summary += (f"; {used}: {quant['basis']}" if quant["basis"] else f"; {used}: {quant['note']}")
        summary += f"; radar {radar:g}" if radar is not None else "; radar null"
    elif entries:
        summary = (f"{len(entries)} published scores but no verified {radar_benchmark()} score, so no radar "
                   "value")
    else:
        summary = f"no published scores: {reason}" if reason else "model not in the accuracy catalog"
    if entries:
        tags = sorted({t for e in entries for t in e["source_tags"]})
        summary += f"; {len(entries)} scores from {', '.join(tags)}"

    return {
        "model": model,
        "scores": entries,
        "no_scores_reason": None if entries else (reason or "model not in the accuracy catalog"),
        "precision_scored": scored,
        "precision_scored_basis": scored_basis,
        "precision_used": used,
        "native_precision": native,
        "quantization": quant,
        "radar_benchmark": radar_benchmark(),
        "radar_baseline": baseline,
        "radar_entry": r_entry,
        "radar_score": radar,
        "radar_rule": radar_rule(),
        "source_summary": summary,
    }
