"""GGUF block formats and presets: exact bytes per weight, and known file sizes."""

import pytest

from moecap_sim.catalog.models import get_model
from moecap_sim.precision import (BYTES_PER_PARAM, GGUF_PRESETS, NATIVE_COMPUTE_DTYPE, resolve_scheme,
                                  uniform_scheme)

# bytes per block / weights per block from the block_* structs of ggml/src/ggml-common.h
BLOCKS = {"q8_0": (34, 32), "q4_0": (18, 32), "iq4_nl": (18, 32), "q6_k": (210, 256), "q5_k": (176, 256),
          "q4_k": (144, 256), "q3_k": (110, 256), "q2_k": (84, 256), "iq4_xs": (136, 256),
          "iq3_xxs": (98, 256), "iq2_xxs": (66, 256), "iq1_s": (50, 256), "iq1_m": (56, 256)}


@pytest.mark.parametrize("t", sorted(BLOCKS))
def test_block_bytes_per_weight(t):
    b, n = BLOCKS[t]
    assert BYTES_PER_PARAM[t] == pytest.approx(b / n, rel=1e-12)
    assert NATIVE_COMPUTE_DTYPE[t] == "int8"


def test_bits_per_weight_known_values():
    bpw = {t: 8 * BYTES_PER_PARAM[t] for t in BLOCKS}
    assert bpw["q8_0"] == 8.5 and bpw["q4_k"] == 4.5 and bpw["q6_k"] == 6.5625
    assert bpw["iq1_s"] == 1.5625 and bpw["iq2_xxs"] == 2.0625 and bpw["iq4_xs"] == 4.25


def _file_bytes(model: str, precision: str) -> float:
    m = get_model(model)
    s = resolve_scheme(m.native_precision, precision)
    return sum(p * s.bytes_per_param(g) for g, p in m.arch.params_by_group().items())


@pytest.mark.parametrize("model,precision,expected_bytes,tol", [
    ("deepseek-r1", "q4_k_m", 376.65 * 2**30, 0.03),   # CSV C05: Q4_K_M 376.65 GiB (= unsloth "404 GB")
    ("deepseek-r1", "ud-iq1_s", 131 * 2**30, 0.04),    # unsloth blog: UD-IQ1_S "131GB" (GiB)
    ("deepseek-r1", "ud-iq2_xxs", 183 * 2**30, 0.04),
    ("deepseek-r1", "ud-q2_k_xl", 212 * 2**30, 0.04),
    ("qwen3-30b-a3b", "q8_0", 30.25 * 2**30, 0.03),    # CSV P054: Q8_0 30.25 GiB
    ("qwen3-30b-a3b", "iq4_xs-q5_k", 15.4 * 2**30, 0.03),  # CSV P016: custom IQ4_XS/Q5_K, 15.4 GiB
])
def test_known_gguf_file_sizes(model, precision, expected_bytes, tol):
    assert _file_bytes(model, precision) == pytest.approx(expected_bytes, rel=tol)


def test_presets_resolve_and_keep_api():
    for p in GGUF_PRESETS:
        s = resolve_scheme("bf16", p)
        assert s.router == "fp32" and s.lm_head in BYTES_PER_PARAM
        for g in ("attention", "experts", "embeddings", "lm_head"):
            assert 0.15 < s.bytes_per_param(g) < 1.1
    q4km = resolve_scheme("bf16", "q4_k_m")
    assert q4km.experts == "q4_k" and q4km.lm_head == "q6_k"
    assert BYTES_PER_PARAM["q4_k"] < q4km.bytes_per_param("experts") < BYTES_PER_PARAM["q6_k"]
    # a raw block type is still a uniform precision, and the native path is unchanged
    assert uniform_scheme("q4_k").experts == "q4_k"
    assert resolve_scheme("fp8", None).experts == "fp8"


def test_describe_shows_effective_bits():
    d = resolve_scheme("bf16", "q4_k_m").describe()
    assert d.startswith("gguf q4_k_m (") and "experts 4.84" in d
