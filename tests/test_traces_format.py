"""The moecap-trace/1 format: round trip, validation, atomic writes."""

import numpy as np
import pytest

from moecap_sim.errors import UserError
from moecap_sim.traces.format import DECODE, FORMAT, Trace, load_trace, save_trace


def _small(t=6, layers=(0, 3), k=2, e=8):
    rng = np.random.default_rng(0)
    ex = np.stack([np.stack([rng.choice(e, k, replace=False) for _ in layers]) for _ in range(t)])
    meta = {"model": "demo", "num_experts": e, "top_k": k, "num_moe_layers": 4, "synthetic": True,
            "source": {"kind": "synthetic", "description": "test"}}
    return Trace(meta=meta, layers=np.array(layers), experts=ex, pass_id=np.arange(t) // 2,
                 phase=np.full(t, DECODE), request=np.arange(t) % 2, position=np.arange(t) // 2)


def test_round_trip(tmp_path):
    tr = _small()
    out = save_trace(tr, tmp_path / "a.trace.npz")
    back = load_trace(out)
    assert back.meta["model"] == "demo" and back.num_experts == 8 and back.top_k == 2
    assert np.array_equal(back.experts, tr.experts)
    assert np.array_equal(back.layers, [0, 3])
    assert np.array_equal(back.pass_id, tr.pass_id) and np.array_equal(back.request, tr.request)
    with np.load(out, allow_pickle=False) as z:  # plain arrays, no pickles
        assert str(z["format"]) == FORMAT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.trace.npz"]  # no temp files left


def test_pass_table_from_tokens():
    pt = _small().pass_table()
    assert list(pt["tokens"]) == [2, 2, 2]
    assert pt["distinct"].shape == (3, 2)
    assert np.all((pt["distinct"] >= 2) & (pt["distinct"] <= 4))


def test_invalid_traces_rejected(tmp_path):
    tr = _small()
    tr.experts[0, 0, 0] = 99  # beyond num_experts
    with pytest.raises(UserError, match="expert ids"):
        save_trace(tr, tmp_path / "bad.npz")
    assert not any(tmp_path.iterdir())


def test_load_non_trace(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, a=np.arange(3))
    with pytest.raises(UserError, match="not a moecap-trace"):
        load_trace(p)
    with pytest.raises(UserError, match="not found"):
        load_trace(tmp_path / "missing.npz")
