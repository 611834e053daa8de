"""CLI contract: exit codes, JSON keys, clear errors without tracebacks."""

import json
import subprocess
import sys

import pytest

from moecap_sim.cli import main
from moecap_sim.predict import CONTRACT_KEYS


def run(args, capsys):
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_predict_json_contract(capsys):
    rc, out, _ = run(["predict", "--model", "mixtral-8x7b", "--hw", "h100x8", "--precision", "fp8", "--dp", "8",
                      "--batch", "max", "--input-len", "1024", "--output-len", "256", "--json"], capsys)
    assert rc == 0
    r = json.loads(out)
    assert set(CONTRACT_KEYS) <= set(r)
    assert r["fits"] is True and r["parallelism"]["dp"] == 8
    assert set(r["cost"]) >= {"usd_per_hour", "usd_per_million_output_tokens", "usd_per_million_tokens", "basis"}
    assert r["routing"]["source"]


def test_does_not_fit_is_exit_0(capsys):
    rc, out, _ = run(["predict", "--model", "deepseek-r1", "--hw", "l4x4", "--json"], capsys)
    assert rc == 0
    r = json.loads(out)
    assert r["fits"] is False and r["reason"] and r["suggestions"]


@pytest.mark.parametrize("args,needle", [
    (["predict", "--model", "deepseek-r2", "--hw", "l4x4"], "deepseek-r1"),
    (["predict", "--model", "mixtral", "--hw", "h100x9"], "h100x8"),
    (["predict", "--model", "mixtral", "--hw", "l4x4", "--tp", "8"], "4 accelerator"),
    (["predict", "--model", "mixtral", "--hw", "l4x4", "--precision", "fp9"], "fp8"),
    (["predict", "--model", "mixtral", "--hw", "l4x4", "--batch", "lots"], "--batch"),
    (["predict", "--model", "mixtral", "--hw", "l4x4", "--offload", "disk"], "--offload"),
    (["predict", "--model", "mixtral", "--hw", "h100x8", "--engine", "moe-infinity", "--precision", "fp8"], "does not serve"),
    (["predict", "--model", "mixtral", "--hw", "h100x8", "--engine", "vlm"], "vllm"),
    (["predict", "--model", "mixtral", "--hw", "h100x8", "--ep", "3"], "--ep 3"),
    (["models", "show", "qwen4"], "unknown model"),
    (["hw", "show", "h1000"], "unknown hardware"),
])
def test_user_errors_exit_2_with_message(args, needle, capsys):
    rc, out, err = run(args, capsys)
    assert rc == 2
    assert needle in err
    assert "Traceback" not in err


def test_models_show_json_counts(capsys):
    rc, out, _ = run(["models", "show", "Qwen3-235B-A22B", "--json"], capsys)
    d = json.loads(out)
    assert isinstance(d["total_params"], int) and isinstance(d["active_params"], int)
    assert abs(d["total_params"] / 235e9 - 1) < 0.03


def test_hw_show_json_and_list(capsys):
    rc, out, _ = run(["hw", "show", "l4x4", "--json"], capsys)
    d = json.loads(out)
    assert d["spec_kind"] == "system" and d["accelerators"]["count"] == 4 and "l4" in d["devices"]
    rc, out, _ = run(["hw", "list", "--json"], capsys)
    names = {s["name"] for s in json.loads(out)["systems"]}
    assert {"l4x4", "h100x8", "xeon6980p-2s", "m3-ultra"} <= names


def test_user_system_file_path(tmp_path, capsys):
    from moecap_sim.catalog.hardware import systems
    src = systems().path_of("h100x1").read_text()
    p = tmp_path / "mybox.yaml"
    p.write_text(src.replace("name: h100x1", "name: mybox"))
    rc, out, _ = run(["predict", "--model", "olmoe-1b-7b", "--hw", str(p), "--json"], capsys)
    assert rc == 0 and json.loads(out)["hardware"]["name"] == "mybox"


def test_console_script_cold_start_runs():
    # the installed entry point works end to end (README's command)
    r = subprocess.run([sys.executable, "-m", "moecap_sim", "predict", "--model", "deepseek-r1", "--hw", "l4x4"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "does not fit" in r.stdout


def test_predict_result_is_typed_and_the_committed_schema_is_current():
    """predict's JSON validates against the typed result (fitting or not), and the JSON Schema
    committed for the contract is what the model generates."""
    import subprocess

    from moecap_sim.predict import predict
    from moecap_sim.results import SCHEMA_PATH, PredictionResult, schema

    ok = PredictionResult.model_validate(predict("mixtral-8x7b", "h100x8", precision="fp8", batch=8))
    assert ok.fits and ok.tpot_s > 0 and ok.output_tokens_per_s > 0
    no = PredictionResult.model_validate(predict("deepseek-r1", "l4x4"))
    assert no.fits is False and no.tpot_s is None and no.best_feasible["fits"] is True
    committed = json.loads(SCHEMA_PATH.read_text())
    assert committed == json.loads(json.dumps(schema()))
    assert set(committed["required"]) == set(CONTRACT_KEYS)
    rc = subprocess.run([sys.executable, "-m", "moecap_sim.results", "--check"]).returncode
    assert rc == 0
