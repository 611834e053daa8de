"""plan (capacity search) and radar (CAP diagram)."""

import json

import pytest

from moecap_sim.cli import main
from moecap_sim.errors import UserError
from moecap_sim.planner import plan
from moecap_sim.radar import parse_case, radar


def test_plan_meets_slo_and_is_sorted_by_cost():
    r = plan("qwen3-30b-a3b", rate=4, input_len=512, output_len=128, slo_tpot_s=0.05, slo_ttft_s=1.0,
             systems_list=["l4x1", "l4x4", "h100x1", "h100x8", "a100x8", "rtx4090x1"], precisions=["native", "fp8"])
    cands = r["candidates"]
    assert cands, r["rejected_examples"]
    costs = [c["usd_per_hour_total"] for c in cands]
    assert costs == sorted(costs)
    for c in cands:
        assert c["tpot_s"] <= 0.05 and c["ttft_s"] <= 1.0
        assert c["systems_needed"] * c["output_tokens_per_s"] >= 4 * 128 * 0.999


def test_tighter_slo_never_cheaper():
    kw = dict(rate=2, input_len=512, output_len=128, systems_list=["l4x4", "h100x1", "h100x8"], precisions=["native"])
    loose = plan("mixtral-8x7b", slo_tpot_s=0.2, **kw)["candidates"][0]["usd_per_hour_total"]
    tight = plan("mixtral-8x7b", slo_tpot_s=0.02, **kw)["candidates"][0]["usd_per_hour_total"]
    assert tight >= loose


def test_plan_needs_a_load():
    with pytest.raises(UserError, match="--rate"):
        plan("qwen3-30b-a3b")


def test_radar_classes_and_plot(tmp_path):
    out = tmp_path / "radar.png"
    r = radar([parse_case("qwen3-30b-a3b@a6000x4:engine=sglang,batch=8"),
               parse_case("qwen3-30b-a3b@a6000x4:engine=sglang,precision=int4,batch=8"),
               parse_case("qwen3-30b-a3b@xeon6454s-2s-rtx4090:engine=moe-infinity,batch=8")], out=str(out))
    assert out.stat().st_size > 10_000
    by = {c["label"]: c for c in r["cases"]}
    moe_inf = next(c for c in r["cases"] if "moe-infinity" in c["label"])
    assert moe_inf["tradeoff_class"] == "CA"  # offloading keeps accuracy, gives up performance
    for c in r["cases"]:
        assert all(v is None or 20 <= v <= 100 for v in c["radius"].values())


def test_radar_case_errors():
    with pytest.raises(UserError, match="MODEL@SYSTEM"):
        parse_case("qwen3-30b-a3b")
    with pytest.raises(UserError, match="unknown option"):
        parse_case("qwen3-30b-a3b@h100x1:color=red")


def test_cli_plan_json(capsys):
    rc = main(["plan", "--model", "olmoe-1b-7b", "--rate", "2", "--slo-tpot", "0.05", "--system", "l4x1",
               "--system", "h100x1", "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["candidates"]
