"""The probe-driven CPU cost model: measured curves reach the roofline through Unit.times, peaks
are never below a measured GEMM, calibration files are physically bounded, and bad arguments
exit 2 before any work."""

import json
import time

import pytest

from moecap_sim.perf.achieved import AttentionFactor, gemm_rows, op_times, weight_gb_s
from moecap_sim.perf.efficiency import Efficiency, load_calibration
from moecap_sim.specs.hardware import Achieved

CURVE = [[1, 10.0], [4, 10.0], [16, 6.0], [64, 2.5], [256, 0.8], [1024, 0.2]]


def _ach(**kw):
    d = dict(threads=1, source="test", gemm_weight_gb_s_by_rows={"bf16": CURVE}, attention_kv_gb_s=2.0,
             attention_tflops=0.05, elementwise_gb_s=12.0, dispatch_us=2.0)
    d.update(kw)
    return Achieved(**d)


def test_rows_follow_from_intensity():
    w = 2048 * 4096 * 2.0  # bf16 weight bytes
    assert gemm_rows(2.0 * 1 * 2048 * 4096, w, "bf16") == pytest.approx(1.0)
    assert gemm_rows(2.0 * 64 * 2048 * 4096, w, "bf16") == pytest.approx(64.0)
    assert gemm_rows(2.0 * 64 * 2048 * 4096, 2 * w, "fp32") == pytest.approx(64.0)


def test_weight_gemm_time_follows_the_measured_curve():
    ach, eff = _ach(), Efficiency(bw=1.0, flop=1.0)
    w = 16e6
    for m, gbs in CURVE:
        t_mem, t_cmp = op_times(ach, eff, w, 2.0 * m * w / 2.0, "bf16")
        assert t_mem + t_cmp == pytest.approx(w / (gbs * 1e9), rel=1e-6)  # reproduces the probe
        assert t_mem == pytest.approx(w / 10e9)  # the streaming part is the GEMV end
    # beyond the largest measured M the compute part grows linearly with M
    assert weight_gb_s(CURVE, 4096) == pytest.approx(0.05)
    # efficiencies scale each part: halving bw doubles the streaming time only
    t_mem, t_cmp = op_times(ach, Efficiency(bw=0.5, flop=1.0), w, 2.0 * 64 * w / 2.0, "bf16")
    assert t_mem == pytest.approx(2 * w / 10e9)


def test_attention_and_elementwise_use_their_own_ceilings():
    ach, eff = _ach(), Efficiency(bw=1.0, flop=1.0, attention=AttentionFactor(1.0))
    t_mem, t_cmp = op_times(ach, eff, 1e9, 1e10, "bf16", flop_eff=eff.attention)
    assert t_mem == pytest.approx(0.5) and t_cmp == pytest.approx(0.2)
    # the same numbers without the attention marker are a weight GEMM, not attention
    assert op_times(ach, eff, 1e9, 1e10, "bf16", flop_eff=1.0) != (t_mem, t_cmp)
    assert op_times(ach, eff, 1.2e9, 0.0, "bf16") == (pytest.approx(0.1), 0.0)
    # what the probe did not measure falls back to the datasheet formula (None)
    assert op_times(ach, eff, 1e9, 1e10, "fp32") is None
    assert op_times(_ach(attention_kv_gb_s=None), eff, 1e9, 1e10, "bf16", flop_eff=eff.attention) is None


def test_probed_unit_uses_measured_figures_and_catalog_units_do_not():
    from moecap_sim.catalog.hardware import devices
    from moecap_sim.perf.step import make_unit

    cat = devices().get("epyc-9654")
    u = make_unit(cat)
    assert u.achieved is None and u.eff.bw == 0.70  # datasheet + documented prior
    u = make_unit(cat.model_copy(update={"achieved": _ach()}))
    assert u.achieved is not None and u.eff.bw == 1.0 and u.eff.kernel_launch_us == 2.0
    assert isinstance(u.eff.attention, AttentionFactor)
    assert u.roofline(16e6, 2.0 * 16e6 / 2.0, "bf16") == pytest.approx(16e6 / 10e9)  # GEMV at the measured 10 GB/s


def test_derived_peak_never_below_a_measured_gemm():
    from moecap_sim.validation.probe import derived_peaks

    rep = {"machine": {"cpu_mhz": 2600.0, "flops_per_cycle": {"bf16": 64, "fp32": 32}},
           "cpu": {"threads": 1, "peak_tflops": {"bf16": 0.214, "fp32": 0.075}}}
    derived, peaks, raised = derived_peaks(rep)
    assert derived["bf16"] == pytest.approx(0.1664, rel=1e-3)
    assert peaks["bf16"] == pytest.approx(0.214) and len(raised) == 1  # raised to the measurement
    assert peaks["fp32"] == derived["fp32"]  # a measurement below the derived peak leaves it


@pytest.mark.parametrize("field,value,needle", [
    ("flop", 1.5, "0 < flop <= 1"), ("attention", 0.0, "0 < attention <= 1"),
    ("kernel_launch_us", -3.0, "overhead"), ("bw", "fast", "must be a number")])
def test_load_calibration_rejects_unphysical_factors(tmp_path, field, value, needle):
    from moecap_sim.errors import SpecError

    p = tmp_path / "cal.json"
    p.write_text(json.dumps({"efficiency": {"mybox-cpu": {field: value}}}))
    with pytest.raises(SpecError) as e:
        load_calibration(str(p))
    msg = str(e.value)
    assert str(p) in msg and f"efficiency.mybox-cpu.{field}" in msg and repr(value) in msg and needle in msg


def test_fit_that_hits_a_bound_is_reported():
    from moecap_sim.validation.calibrate import at_bound_report

    rep = at_bound_report({"bw": 1.0, "flop": 0.5, "attention": 0.001, "kernel_launch_us": 3.0})
    assert {(r["factor"], r["side"]) for r in rep} == {("bw", "upper"), ("attention", "lower")}
    assert all("term" in r["meaning"] or "ceiling" in r["meaning"] for r in rep)


@pytest.mark.parametrize("args,needle", [
    (["validate", "--quick", "--repeats", "0"], "--repeats"),
    (["validate", "--quick", "--threads", "0"], "--threads"),
    (["validate", "--quick", "--threads", "many"], "--threads"),
    (["validate", "--quick", "--warmup", "-1"], "--warmup"),
    (["validate", "--quick", "--hw", "/nonexistent/dir/"], "nonexistent"),
    (["hw", "probe", "--tdp-w", "-5"], "--tdp-w"),
    (["hw", "probe", "--threads", "0"], "--threads"),
])
def test_bad_arguments_exit_2_before_any_work(args, needle, capsys, tmp_path):
    from moecap_sim.cli import main

    t0 = time.time()
    rc = main(args + (["-o", str(tmp_path / "out")]))
    assert rc == 2
    assert needle in capsys.readouterr().err
    assert time.time() - t0 < 10  # rejected before probing or measuring
    assert not (tmp_path / "out").exists()


def test_hw_folder_resolves_to_its_system_spec(tmp_path):
    from moecap_sim.errors import UserError
    from moecap_sim.validation.runner import resolve_spec_path

    (tmp_path / "box-system.yaml").write_text("x")
    assert resolve_spec_path(str(tmp_path)) == str(tmp_path / "box-system.yaml")
    (tmp_path / "other-system.yaml").write_text("x")
    with pytest.raises(UserError, match="several"):
        resolve_spec_path(str(tmp_path))


def test_missing_traces_fall_back_to_the_shipped_profile(tmp_path):
    import numpy as np

    from moecap_sim.validation.routing import load_profile_routing
    from moecap_sim.validation.runner import ValidateConfig, routing_mode

    cfg = ValidateConfig(traces_dir=None)
    import moecap_sim.validation.routing as routing

    orig = routing.default_traces_dir
    try:
        routing.default_traces_dir = lambda: tmp_path  # an install without the upstream traces
        assert routing_mode("olmoe-1b-7b", cfg) == "profile"
        assert routing_mode("deepseek-v2-lite", cfg) == "router"
    finally:
        routing.default_traces_dir = orig
    r = load_profile_routing("olmoe-1b-7b", 2)
    ex = r.decode_batch(16, 0)
    assert ex.shape == (16, 2, 8)
    assert all(len(set(row)) == 8 for row in ex[:, 0, :])  # top-k distinct experts per token
    assert 8 < len(np.unique(ex[:, 0, :])) <= 64
    assert "traces/profiles/olmoe-1b-7b.json" in r.source


def _recorded_amd_spec(tmp_path, expansion):
    """The committed 1-thread AMD EPYC probe with the GQA expansion figure set to ``expansion``
    (None: no figure, as a probe without the GQA step leaves it)."""
    import re
    import shutil
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "validation" / "amd-epyc-2c" / "amd-epyc-1t" / "hw"
    dst = tmp_path / f"hw-{expansion}"
    shutil.copytree(src, dst)
    cpu = dst / "amd-epyc-1t-cpu.yaml"
    text = re.sub(r"\n  attention_gqa_expansion: [0-9.]+", "", cpu.read_text())
    assert "achieved:\n  threads: 1\n" in text
    if expansion is not None:
        text = text.replace("achieved:\n  threads: 1\n", f"achieved:\n  threads: 1\n  attention_gqa_expansion: {expansion}\n", 1)
    cpu.write_text(text)
    return str(dst / "amd-epyc-1t-system.yaml")


def _recorded_rows(model):
    import csv
    from pathlib import Path

    path = (Path(__file__).resolve().parents[1] / "validation" / "amd-epyc-2c" / "amd-epyc-1t" / model
            / "measurements.csv")
    return [r for r in csv.DictReader(path.open()) if r["phase"] == "decode"]


def _op_ms(pred, name):
    return dict(kv.split("=") for kv in pred["pred_ops"].split(";")).get(name)


def test_measured_gqa_expansion_charges_each_query_head_its_kv_pass(tmp_path):
    """Mixtral (32 query heads over 8 KV heads): a probe that measured expansion e charges
    1 + 3e passes over the KV cache in decode; an MHA model (OLMoE) is untouched; on the recorded
    AMD run the measured figure (0.9) brings Mixtral's decode error down."""
    from moecap_sim.validation.compare import predict_rows

    mixtral, olmoe = _recorded_rows("mixtral-8x7b"), _recorded_rows("olmoe-1b-7b")
    base = _recorded_amd_spec(tmp_path, None)
    zero, half, one, measured = (_recorded_amd_spec(tmp_path, e) for e in (0.0, 0.5, 1.0, 0.9))
    row = next(r for r in mixtral if int(r["seqs"]) >= 16 and float(r["context"]) >= 1024)
    a0, a_half, a1 = (float(_op_ms(predict_rows([row], s)[0], "attn_core")) for s in (zero, half, one))
    a_base = float(_op_ms(predict_rows([row], base)[0], "attn_core"))
    assert a_base == pytest.approx(a0)  # no measurement: the engine flag (off) decides
    # attention = KV stream × passes + FLOPs: passes 1 → 1 + 3e, so the extra time is linear in e
    # and at e = 1 it is three more KV streams (KV-bound decode: more than doubles the op)
    assert a_half - a0 == pytest.approx(0.5 * (a1 - a0), rel=1e-3)
    assert a1 > 2.5 * a0
    o = [predict_rows(olmoe, s) for s in (zero, one)]
    assert [p["predicted_s"] for p in o[0]] == [p["predicted_s"] for p in o[1]]

    def mape(spec):
        return sum(abs(p["predicted_s"] / float(r["measured_s"]) - 1) for r, p in zip(mixtral, predict_rows(mixtral, spec))) / len(mixtral)

    assert mape(measured) < mape(base) - 0.03  # recorded: 15.5 % -> 10.4 %


def test_probe_report_carries_the_gqa_expansion_into_the_spec():
    import json
    from pathlib import Path

    from moecap_sim.validation.probe import achieved_from_probe

    rep = json.loads((Path(__file__).resolve().parents[1] / "validation" / "amd-epyc-2c" / "amd-epyc-1t" / "hw"
                      / "amd-epyc-1t-probe.json").read_text())
    assert "attention_gqa_expansion" not in (achieved_from_probe(rep) or {})  # recorded before the GQA step
    rep["cpu"]["attention"]["decode_gqa"] = {"q_heads": 16, "kv_heads": 4, "gqa_s": 0.112, "mha_s": 0.119,
                                             "same_kv_s": 0.030, "expansion": 0.921}
    ach = achieved_from_probe(rep)
    assert ach["attention_gqa_expansion"] == 0.921
    assert Achieved(**ach).attention_gqa_expansion == 0.921
