"""``moecap-sim hw probe``: measure this machine and write a spec in the catalog schema.

What is measured (medians — or minima, with ``estimator="min"`` — of repeats after warm-ups;
CPU samples taken while the process was preempted or another core was busy are rejected and
retried, see :mod:`~moecap_sim.validation.timing`):

* **memory bandwidth** — STREAM-style copy / triad / read on buffers of ≥ 4× the last-level
  cache, on ``threads`` cores; the spec stores the **triad** figure (bytes counted as STREAM
  does: 3 arrays, no write-allocate).
* **matrix multiply** per dtype (bf16, fp32, fp16 where faster than fp32) across shapes: skinny
  decode shapes (M = 1 … 16 rows against weight matrices streamed from DRAM, reported as GB/s
  of weights) up to large prefill GEMMs (TFLOPS).
* **per-operator dispatch overhead** — eager torch time of a tiny elementwise op and of a tiny
  ``linear`` (µs per op), and the fixed cost of a realistic bf16 GEMM call (skinny GEMMs against
  cache-resident 0.25–2 MB weights, ``t = fixed + bytes/rate`` fitted): what every extra
  operator costs regardless of its size.
* with a CUDA GPU: HBM copy bandwidth, GEMM TFLOPS per dtype, kernel-launch overhead, pinned
  host-to-device / device-to-host bandwidth and latency.

How the spec is meant to be read — the same way as every catalog spec.  Catalog CPU specs
carry *theoretical* dense peaks (cores × FLOP/cycle of the widest matrix/vector unit × clock)
and the cost model multiplies documented efficiency priors η onto them (``perf/efficiency.py``;
for ``cpu-x86`` η_flop = 0.45).  The probe therefore writes the theoretical peak the same way:
``threads × FLOP/cycle/core × nominal clock``, FLOP/cycle from the detected ISA (AMX: 1024 bf16
and 2048 int8 per core; AVX-512 with two FMA ports: 64 fp32 and, with AVX512_BF16, 128 bf16;
AVX2: 32 fp32; AMD Zen 4 executes 512-bit ops in two halves: half those), with the formula as
its ``sources`` entry; the *measured* best large-GEMM throughput is recorded beside it (notes,
probe JSON), so the achieved fraction — the quantity η_flop stands for — can be checked.

Memory bandwidth cannot be derived inside a VM (channels and DIMM speed are hidden), so the spec
stores the **measured** STREAM triad figure (``sources`` says so).  The η_bw prior (0.70) then
applies to a measured rather than a datasheet bandwidth; ``moecap-sim validate`` reports how well
that transfers, and ``moecap-sim calibrate`` replaces it with the fitted value.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Optional

from moecap_sim.errors import UserError
from moecap_sim.validation.timing import Timer, available_cores, llc_bytes
from moecap_sim.units import GB



# ---------------------------------------------------------------------------------------------
# machine description
# ---------------------------------------------------------------------------------------------

def _cpuinfo() -> dict:
    info = {"model": platform.processor() or platform.machine(), "vendor": "unknown", "flags": [], "mhz": None}
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return info
    for line in text.splitlines():
        k, _, v = line.partition(":")
        k, v = k.strip(), v.strip()
        if k == "model name" and info["model"] in ("", platform.machine(), platform.processor()):
            info["model"] = v
        elif k == "vendor_id":
            info["vendor"] = v
        elif k in ("flags", "Features") and not info["flags"]:
            info["flags"] = v.split()
        elif k == "cpu family" and "family" not in info:
            try:
                info["family"] = int(v)
            except ValueError:
                pass
        elif k == "cpu MHz" and info["mhz"] is None:
            try:
                info["mhz"] = float(v)
            except ValueError:
                pass
    try:  # a nominal frequency in the brand string beats the current clock
        m = re.search(r"@\s*([\d.]+)\s*GHz", info["model"])
        if m:
            info["mhz"] = float(m.group(1)) * 1000
    except ValueError:
        pass
    return info


def _isa(flags: list[str]) -> list[str]:
    f = set(flags)
    out = []
    for name, keys in (("avx2", ["avx2"]), ("avx512", ["avx512f"]), ("avx512_bf16", ["avx512_bf16"]),
                       ("amx", ["amx_bf16", "amx_tile"]), ("neon", ["asimd", "neon"]), ("sve", ["sve"]),
                       ("sme", ["sme"])):
        if any(k in f for k in keys):
            out.append(name)
    return out


def _mem_total_gb() -> float:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 / GB
    except OSError:
        pass
    return 16.0


def flops_per_cycle(isa: list[str], vendor: str, family: Optional[int], flags: list[str]) -> dict:
    """Dense FLOP (int8: OP) per cycle per core of the widest unit, per dtype."""
    f = set(flags)
    out: dict = {}
    if "avx512" in isa:
        half = vendor == "AuthenticAMD" and (family or 0) < 26  # Zen 4 double-pumps 512-bit ops
        fp32 = 32 if half else 64
        out["fp32"] = fp32
        if "avx512_bf16" in isa:
            out["bf16"] = 2 * fp32
        if "avx512_vnni" in f:
            out["int8"] = 4 * fp32
    elif "avx2" in isa:
        out["fp32"] = 32 if "fma" in f else 16
    elif "neon" in isa:
        out["fp32"] = 16  # two 128-bit FMA pipes (conservative; wider cores have four)
        if "bf16" in f:
            out["bf16"] = 32
    if "amx" in isa:
        out["bf16"] = 1024
        out["int8"] = 2048
        if "amx_fp16" in f:
            out["fp16"] = 1024
    return out or {"fp32": 8}


def machine_info(threads: int) -> dict:
    import torch

    ci = _cpuinfo()
    return {
        "cpu_model": ci["model"], "cpu_vendor": ci["vendor"], "cpu_mhz": ci["mhz"],
        "cores_available": available_cores(), "threads_used": threads, "isa": _isa(ci["flags"]),
        "cpu_family": ci.get("family"),
        "flops_per_cycle": flops_per_cycle(_isa(ci["flags"]), ci["vendor"], ci.get("family"), ci["flags"]),
        "llc_bytes": llc_bytes(), "dram_gb": round(_mem_total_gb(), 1),
        "os": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "numpy": __import__("numpy").__version__,
        "blas": "mkl" if torch.backends.mkl.is_available() else "other",
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def slug(s: str) -> str:
    s = re.sub(r"\(r\)|\(tm\)|cpu|processor|@.*$", " ", s.lower())
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return re.sub(r"-+", "-", s) or "machine"


# ---------------------------------------------------------------------------------------------
# CPU measurements
# ---------------------------------------------------------------------------------------------

_DTYPES = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}


def _stream(timer: Timer, nbytes: int, repeats: int) -> dict:
    import torch

    n = max(1, nbytes // 4)
    a = torch.ones(n)
    b = torch.full((n,), 2.0)
    c = torch.zeros(n)
    out = {}
    m = timer.measure(lambda: c.copy_(a), repeats=repeats, warmup=1)
    out["copy_gb_s"] = 2 * n * 4 / m.value(timer.estimator) / GB
    m_t = timer.measure(lambda: torch.add(b, c, alpha=3.0, out=a), repeats=repeats, warmup=1)
    out["triad_gb_s"] = 3 * n * 4 / m_t.value(timer.estimator) / GB
    m_r = timer.measure(lambda: a.sum(), repeats=repeats, warmup=1)
    out["read_gb_s"] = n * 4 / m_r.value(timer.estimator) / GB
    out["buffer_mb"] = round(n * 4 / 1e6)
    out["triad_spread"] = round(m_t.spread, 3)
    out["rejected_samples"] = m.rejected + m_t.rejected + m_r.rejected
    return out


def _gemv(timer: Timer, dtype: str, shapes, rows: tuple, total_bytes: int, repeats: int) -> list:
    """Skinny GEMMs against many distinct weight matrices (streamed from DRAM): the same
    measurement as :func:`_gemm_rows`, read by matrix size."""
    return _gemm_rows(timer, dtype, shapes, rows, total_bytes, repeats)


def _gemm(timer: Timer, dtype: str, shapes, repeats: int) -> list:
    import torch
    import torch.nn.functional as F

    dt = getattr(torch, _DTYPES[dtype])
    res = []
    for m_rows, k, n in shapes:
        a = torch.randn(m_rows, k, dtype=dt)
        w = torch.randn(n, k, dtype=dt) * 0.02
        m = timer.measure(lambda: F.linear(a, w), repeats=repeats, warmup=1)
        res.append({"dtype": dtype, "m": m_rows, "k": k, "n": n, "tflops": 2.0 * m_rows * k * n / m.value(timer.estimator) / 1e12,
                    "spread": round(m.spread, 3)})
    return res


def _gemm_rows(timer: Timer, dtype: str, shapes, rows: tuple, total_bytes: int, repeats: int) -> list:
    """Weight GEMMs ``[M, K]·[K, N]ᵀ`` for each M in ``rows`` against enough distinct weight
    matrices (≥ ``total_bytes``) that every call streams its weights from DRAM, as in a model
    far larger than the cache: weight GB/s per M (the curve the cost model reads)."""
    import torch
    import torch.nn.functional as F

    dt = getattr(torch, _DTYPES[dtype])
    res = []
    for k, n in shapes:
        per = k * n * dt.itemsize
        copies = max(2, int(math.ceil(total_bytes / per)))
        ws = [torch.randn(n, k, dtype=dt) * 0.02 for _ in range(copies)]
        for m_rows in rows:
            x = torch.randn(m_rows, k, dtype=dt)

            def f():
                for w in ws:
                    F.linear(x, w)

            m = timer.measure(f, repeats=repeats, warmup=1)
            t = m.value(timer.estimator)
            res.append({"dtype": dtype, "m": m_rows, "k": k, "n": n, "gb_s": copies * per / t / GB,
                        "tflops": 2.0 * m_rows * k * n * copies / t / 1e12, "spread": round(m.spread, 3)})
        del ws
    return res


def _attention(timer: Timer, repeats: int, quick: bool, tiny: bool = False) -> dict:
    """The attention kernel the validation layers run (SDPA, bf16, 16 heads of 128): a decode step
    over a DRAM-resident KV cache (KV GB/s) and a causal prefill (TFLOPS, FLOPs counted as the
    cost model counts them: 2·heads·(d_k + d_v) per (token, context position), causal half)."""
    import torch
    import torch.nn.functional as F

    from moecap_sim.validation.timing import CacheFlusher

    H, d = 16, 128
    flush = CacheFlusher(16 * 1024 ** 2 if tiny else None)
    out: dict = {}
    T = 128 if tiny else (512 if quick else 1024)
    q = torch.randn(1, H, T, d, dtype=torch.bfloat16)
    k = torch.randn(1, H, T, d, dtype=torch.bfloat16)
    v = torch.randn(1, H, T, d, dtype=torch.bfloat16)
    m = timer.measure(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), repeats=repeats, warmup=1,
                      flush=False)
    flops = T * 2.0 * H * 2 * d * (T / 2.0)
    out["prefill"] = {"tokens": T, "heads": H, "head_dim": d, "s": m.value(timer.estimator),
                      "tflops": flops / m.value(timer.estimator) / 1e12}
    B, L = (2, 256) if tiny else (16, 2048)  # the attention-bound decode regime (large batch x context)
    qd = torch.randn(B, H, 1, d, dtype=torch.bfloat16)
    kc = torch.randn(B, H, L, d, dtype=torch.bfloat16)
    vc = torch.randn(B, H, L, d, dtype=torch.bfloat16)

    def dec():
        flush()
        t0 = time.perf_counter()
        F.scaled_dot_product_attention(qd, kc, vc)
        return time.perf_counter() - t0

    dec()
    xs = []
    for _ in range(max(3, repeats)):
        xs.append(dec())
    t_dec = min(xs) if timer.estimator == "min" else statistics.median(xs)
    kv_bytes = 2.0 * B * H * L * d * 2
    dflops = B * 2.0 * H * 2 * d * L
    # the cost model adds the FLOPs at the prefill rate; the rest of the step is the KV stream
    t_kv = max(t_dec - dflops / (out["prefill"]["tflops"] * 1e12), 0.2 * t_dec)
    out["decode"] = {"batch": B, "context": L, "heads": H, "head_dim": d, "s": t_dec, "kv_bytes": kv_bytes,
                     "kv_gb_s": kv_bytes / t_kv / GB}
    out["decode_gqa"] = _gqa_expansion(timer, dec, qd, kc, vc, repeats, flush)
    del flush
    return out


def _gqa_expansion(timer: Timer, mha_step, qd, kc, vc, repeats: int, flush) -> dict:
    """How a grouped-query decode step costs: ``H`` query heads over ``H/4`` shared KV heads
    (``enable_gqa``) timed against MHA with ``H`` heads (every query head its own K/V) and MHA
    with ``H/4`` heads (the same K/V bytes read once).  ``expansion`` = (t_gqa − t_same_kv) /
    (t_mha − t_same_kv) ∈ [0, 1]: 1 when each query head streams the shared K/V again (the kernel
    repeats the KV heads), 0 when a group's query heads share one pass."""
    import torch.nn.functional as F

    H = qd.shape[1]
    kv_h = max(1, H // 4)
    k_g, v_g = kc[:, :kv_h].contiguous(), vc[:, :kv_h].contiguous()
    q_same = qd[:, :kv_h].contiguous()

    def run(fn):
        def step():
            flush()
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        step()
        xs = [step() for _ in range(max(3, repeats))]
        return min(xs) if timer.estimator == "min" else statistics.median(xs)

    t_mha = run(lambda: F.scaled_dot_product_attention(qd, kc, vc))
    t_same = run(lambda: F.scaled_dot_product_attention(q_same, k_g, v_g))
    t_gqa = run(lambda: F.scaled_dot_product_attention(qd, k_g, v_g, enable_gqa=True))
    span = t_mha - t_same
    expansion = min(1.0, max(0.0, (t_gqa - t_same) / span)) if span > 0 else 0.0
    return {"q_heads": H, "kv_heads": kv_h, "gqa_s": t_gqa, "mha_s": t_mha, "same_kv_s": t_same,
            "expansion": expansion}


def _elementwise(timer: Timer, repeats: int) -> float:
    """bf16 elementwise bandwidth (SiLU·mul on 8 MB operands, allocating its outputs as eager
    code does): bytes read + written per second, GB/s."""
    import torch
    import torch.nn.functional as F

    n = 4 * 1024 * 1024
    a = torch.randn(n, dtype=torch.bfloat16)
    b = torch.randn(n, dtype=torch.bfloat16)
    m = timer.measure(lambda: F.silu(a) * b, repeats=repeats, warmup=1, flush=False)
    return 5 * n * 2 / m.value(timer.estimator) / GB  # silu: r+w; mul: 2r + w


def achieved_from_probe(rep: dict) -> Optional[dict]:
    """The ``achieved`` section of a probed CPU spec (schema: specs.hardware.Achieved) from a
    probe report; works with older reports (fewer measurements: absent parts stay absent)."""
    cpu = rep.get("cpu") or {}
    pts: dict = {}
    for r in cpu.get("gemm_rows", []) + cpu.get("gemv", []):
        pts.setdefault(r["dtype"], {}).setdefault(int(r["m"]), []).append(float(r["gb_s"]))
    curve_dtypes = {r["dtype"] for r in cpu.get("gemm_rows", [])}
    for r in cpu.get("gemm", []):  # dtypes without a DRAM-streamed curve: cache-resident GEMMs (compute-bound)
        if r["dtype"] not in curve_dtypes and r["m"] >= 16:
            b = {"bf16": 2, "fp16": 2, "fp32": 4}.get(r["dtype"], 2)
            pts.setdefault(r["dtype"], {}).setdefault(int(r["m"]), []).append(r["tflops"] * 1e3 * b / (2.0 * r["m"]))
    curves = {}
    for dt, by_m in pts.items():
        if len(by_m) < 2:
            continue  # one point is no curve (the dtype falls back to the datasheet formula)
        # the ceiling at each M is the best shape measured (small matrices that stream slower pay
        # a fixed cost per call, which the per-operator overhead carries, not the ceiling)
        curve = []
        best_rate = 0.0  # weight GB/s × M ∝ FLOP/s
        for m, xs in sorted(by_m.items()):
            # a GEMM of M rows can always run as GEMMs of fewer rows, so its FLOP rate is at least
            # the best rate measured at smaller M: the ceiling's FLOP rate never falls with M
            best_rate = max(best_rate, max(xs) * m)
            curve.append([float(m), round(float(best_rate / m), 4)])
        curves[dt] = curve
    if not curves:
        return None
    by_bytes: dict = {}
    for r in cpu.get("gemv", []):
        if r["m"] == 1:
            by_bytes.setdefault(r["dtype"], []).append([float(r["k"] * r["n"] * (4 if r["dtype"] == "fp32" else 2)),
                                                        round(float(r["gb_s"]), 4)])
    disp = cpu.get("dispatch", {})
    att = cpu.get("attention") or {}
    out = {"threads": int(cpu.get("threads", 1)),
           "source": f"measured by moecap-sim hw probe on {rep.get('date', '?')} ({cpu.get('estimator', 'median')} "
                     f"of repeats, {cpu.get('threads', 1)} thread(s))",
           "gemm_weight_gb_s_by_rows": curves,
           "gemv_gb_s_by_bytes": {dt: sorted(v) for dt, v in by_bytes.items()},
           "dispatch_us": round(float(disp.get("elementwise_us", 2.0)), 3)}
    if disp.get("bf16_gemm_in_cache_gb_s"):
        out["gemv_in_cache_gb_s"] = round(float(disp["bf16_gemm_in_cache_gb_s"]), 3)
    fixed = [float(disp["bf16_gemm_call_fixed_us"])] if disp.get("bf16_gemm_call_fixed_us") is not None else []
    sizes = sorted(by_bytes.get("bf16", []))
    if len({b for b, _ in sizes}) >= 2:
        # DRAM-streamed GEMVs by size: t = fixed + bytes / rate, the fixed part per call
        import numpy as np

        xs = np.array([b for b, _ in sizes])
        slope, icpt = np.polyfit(xs, xs / (np.array([g for _, g in sizes]) * GB), 1)
        fixed.append(max(0.0, float(icpt)) * 1e6)
    if fixed:
        out["gemm_call_us"] = round(max(fixed), 3)
    if att.get("decode") and att.get("prefill"):
        out["attention_kv_gb_s"] = round(float(att["decode"]["kv_gb_s"]), 4)
        out["attention_tflops"] = round(float(att["prefill"]["tflops"]), 5)
    if att.get("decode_gqa"):
        out["attention_gqa_expansion"] = round(float(att["decode_gqa"]["expansion"]), 3)
    if cpu.get("elementwise_gb_s"):
        out["elementwise_gb_s"] = round(float(cpu["elementwise_gb_s"]), 3)
    return out


def _dispatch(timer: Timer, device: str = "cpu", repeats: int = 5) -> dict:
    """Eager per-op cost of tiny ops (no useful work): µs per op."""
    import torch
    import torch.nn.functional as F

    a = torch.ones(8, device=device)
    b = torch.ones(8, device=device)
    x = torch.ones(1, 16, device=device, dtype=torch.bfloat16 if device == "cpu" else torch.float16)
    w = torch.ones(16, 16, device=device, dtype=x.dtype)
    n = 2000

    def add():
        for _ in range(n):
            torch.add(a, b)

    def lin():
        for _ in range(n):
            F.linear(x, w)

    m1 = timer.measure(add, repeats=repeats, warmup=1, flush=False, busy_threads=1)
    m2 = timer.measure(lin, repeats=repeats, warmup=1, flush=False, busy_threads=1)
    out = {"elementwise_us": m1.value(timer.estimator) / n * 1e6, "linear_us": m2.value(timer.estimator) / n * 1e6}
    if device == "cpu":
        # fixed cost of one realistic bf16 GEMM call: skinny GEMMs against cache-resident weights
        # of 0.25-2 MB, t = fixed + bytes / rate fitted over the sizes
        xs, ys = [], []
        for k, nn in ((256, 512), (512, 512), (512, 1024), (1024, 1024)):
            wt = torch.ones(nn, k, dtype=torch.bfloat16)
            xv = torch.ones(1, k, dtype=torch.bfloat16)
            reps = 200

            def g():
                for _ in range(reps):
                    F.linear(xv, wt)

            mg = timer.measure(g, repeats=repeats, warmup=1, flush=False, busy_threads=1)
            xs.append(k * nn * 2)
            ys.append(mg.value(timer.estimator) / reps)
        import numpy as np

        slope, fixed = np.polyfit(np.array(xs, dtype=float), np.array(ys), 1)
        out["bf16_gemm_call_fixed_us"] = float(max(0.0, fixed) * 1e6)
        out["bf16_gemm_in_cache_gb_s"] = float(1.0 / slope / 1e9) if slope > 0 else None
    return out


def probe_cpu(threads: int, quick: bool = False, tiny: bool = False, log=None, estimator: str = "median") -> dict:
    """CPU measurements; ``tiny`` (tests only) uses small buffers and no contention checks."""
    import torch

    torch.set_num_threads(threads)
    timer = Timer("cpu", threads=threads, check_others=not tiny, max_wait_s=8.0 if quick else 20.0, estimator=estimator,
                  max_total_wait_s=15.0 if quick else 120.0)
    log = log or (lambda msg: None)
    llc = llc_bytes()
    reps = 2 if tiny else (3 if quick else 7)
    if tiny:
        big = gemv_total = 16 * 1024 ** 2
    elif quick:
        big, gemv_total = max(2 * llc, 128 * 1024 ** 2), max(2 * llc, 256 * 1024 ** 2)
    else:
        big, gemv_total = max(4 * llc, 256 * 1024 ** 2), max(2 * llc, 256 * 1024 ** 2)
    res: dict = {"threads": threads, "estimator": estimator}
    with torch.inference_mode():
        log("probe: memory bandwidth (STREAM copy/triad/read)")
        res["stream"] = _stream(timer, big, reps)
        log("probe: per-operator dispatch overhead")
        res["dispatch"] = _dispatch(timer, repeats=reps)
        if tiny:
            gemv_shapes, rows, gemm_shapes = [(256, 256)], (1,), [(512, 256, 256)]
            curve_shapes, curve_rows, curve_dtypes = [(256, 512)], (1, 16, 128), ["bf16"]
        elif quick:
            gemv_shapes, rows = [(2048, 1024), (4096, 4096)], (1,)
            gemm_shapes = [(2048, 2048, 2048)]
            curve_shapes, curve_rows, curve_dtypes = [(2048, 4096)], (1, 4, 16, 64, 256, 1024), ["bf16"]
        else:
            gemv_shapes = [(2048, 1024), (1024, 2048), (2048, 2816), (4096, 4096), (4096, 14336), (14336, 4096)]
            rows = (1,)
            gemm_shapes = [(512, 2048, 1024), (1024, 2048, 4096), (1024, 4096, 4096), (2048, 2048, 2048),
                           (2048, 4096, 4096)]
            curve_shapes, curve_rows = [(2048, 4096), (4096, 14336)], (1, 4, 16, 64, 256, 1024)
            curve_dtypes = ["bf16", "fp32"]
        dtypes = ["bf16", "fp32"]
        res["gemv"] = []
        res["gemm"] = []
        res["gemm_rows"] = []
        for dt in curve_dtypes:
            log(f"probe: {dt} weight GEMMs against DRAM-streamed weights, rows {', '.join(map(str, curve_rows))}")
            res["gemm_rows"] += _gemm_rows(timer, dt, curve_shapes, curve_rows, gemv_total, reps)
        for dt in dtypes:
            log(f"probe: {dt} GEMV by matrix size and large GEMMs")
            res["gemv"] += _gemv(timer, dt, gemv_shapes, rows, gemv_total, reps)
            res["gemm"] += _gemm(timer, dt, gemm_shapes, reps)
        # fp16 only where the CPU multiplies it natively faster than fp32 (AMX-FP16 / AVX512-FP16)
        fp16 = _gemm(timer, "fp16", gemm_shapes[-1:], reps)
        fp32_best = max(r["tflops"] for r in res["gemm"] if r["dtype"] == "fp32")
        if fp16 and fp16[0]["tflops"] > 1.2 * fp32_best:
            res["gemm"] += _gemm(timer, "fp16", gemm_shapes[:-1], reps) + fp16
        log("probe: attention kernel (SDPA decode over a DRAM-resident KV cache, causal prefill)")
        res["attention"] = _attention(timer, reps, quick or tiny, tiny)
        log("probe: bf16 elementwise bandwidth")
        res["elementwise_gb_s"] = _elementwise(timer, reps)
    res["rejected_samples"] = timer.total_rejected
    res["rejections"] = dict(timer.reasons)
    res["canary_best_ms"] = round(timer.canary.best * 1e3, 3) if timer.canary else None
    res["peak_tflops"] = {}
    allg = res["gemm"] + res["gemm_rows"]
    for dt in {r["dtype"] for r in allg}:
        big_rows = [r["tflops"] for r in allg if r["dtype"] == dt and r["m"] >= 512]
        res["peak_tflops"][dt] = max(big_rows or [r["tflops"] for r in allg if r["dtype"] == dt])
    res["gemv_bf16_gb_s_median"] = statistics.median(r["gb_s"] for r in res["gemv"] if r["dtype"] == "bf16")
    return res


# ---------------------------------------------------------------------------------------------
# GPU measurements (CUDA)
# ---------------------------------------------------------------------------------------------

def probe_gpu(quick: bool = False, estimator: str = "median") -> dict:  # pragma: no cover - needs a CUDA GPU
    import torch

    dev = "cuda"
    timer = Timer(dev, estimator=estimator)
    props = torch.cuda.get_device_properties(0)
    reps = 5 if quick else 10
    res: dict = {"name": props.name, "memory_gb": props.total_memory / GB, "sm_count": props.multi_processor_count,
                 "capability": f"{props.major}.{props.minor}", "count": torch.cuda.device_count()}
    n = (1 << 28) if quick else (1 << 29)  # 1 or 2 GiB fp32
    a = torch.ones(n, device=dev)
    b = torch.empty_like(a)
    m = timer.measure(lambda: b.copy_(a), repeats=reps, warmup=2)
    res["hbm_copy_gb_s"] = 2 * n * 4 / m.value(timer.estimator) / GB
    m = timer.measure(lambda: a.sum(), repeats=reps, warmup=2)
    res["hbm_read_gb_s"] = n * 4 / m.value(timer.estimator) / GB
    del a, b
    res["gemm"] = []
    shapes = [(8192, 8192, 8192), (4096, 4096, 4096)] if not quick else [(8192, 8192, 8192)]
    for dt in ("bf16", "fp16", "fp32"):
        t = getattr(torch, _DTYPES[dt])
        for (mm, k, nn) in shapes:
            x = torch.randn(mm, k, device=dev, dtype=t)
            w = torch.randn(nn, k, device=dev, dtype=t)
            torch.backends.cuda.matmul.allow_tf32 = False
            mt = timer.measure(lambda: torch.nn.functional.linear(x, w), repeats=reps, warmup=3)
            res["gemm"].append({"dtype": dt, "m": mm, "k": k, "n": nn, "tflops": 2 * mm * k * nn / mt.value(timer.estimator) / 1e12})
            if dt == "fp32":
                torch.backends.cuda.matmul.allow_tf32 = True
                mt = timer.measure(lambda: torch.nn.functional.linear(x, w), repeats=reps, warmup=3)
                res["gemm"].append({"dtype": "tf32", "m": mm, "k": k, "n": nn,
                                    "tflops": 2 * mm * k * nn / mt.value(timer.estimator) / 1e12})
                torch.backends.cuda.matmul.allow_tf32 = False
    if props.major * 10 + props.minor >= 89 and hasattr(torch, "_scaled_mm"):
        try:
            mm = k = nn = 8192
            x = torch.randn(mm, k, device=dev).to(torch.float8_e4m3fn)
            w = torch.randn(nn, k, device=dev).to(torch.float8_e4m3fn)
            one = torch.ones((), device=dev)
            mt = timer.measure(lambda: torch._scaled_mm(x, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16),
                               repeats=reps, warmup=3)
            res["gemm"].append({"dtype": "fp8", "m": mm, "k": k, "n": nn, "tflops": 2 * mm * k * nn / mt.value(timer.estimator) / 1e12})
        except Exception as exc:  # noqa: BLE001 - fp8 GEMM is optional
            res["fp8_error"] = str(exc)[:200]
    res["peak_tflops"] = {}
    for r in res["gemm"]:
        res["peak_tflops"][r["dtype"]] = max(res["peak_tflops"].get(r["dtype"], 0.0), r["tflops"])
    # skinny decode shapes: GB/s of bf16 weights
    res["gemv"] = []
    for k, nn in ((4096, 14336), (8192, 8192)):
        ws = [torch.randn(nn, k, device=dev, dtype=torch.bfloat16) for _ in range(8)]
        for rows in (1, 16):
            x = torch.randn(rows, k, device=dev, dtype=torch.bfloat16)

            def f():
                for w in ws:
                    torch.nn.functional.linear(x, w)

            mt = timer.measure(f, repeats=reps, warmup=2)
            res["gemv"].append({"dtype": "bf16", "m": rows, "k": k, "n": nn, "gb_s": 8 * k * nn * 2 / mt.value(timer.estimator) / GB})
        del ws
    # launch overhead: many tiny kernels enqueued back to back, then one sync
    s = torch.ones(8, device=dev)
    count = 2000

    def launches():
        for _ in range(count):
            s.add_(1.0)

    mt = timer.measure(launches, repeats=reps, warmup=1)
    res["launch_us"] = mt.value(timer.estimator) / count * 1e6
    # host <-> device (pinned)
    size = (1 << 28) if quick else (1 << 30)
    h = torch.empty(size, dtype=torch.uint8, pin_memory=True)
    d = torch.empty(size, dtype=torch.uint8, device=dev)
    mt = timer.measure(lambda: d.copy_(h, non_blocking=True), repeats=reps, warmup=1)
    res["h2d_gb_s"] = size / mt.value(timer.estimator) / GB
    mt = timer.measure(lambda: h.copy_(d, non_blocking=True), repeats=reps, warmup=1)
    res["d2h_gb_s"] = size / mt.value(timer.estimator) / GB
    hs = torch.empty(64, dtype=torch.uint8, pin_memory=True)
    ds = torch.empty(64, dtype=torch.uint8, device=dev)
    mt = timer.measure(lambda: ds.copy_(hs, non_blocking=True), repeats=reps, warmup=3)
    res["h2d_latency_us"] = mt.value(timer.estimator) * 1e6
    try:
        import subprocess

        out = subprocess.run(["nvidia-smi", "--query-gpu=power.limit", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout.strip().splitlines()
        res["power_limit_w"] = float(out[0]) if out else None
    except Exception:  # noqa: BLE001
        res["power_limit_w"] = None
    return res


# ---------------------------------------------------------------------------------------------
# probe + spec files
# ---------------------------------------------------------------------------------------------

def probe_machine(threads: Optional[int] = None, quick: bool = False, gpu: Optional[bool] = None,
                  name: Optional[str] = None, tiny: bool = False, log=None, estimator: str = "median") -> dict:
    """Measure this machine; returns the probe report (a JSON-able dict)."""
    try:
        import torch
    except ImportError:
        raise UserError("hw probe needs torch: pip install 'moecap-sim[validate]' (torch==2.13.0)") from None
    from moecap_sim.validation.timing import tune_allocator

    tune_allocator()
    cores = available_cores()
    threads = cores if threads is None else threads
    if threads < 1 or threads > cores:
        raise UserError(f"--threads must be between 1 and the {cores} cores available to this process, got {threads}")
    info = machine_info(threads)
    rep = {"format": "moecap-probe/1", "date": _dt.datetime.now().isoformat(timespec="seconds"), "quick": quick,
           "machine": info}
    rep["cpu"] = probe_cpu(threads, quick, tiny=tiny, log=log, estimator=estimator)
    use_gpu = torch.cuda.is_available() if gpu is None else gpu
    if use_gpu:
        if not torch.cuda.is_available():
            raise UserError("--gpu given but torch sees no CUDA device")
        rep["gpu"] = probe_gpu(quick, estimator=estimator)
    base = slug(info["cpu_model"]) + f"-{threads}t"
    if use_gpu:
        base = slug(rep["gpu"]["name"]) + "-probed"
    rep["name"] = name or base
    return rep


def _fmt_shapes(rows: list, key: str) -> str:
    return "; ".join(f"{r['dtype']} {r['m']}x{r['k']}x{r['n']}: {r[key]:.3g}" for r in rows)


def cpu_device_dict(rep: dict, tdp_w: Optional[float] = None) -> dict:
    info, cpu = rep["machine"], rep["cpu"]
    threads = cpu["threads"]
    vendor = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(info["cpu_vendor"], info["cpu_vendor"].lower() or "unknown")
    arm = any(i in info["isa"] for i in ("neon", "sve"))
    tdp = tdp_w or 8.0 * threads
    ghz = round((info["cpu_mhz"] or 2000.0) / 1000.0, 3)
    fpc = info["flops_per_cycle"]
    derived, peaks, raised = derived_peaks(rep)
    implied = ", ".join(f"{dt} {cpu['peak_tflops'][dt]:.3f} TFLOPS = {cpu['peak_tflops'][dt] / derived[dt]:.2f} of the "
                        f"ISA-derived {derived[dt]:.3f}" for dt in sorted(cpu["peak_tflops"]) if dt in derived)
    notes = (f"Probed by `moecap-sim hw probe` on {rep['date']} with {threads} thread(s) of {info['cores_available']} "
             f"available ({info['cpu_model']}); torch {info['torch']}. Compute peaks are theoretical (ISA x clock); "
             f"memory bandwidth is the measured STREAM triad. Best measured large GEMM: {implied}. "
             f"Dispatch overhead per eager op: {cpu['dispatch']['elementwise_us']:.1f} us elementwise, "
             f"{cpu['dispatch']['linear_us']:.1f} us tiny linear, "
             f"{cpu['dispatch'].get('bf16_gemm_call_fixed_us', float('nan')):.0f} us fixed per bf16 GEMM call "
             f"(cache-resident 0.25-2 MB weights). Skinny bf16 GEMV (weights from DRAM): "
             f"median {cpu['gemv_bf16_gb_s_median']:.1f} GB/s = {cpu['gemv_bf16_gb_s_median'] / cpu['stream']['triad_gb_s']:.2f} "
             f"of the triad bandwidth. Samples rejected for preemption (shared CPU): {cpu['rejected_samples']}.")
    srcs = {
        "memory.bandwidth_gb_s": (f"measured: STREAM-style triad a=b+s*c, {cpu['stream']['buffer_mb']} MB fp32 arrays, "
                                  f"{threads} thread(s), {cpu.get('estimator', 'median')} of repeats (copy {cpu['stream']['copy_gb_s']:.1f}, "
                                  f"read {cpu['stream']['read_gb_s']:.1f} GB/s)"),
        "compute.dense_tflops": (f"derived: {threads} core(s) x FLOP/cycle/core x {ghz} GHz reported clock, FLOP/cycle "
                                 f"from the ISA flags ({', '.join(f'{k} {v}' for k, v in sorted(fpc.items()))})" +
                                 (f"; raised to the measured GEMM where that is faster ({', '.join(raised)}: the "
                                  f"reported clock is below the clock the cores ran at, e.g. turbo)" if raised else "") +
                                 "; measured large GEMMs (torch F.linear): " +
                                 _fmt_shapes([r for r in cpu["gemm"] + cpu.get("gemm_rows", []) if r["m"] >= 512],
                                             "tflops") + " TFLOPS"),
        "achieved": "measured: moecap-sim hw probe (weight GEMMs by rows against DRAM-streamed weights, GEMV by size, "
                    "SDPA attention, bf16 elementwise, dispatch); see the probe JSON",
        "cpu": f"/proc/cpuinfo and sched_getaffinity: {threads} thread(s) used; clock = nominal MHz reported",
        "power.tdp_w": ("given with --tdp-w" if tdp_w else
                        f"estimate: 8 W per core x {threads} core(s); not measured (no RAPL in most VMs)?"),
    }
    return {
        "name": f"{rep['name']}-cpu", "display_name": f"{info['cpu_model']} ({threads} thread(s), probed)",
        "kind": "cpu", "vendor": vendor, "efficiency_class": "cpu-arm" if arm else "cpu-x86",
        "memory": {"type": "DRAM (measured)", "bandwidth_gb_s": round(cpu["stream"]["triad_gb_s"], 2)},
        "compute": {"dense_tflops": peaks},
        "cpu": {"cores": threads, "base_ghz": ghz, "isa": info["isa"]},
        "power": {"tdp_w": tdp}, "measured": True,
        **({"achieved": achieved_from_probe(rep)} if achieved_from_probe(rep) else {}),
        "notes": notes, "sources": srcs,
    }


def derived_peaks(rep: dict) -> tuple[dict, dict, list]:
    """(ISA-derived peaks, spec peaks, dtypes raised): ``threads × FLOP/cycle × reported clock``
    per dtype, never below a GEMM the probe measured — a reported clock in a VM is often the base
    clock while the cores run at turbo, and a peak below a measurement is wrong, not the GEMM."""
    info, cpu = rep["machine"], rep["cpu"]
    threads = cpu["threads"]
    ghz = round((info["cpu_mhz"] or 2000.0) / 1000.0, 3)
    derived = {dt: round(threads * n * ghz / 1000.0, 4) for dt, n in sorted(info["flops_per_cycle"].items())}
    peaks = dict(derived)
    raised = []
    for dt, v in cpu.get("peak_tflops", {}).items():
        if dt in peaks and v > peaks[dt]:
            peaks[dt] = round(v, 4)
            raised.append(f"{dt} {derived[dt]:.3f} -> {v:.3f}")
    return derived, peaks, raised


def gpu_device_dict(rep: dict) -> dict:  # pragma: no cover - needs a CUDA GPU
    g = rep["gpu"]
    name = g["name"].lower()
    cls = "amd-instinct" if "mi" in name and "instinct" in name else \
        ("nvidia-consumer" if "rtx" in name or "geforce" in name else "nvidia-datacenter")
    peaks = {dt: round(v, 2) for dt, v in sorted(g["peak_tflops"].items())}
    d = {
        "name": f"{rep['name']}-gpu", "display_name": f"{g['name']} (probed)", "kind": "gpu",
        "vendor": "nvidia" if cls.startswith("nvidia") else "amd", "efficiency_class": cls,
        "memory": {"type": "HBM/GDDR (measured)", "capacity_gb": round(g["memory_gb"], 1),
                   "bandwidth_gb_s": round(g["hbm_copy_gb_s"], 1)},
        "compute": {"dense_tflops": peaks},
        "host_link": {"name": "PCIe (measured, pinned)", "bandwidth_gb_s": round(g["h2d_gb_s"], 2),
                      "latency_us": round(max(1.0, g["h2d_latency_us"]), 1)},
        "power": {"tdp_w": g.get("power_limit_w") or 300.0}, "measured": True,
        "notes": (f"Probed by `moecap-sim hw probe` on {rep['date']}: achieved rates, not datasheet peaks. "
                  f"Kernel launch (async, back to back) {g['launch_us']:.2f} us; d2h {g['d2h_gb_s']:.1f} GB/s."),
        "sources": {
            "memory.bandwidth_gb_s": "measured: device-to-device copy of 1-2 GiB, read+write bytes, median",
            "memory.capacity_gb": "torch.cuda.get_device_properties().total_memory",
            "compute.dense_tflops": "measured: large GEMM (torch F.linear, 8192^3 / 4096^3) per dtype, " +
                                    _fmt_shapes(g["gemm"], "tflops"),
            "host_link": "measured: pinned host-to-device copy bandwidth and a 64-byte copy latency",
            "power.tdp_w": "nvidia-smi power.limit" if g.get("power_limit_w") else "default 300 W (not measured)?",
        },
    }
    return d


def system_dict(rep: dict, device_files: dict, purchase_usd: Optional[float] = None,
                usd_per_hour: Optional[float] = None) -> dict:
    info = rep["machine"]
    cpu = rep["cpu"]
    today = _dt.date.today().strftime("%Y-%m")
    d = {
        "name": rep["name"], "display_name": f"{info['cpu_model']} x{cpu['threads']} thread(s)" +
                                            (f" + {rep['gpu']['name']}" if "gpu" in rep else "") + " (probed)",
        "host": {"cpu": {"device": device_files["cpu"], "sockets": 1},
                 "dram_gb": info["dram_gb"], "dram_bandwidth_gb_s": round(cpu["stream"]["triad_gb_s"], 2)},
        "pricing": {"date": today, **({"purchase_usd": purchase_usd} if purchase_usd else {}),
                    **({"on_demand_usd_per_hour": usd_per_hour} if usd_per_hour else {})},
        "measured": True,
        "notes": f"Written by `moecap-sim hw probe` on {rep['date']}; see the device files and {rep['name']}-probe.json.",
        "sources": {"host.dram_gb": "/proc/meminfo MemTotal",
                    "host.dram_bandwidth_gb_s": "measured: STREAM-style triad (see the CPU device file)",
                    **({"pricing.purchase_usd": "given by the user (hw probe --purchase-usd)"} if purchase_usd else {}),
                    **({"pricing.on_demand_usd_per_hour": "given by the user (hw probe --usd-per-hour)"}
                       if usd_per_hour else {})},
    }
    if "gpu" in rep:  # pragma: no cover - needs a CUDA GPU
        d["accelerators"] = {"device": device_files["gpu"], "count": 1}
    return d


def write_specs(rep: dict, output: Optional[str] = None, tdp_w: Optional[float] = None,
                purchase_usd: Optional[float] = None, usd_per_hour: Optional[float] = None) -> dict:
    """Write ``<name>-system.yaml``, ``<name>-cpu.yaml`` (and ``<name>-gpu.yaml``) and the raw
    ``<name>-probe.json``.  ``output`` is a directory, or the system file path (``.yaml``); the
    device files go beside it, referenced relatively so the set can be moved together.  The
    written files are re-loaded through the catalog schema before returning."""
    import yaml

    from moecap_sim.catalog import load_spec_file
    from moecap_sim.specs.hardware import DeviceSpec, SystemSpec

    name = rep["name"]
    if output and output.endswith((".yaml", ".yml")):
        sys_path = Path(output)
        folder = sys_path.parent
        stem = sys_path.stem
    else:
        folder = Path(output or ".")
        stem = name
        sys_path = folder / f"{name}-system.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    files = {"cpu": f"{stem}-cpu.yaml"}
    dev = {"cpu": cpu_device_dict(rep, tdp_w)}
    if "gpu" in rep:  # pragma: no cover - needs a CUDA GPU
        files["gpu"] = f"{stem}-gpu.yaml"
        dev["gpu"] = gpu_device_dict(rep)
    header = f"# Written by `moecap-sim hw probe` ({rep['date']}). Measured figures: see 'sources' and 'notes'.\n"
    for k, fname in files.items():
        (folder / fname).write_text(header + yaml.safe_dump(dev[k], sort_keys=False, width=120))
    sysd = system_dict(rep, files, purchase_usd, usd_per_hour)
    sys_path.write_text(header + yaml.safe_dump(sysd, sort_keys=False, width=120))
    probe_path = folder / f"{stem}-probe.json"
    probe_path.write_text(json.dumps(rep, indent=1, default=float))
    for k, fname in files.items():
        load_spec_file(DeviceSpec, folder / fname)
    load_spec_file(SystemSpec, sys_path)
    return {"system": str(sys_path), **{k: str(folder / f) for k, f in files.items()}, "report": str(probe_path)}


def summary_rows(rep: dict) -> list[list]:
    cpu = rep["cpu"]
    rows = [["CPU", rep["machine"]["cpu_model"]], ["threads used", cpu["threads"]],
            ["STREAM triad / copy / read GB/s", f"{cpu['stream']['triad_gb_s']:.1f} / {cpu['stream']['copy_gb_s']:.1f} / "
                                                f"{cpu['stream']['read_gb_s']:.1f}"],
            ["skinny bf16 GEMV GB/s (median)", f"{cpu['gemv_bf16_gb_s_median']:.1f}"]]
    derived, _, _ = derived_peaks(rep)
    for dt, v in sorted(cpu["peak_tflops"].items()):
        peak = f" ({v / derived[dt]:.0%} of the ISA-derived {derived[dt]:.3f})" if dt in derived else ""
        rows.append([f"best large GEMM {dt} TFLOPS", f"{v:.3f}{peak}"])
    att = cpu.get("attention") or {}
    if att:
        rows.append(["attention: decode KV GB/s / prefill TFLOPS",
                     f"{att['decode']['kv_gb_s']:.2f} / {att['prefill']['tflops']:.3f}"])
    if cpu.get("elementwise_gb_s"):
        rows.append(["bf16 elementwise GB/s", f"{cpu['elementwise_gb_s']:.1f}"])
    rows.append(["dispatch us (elementwise / tiny linear / bf16 GEMM call)",
                 f"{cpu['dispatch']['elementwise_us']:.1f} / {cpu['dispatch']['linear_us']:.1f} / "
                 f"{cpu['dispatch'].get('bf16_gemm_call_fixed_us', float('nan')):.0f}"])
    rows.append(["samples rejected (preempted)", cpu["rejected_samples"]])
    if "gpu" in rep:  # pragma: no cover
        g = rep["gpu"]
        rows += [["GPU", g["name"]], ["HBM copy GB/s", f"{g['hbm_copy_gb_s']:.0f}"],
                 ["GPU GEMM TFLOPS", ", ".join(f"{k} {v:.0f}" for k, v in g["peak_tflops"].items())],
                 ["launch us", f"{g['launch_us']:.2f}"], ["H2D / D2H GB/s", f"{g['h2d_gb_s']:.1f} / {g['d2h_gb_s']:.1f}"]]
    return rows


