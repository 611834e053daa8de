"""Boundary validation and CLI behaviour beyond exit codes: sorted arrivals, --json on trace
commands, progress callbacks, the API mirror, packaging metadata."""

import json
from pathlib import Path

import pytest

from moecap_sim import api
from moecap_sim.cli import main
from moecap_sim.cli.app import app
from moecap_sim.errors import UserError
from moecap_sim.sim.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]


def test_unsorted_arrivals_are_sorted_on_load_with_a_note(tmp_path):
    rows = [(0.0, 200, 20), (0.2, 300, 30), (0.4, 100, 40), (3.0, 250, 25), (3.1, 120, 10)]
    sorted_csv = tmp_path / "in_order.csv"
    shuffled_csv = tmp_path / "shuffled.csv"
    head = "arrival_s,input_tokens,output_tokens\n"
    sorted_csv.write_text(head + "".join(f"{a},{i},{o}\n" for a, i, o in rows))
    shuffled_csv.write_text(head + "".join(f"{a},{i},{o}\n" for a, i, o in [rows[3], rows[0], rows[4], rows[2], rows[1]]))
    a = simulate("olmoe-1b-7b", "l4x1", workload=str(sorted_csv))
    b = simulate("olmoe-1b-7b", "l4x1", workload=str(shuffled_csv))
    assert "sorted by arrival time" in b["workload"]["source"] and "out of order" not in a["workload"]["source"]
    assert b["ttft_s"] == a["ttft_s"] and b["output_tokens_per_s"] == pytest.approx(a["output_tokens_per_s"])


def test_progress_callbacks_report_the_work(tmp_path):
    seen = []
    simulate("olmoe-1b-7b", "l4x1", workload="poisson", requests=12, rate=4, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (12, 12) and len(seen) == 12
    from moecap_sim.planner import plan

    steps = []
    plan("olmoe-1b-7b", rate=1, systems_list=["l4x1", "l4x4"], precisions=["native"],
         progress=lambda d, t: steps.append((d, t)))
    assert steps[0] == (0, 2) and steps[-1] == (2, 2)


def test_numbers_checked_before_work():
    for kw, flag in ((dict(rate=float("nan")), "--rate"), (dict(rate=float("inf")), "--rate"),
                     (dict(requests=10**7), "--requests"), (dict(seed=-1), "--seed")):
        with pytest.raises(UserError, match=flag):
            simulate("olmoe-1b-7b", "l4x1", workload="poisson", **kw)
    with pytest.raises(UserError, match="--pue"):
        api.predict("olmoe-1b-7b", "l4x1", pue=float("nan"))
    with pytest.raises(UserError, match="fp9"):
        api.plan("olmoe-1b-7b", rate=1, precisions=["fp9"])
    with pytest.raises(UserError, match="--pricing"):
        api.plan("olmoe-1b-7b", rate=1, pricing="free")


def test_hf_config_bounds(tmp_path):
    from moecap_sim.catalog.models import get_model

    base = dict(get_model("mixtral-8x7b").config)
    for key, v, needle in (("num_experts_per_tok", 9, "more experts per token"), ("num_attention_heads", 0, "[1,"),
                           ("num_hidden_layers", 10**9, "num_hidden_layers"), ("hidden_size", 0, "hidden_size")):
        p = tmp_path / f"{key}.json"
        p.write_text(json.dumps(dict(base, **{key: v})))
        with pytest.raises(UserError, match=key) as e:
            api.model_summary(str(p))
        assert needle in str(e.value)


def test_trace_commands_print_json(tmp_path, capsys):
    out = tmp_path / "s.trace.npz"
    assert main(["trace", "synth", "--model", "qwen3-30b-a3b", "--tokens", "32", "--batch", "2", "-o", str(out),
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["synthetic"] is True and d["token_rows"] == 32 and d["out"] == str(out)
    assert main(["trace", "fit", str(out), "-o", str(tmp_path / "p.json"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["num_experts"] == 128 and set(d["expected_distinct_experts"]) == {"1", "8", "32"}
    rec = ROOT / "traces" / "examples" / "moecap-records.jsonl"
    assert main(["trace", "import", str(rec), "--model", "qwen3-30b-a3b", "-o", str(tmp_path / "r.trace.npz"),
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["format"] == "moecap-recorder" and d["forward_passes"] == 9


def test_api_mirrors_every_cli_command():
    import typer.main

    root = typer.main.get_command(app)
    names = []
    for name, cmd in root.commands.items():
        sub = getattr(cmd, "commands", None)
        names += [f"{name}_{s}" for s in sub] if sub else [name]
    wanted = {"models_list": "models_list", "models_show": "model_summary", "hw_list": "hw_list", "hw_show": "hw_show",
              "hw_probe": "hw_probe"}
    for n in names:
        fn = wanted.get(n, n)
        assert callable(getattr(api, fn, None)), f"api.{fn} missing for `moecap-sim {n.replace('_', ' ')}`"
    assert api.predict("olmoe-1b-7b", "l4x1")["fits"] is True


def test_packaging_metadata():
    tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = meta["project"]["dependencies"]
    assert not any(d.startswith(("scikit-learn", "dask")) for d in deps)
    typer_dep = next(d for d in deps if d.startswith("typer"))
    assert "<" in typer_dep
    assert (ROOT / "moecap_sim" / "py.typed").exists()
