"""Regenerate cases.yaml from ../shared/reference/published_measurements.csv and the per-row
mapping below (id, class, reliability, source come from the CSV; the value too, unless the row's
mapping converts it).  Run:  python validation/published/build_cases.py [path/to/csv]

The mapping is hand-written, one entry per CSV row; every derived number is explained in `n`.
"""
from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CSV = HERE.parents[2] / "shared" / "reference" / "published_measurements.csv"

OUT, TOT, PRE, PU, TPOT, E2E = ("output_tokens_per_s", "total_tokens_per_s", "prefill_tokens_per_s",
                               "per_user_tokens_per_s", "tpot_s", "e2e_s")

# --- shared workload derivations ----------------------------------------------------------------
MLPERF_MIX_IN = 300
MIX_NOTE = ("MLPerf Mixtral-8x7B set (5k OpenOrca + 5k GSM8K + 5k MBXP): output_len = the harness's "
            "TOKENS_PER_SAMPLE 145.9 -> 146 (AMD rows state ~144). The dataset's mean input length is "
            "not in the CSV or ../shared/reference: input_len 300 is an ESTIMATE (OpenOrca prompts of the "
            "MLPerf Llama-2 set average ~300 tokens; GSM8K/MBXP prompts are of similar size); uncertain "
            "by up to 2x, a small effect on output tok/s at OSL 146. KV cache fp8 assumed (NVIDIA/AMD "
            "MLPerf FP8 engines quantize KV to fp8). ")
MLPERF_R1_IN = 800
R1_NOTE = ("MLPerf DeepSeek-R1 set (math/code/QA reasoning mix): output_len from the row (~3,760 mean out; "
           "TOKENS_PER_SAMPLE 3,624-3,854). Mean input length not in our sources: input_len 800 is an "
           "ESTIMATE (short benchmark questions), minor next to 3.7k output tokens. Parallel layout not "
           "stated: TRT-LLM's R1 throughput recipe (attention DP + EP over the GPUs, 'DEP') assumed. "
           "kv fp8 assumed. ")
SERVER = ("MLPerf Server scenario (Poisson arrivals under TTFT/TPOT p99 limits) is modelled as the "
          "largest batch whose TPOT stays within the scenario's TPOT limit (max_tpot_s: 200 ms for "
          "Mixtral-8x7B per the MLPerf rules, 80 ms for DeepSeek-R1 as the row states); queueing "
          "variance is not modelled (steady state). ")
SHAREGPT_IN, SHAREGPT_OUT = 215, 194
SHAREGPT = ("ShareGPT (1000 prompts, request-rate inf): input_len 215 / output_len 194 are the means of the "
            "source's token totals (215,312 input / 193,979 output tokens over 1000 prompts, P001 notes); "
            "peak concurrency 1000 -> batch max (engine default scheduler cap applies). ")
GPUSTACK_H100 = "H100 SXM/PCIe variant not stated: SXM (h100x1, AWS p5 slice) assumed. "
GGUF = "GGUF preset resolves per tensor group (moecap_sim/precision.py). "
IK = "ik_llama.cpp runs as engine preset ik_llama.cpp (its own repacked/fused CPU kernels, fitted as their own family). "
TG0 = "llama-bench/sweep-bench TG at empty context: input_len 1 (N_KV=0), output_len = the tg length. "
MOEGEN = ("MoE-Gen README table (offline bulk, prompt 512 / decode 256, batch chosen by the system -> batch max). "
          "Host CPU/DRAM not stated (README: host memory > model size; R1 example ~1 TB): typical 1-socket "
          "EPYC 7763 server with 1 TB DDR4-3200 assumed (system a5000x1-1tb). ")
REFUSED = "architecture not published; refused"

A = dict  # short alias

ROWS: dict[str, dict] = {
 # ---------------- MLPerf Mixtral-8x7B ----------------
 "M01": A(m=OUT, p=A(model="mixtral-8x7b", hw="h200x8", precision="fp8", kv_dtype="fp8", engine="trtllm", tp=1, dp=8, batch="max", max_num_seqs=3072, input_len=MLPERF_MIX_IN, output_len=146),
          n=MIX_NOTE + "TP1 x 8 replicas, max batch 3072 per GPU (= per engine instance) as stated. Host differs (NVIDIA ref box, 2x Xeon 8480C, vs AWS p5en): irrelevant for GPU-resident serving."),
 "M02": A(m=OUT, p=A(model="mixtral-8x7b", hw="h200x8", precision="fp8", kv_dtype="fp8", engine="trtllm", tp=1, dp=8, batch="max", max_tpot_s=0.2, input_len=MLPERF_MIX_IN, output_len=146),
          n=MIX_NOTE + SERVER + "TP1 per GPU as stated; scheduler cap not stated."),
 "M03": A(m=OUT, p=A(model="mixtral-8x7b", hw="h100x8", precision="fp8", kv_dtype="fp8", engine="trtllm", tp=1, dp=8, batch="max", max_num_seqs=896, input_len=MLPERF_MIX_IN, output_len=146),
          n=MIX_NOTE + "TP1 x 8, max batch 896 per GPU as stated. DGX H100 host vs AWS p5 host: irrelevant here."),
 "M04": A(m=OUT, p=A(model="mixtral-8x7b", hw="h100x8", precision="fp8", kv_dtype="fp8", engine="trtllm", tp=1, dp=8, batch="max", max_tpot_s=0.2, input_len=MLPERF_MIX_IN, output_len=146),
          n=MIX_NOTE + SERVER + "TP1 x 8 assumed as in the Offline row (M03)."),
 "M05": A(m=OUT, p=A(model="mixtral-8x7b", hw="gh200-144gbx1", precision="fp8", kv_dtype="fp8", engine="trtllm", tp=1, batch="max", max_num_seqs=3072, input_len=MLPERF_MIX_IN, output_len=146),
          n=MIX_NOTE + "GH200 144GB HBM3e variant (new system gh200-144gbx1); max batch 3072 as stated."),
 "M06": A(m=OUT, p=A(model="mixtral-8x7b", hw="gh200-144gbx1", precision="fp8", kv_dtype="fp8", engine="trtllm", tp=1, batch="max", max_tpot_s=0.2, input_len=MLPERF_MIX_IN, output_len=146),
          n=MIX_NOTE + SERVER),
 "M07": A(m=OUT, p=A(model="mixtral-8x7b", hw="h100x4", precision="fp8", kv_dtype="fp8", engine="trtllm", tp=1, dp=4, batch="max", input_len=MLPERF_MIX_IN, output_len=146),
          n=MIX_NOTE + "Dell XE8640 (4x H100 SXM, NVLink) mapped to h100x4; TP1 x 4 assumed as in NVIDIA's H100 submissions; scheduler cap not stated."),
 "M08": A(m=OUT, p=A(model="mixtral-8x7b", hw="h200x8", precision="fp8", kv_dtype="fp8", engine="trtllm", tp=1, dp=8, batch="max", input_len=MLPERF_MIX_IN, output_len=146),
          n=MIX_NOTE + "Power-capped (MaxQ) H200s: the tool cannot express a power cap (predicts the uncapped box; M01 is the same setup uncapped, 17% faster). TP1 x 8 assumed."),
 "M09": A(m=OUT, p=A(model="mixtral-8x7b", hw="mi300xx8", precision="fp8", kv_dtype="fp8", engine="vllm", tp=1, dp=8, batch="max", input_len=MLPERF_MIX_IN, output_len=144),
          n=MIX_NOTE + "AMD rows state ~144 output tokens. Parallelism not stated: TP1 x 8 assumed (47 GB FP8 model fits one 192 GB GPU; AMD's MLPerf Mixtral harness runs one vLLM instance per GPU). Host 2x EPYC 9575F vs catalog 2x EPYC 9654: irrelevant."),
 "M10": A(m=OUT, p=A(model="mixtral-8x7b", hw="mi300xx8", precision="fp8", kv_dtype="fp8", engine="vllm", tp=1, dp=8, batch="max", max_tpot_s=0.2, input_len=MLPERF_MIX_IN, output_len=144),
          n=MIX_NOTE + SERVER + "TP1 x 8 assumed."),
 "M11": A(m=OUT, p=A(model="mixtral-8x7b", hw="mi325xx8", precision="fp8", kv_dtype="fp8", engine="vllm", tp=1, dp=8, batch="max", input_len=MLPERF_MIX_IN, output_len=144),
          n=MIX_NOTE + "TP1 x 8 assumed. QuantaGrid host vs catalog host: irrelevant."),
 "M12": A(m=OUT, p=A(model="mixtral-8x7b", hw="mi325xx8", precision="fp8", kv_dtype="fp8", engine="vllm", tp=1, dp=8, batch="max", max_tpot_s=0.2, input_len=MLPERF_MIX_IN, output_len=144),
          n=MIX_NOTE + SERVER + "TP1 x 8 assumed."),
 "M13": A(m=OUT, p=A(model="mixtral-8x7b", hw="h200x8", precision="fp8", kv_dtype="fp8", engine="trtllm", tp=1, dp=8, batch="max", input_len=MLPERF_MIX_IN, output_len=146),
          n=MIX_NOTE + "HPE Cray XD670 (2x Xeon 8562Y+) vs AWS p5en host: irrelevant. Newer TensorRT 10.11 (+5% vs M01's 10.2, same HW): software gains are not expressible. TP1 x 8 assumed."),
 "M14": A(m=OUT, p=A(model="mixtral-8x7b", hw="h200x8", precision="fp8", kv_dtype="fp8", engine="trtllm", tp=1, dp=8, batch="max", max_tpot_s=0.2, input_len=MLPERF_MIX_IN, output_len=146),
          n=MIX_NOTE + SERVER + "TP1 x 8 assumed."),
 "M15": A(m=OUT, p=A(model="mixtral-8x7b", hw="rtxpro6000x8", precision="fp8", kv_dtype="fp8", engine="trtllm", tp=1, dp=8, batch="max", input_len=MLPERF_MIX_IN, output_len=146),
          n=MIX_NOTE + "8x RTX PRO 6000 Blackwell Server (PCIe, no NVLink); TP1 x 8 assumed (47 GB FP8 fits a 96 GB card). HPE DL380a host vs catalog host: irrelevant."),
 # ---------------- MLPerf DeepSeek-R1 ----------------
 "D01": A(m=OUT, p=A(model="deepseek-r1", hw="b200x8", precision="nvfp4", kv_dtype="fp8", engine="trtllm", tp=1, dp=8, ep=8, attention_dp=True, batch="max", input_len=MLPERF_R1_IN, output_len=3760),
          n=R1_NOTE + "DGX B200 host (2x Xeon 8570) vs AWS p6-b200: irrelevant."),
 "D02": A(m=OUT, p=A(model="deepseek-r1", hw="b200x8", precision="nvfp4", kv_dtype="fp8", engine="trtllm", tp=1, dp=8, ep=8, attention_dp=True, batch="max", max_tpot_s=0.08, input_len=MLPERF_R1_IN, output_len=3760),
          n=R1_NOTE + SERVER + "R1 server limits (TPOT<=80 ms p99) cut the batch far more than for Mixtral: server/offline = 0.56 here."),
 "D03": A(m=OUT, p=A(model="deepseek-r1", hw="gb200x4", nodes=18, precision="nvfp4", kv_dtype="fp8", engine="trtllm", tp=1, dp=72, ep=72, attention_dp=True, batch="max", input_len=MLPERF_R1_IN, output_len=3760),
          n=R1_NOTE + "GB200 NVL72 as one 72-GPU NVLink domain: 18 compute trays (system gb200x4, 4 GPUs + 2 Grace) with nodes: 18 over the rack's NVLink5 switch fabric (the tray's scale_out). The real instance layout (how many DEP instances of what size) is not stated; one attention-DP 72 / EP 72 instance is the mapping."),
 "D04": A(m=OUT, p=A(model="deepseek-r1", hw="gb300x4", nodes=18, precision="nvfp4", kv_dtype="fp8", engine="trtllm", tp=1, dp=72, ep=72, attention_dp=True, batch="max", input_len=MLPERF_R1_IN, output_len=3760),
          n=R1_NOTE + "GB300 NVL72 (new device gb300): 18 trays of system gb300x4 over NVLink5 (nodes: 18); layout as D03 (not stated)."),
 "D05": A(m=OUT, p=A(model="deepseek-r1", hw="h200x8", precision="fp8", kv_dtype="fp8", engine="trtllm", tp=1, dp=8, ep=8, attention_dp=True, batch="max", input_len=MLPERF_R1_IN, output_len=3854),
          n=R1_NOTE + "Open division (rules relaxed); output_len 3,854 as the row states. HPE XD670 host vs AWS p5en: irrelevant."),
 "D06": A(m=OUT, p=A(model="deepseek-r1", hw="gb300x4", nodes=72, precision="nvfp4", kv_dtype="fp8", engine="trtllm", tp=1, dp=288, ep=72, attention_dp=True, batch="max", input_len=MLPERF_R1_IN, output_len=3760),
          n=R1_NOTE + "4 GB300 NVL72 racks = 72 trays of gb300x4 (nodes: 72). The tray's scale_out is the in-rack NVLink5 fabric; the rack-to-rack Quantum-X800 InfiniBand (800 Gb/s per GPU) is a second tier the schema cannot express, harmless while EP stays inside a rack. TRT-LLM + Dynamo (prefill/decode disaggregation) layout not stated: EP 72 within each rack, attention DP over all 288 GPUs assumed; disaggregation is for the lead's physics to model. Secondary source (v6.0 numbers via NVIDIA blog)."),
 "T01": A(m=PU, p=A(model="deepseek-r1", hw="b200x8", precision="nvfp4", kv_dtype="fp8", engine="trtllm", tp=8, ep=2, batch=1, input_len=1024, output_len=2048, mtp=A(draft_tokens=3)),
          n="trtllm-bench min-latency recipe: TP8 EP2, MTP with 3 draft layers as stated; the acceptance rate is NOT stated in the row (the physics default applies: flag). ISL/OSL 1K/2K as stated. kv fp8 assumed (the recipe's FP8 KV). Batch 1 -> per-user tok/s."),
 "T02": A(m=PU, p=A(model="deepseek-r1", hw="h200x8", precision="fp8", kv_dtype="fp8", engine="trtllm", tp=8, ep=4, batch=1, input_len=1024, output_len=2048, mtp=A(draft_tokens=3)),
          n="TRT-LLM TP8 EP4, MTP 3 as stated (acceptance not stated: physics default). ISL/OSL 1K/2K. kv fp8 assumed."),
 # ---------------- clusters ----------------
 "P01": A(m=PRE, per="node", per_count=4, v=32200.0, p=A(model="deepseek-v3", hw="h800x8-ib", nodes=4, precision="fp8", kv_dtype="bf16", engine="sglang", tp=1, dp=32, ep=32, attention_dp=True, disaggregated=True, overlap_comm=True, batch="max", max_num_batched_tokens=16384, input_len=4096, output_len=1),
          n="Prefill pool of a PD-disaggregated service with DeepSeek's two-micro-batch overlap (disaggregated, overlap_comm). DeepSeek's own stack (DeepEP/DeepGEMM, two-micro-batch overlap) mapped to sglang (same kernels). Prefill unit = 4 H800 nodes, EP32 DP32 (nodes: 4, value per node). VALUE: the CSV's 73,700 tok/s/node counts the 56.3% KV-cache-hit tokens, which are not computed; the case uses the computed-prefill figure ~32,200/node from the CSV notes (SGLang blog table), since predict's prefill_tokens_per_s counts computed tokens. Prompt length of production traffic not stated: input_len 4096 ASSUMED (DeepSeek's public profile-data prefill profile uses 4K prompts); output_len 1 (prefill-only instance). MLA KV in bf16 (latent). H800 = H100 with NVLink cut to 400 GB/s bidir (new device h800)."),
 "P02": A(m=OUT, per="node", per_count=18, p=A(model="deepseek-v3", hw="h800x8-ib", nodes=18, precision="fp8", kv_dtype="bf16", engine="sglang", tp=1, dp=144, ep=144, attention_dp=True, disaggregated=True, overlap_comm=True, batch=18432, input_len=4489, output_len=1000),
          n="Decode pool of a PD-disaggregated service with DeepSeek's two-micro-batch overlap (disaggregated, overlap_comm). Decode unit = 18 H800 nodes, EP144 DP144 (nodes: 18, value per node). ~128 seq/GPU -> batch 128 x 144 = 18,432. Average KV length ~4,989: input_len 4489 + output_len 1000 gives a mean decode context of 4489 + 1000/2 = 4,989. Production almost surely uses MTP (DeepSeek-V3 report: 85-90% second-token acceptance) but this source does not state it, so no mtp key (flag for physics: the measured 20-22 tok/s/user includes it)."),
 "S01": A(m=PRE, per="node", per_count=4, p=A(model="deepseek-v3", hw="h100x8-ib", nodes=4, precision="fp8", kv_dtype="bf16", engine="sglang", tp=1, dp=32, ep=32, attention_dp=True, disaggregated=True, overlap_comm=True, batch=256, max_num_batched_tokens=16384, input_len=2048, output_len=1),
          n="PD-disaggregated prefill pool with two-batch overlap (disaggregated, overlap_comm). SGLang PD-disaggregated prefill, 4 nodes x 8 H100 over InfiniBand (new system h100x8-ib, 400 Gb/s CX7 per GPU), EP32 DP-attention, two-batch overlap, EPLB. 16,384 tokens per device per step with 2K prompts -> 8 prompts per GPU -> batch 256 system-wide; max_num_batched_tokens 16384 per rank. output_len 1 (prefill instance)."),
 "S02": A(m=OUT, per="node", per_count=9, p=A(model="deepseek-v3", hw="h100x8-ib", nodes=9, precision="fp8", kv_dtype="bf16", engine="sglang", tp=1, dp=72, ep=72, attention_dp=True, disaggregated=True, overlap_comm=True, batch=18432, input_len=2000, output_len=100),
          n="PD-disaggregated decode pool with two-batch overlap (disaggregated, overlap_comm). SGLang decode instance, 9 nodes x 8 H100, EP72 with DeepEP low-latency + TBO. 256 seqs/GPU x 72 = 18,432. 2K input, 100-token outputs (ablation setup) as stated."),
 "S03": A(m=OUT, per="gpu", per_count=48, p=A(model="deepseek-v3", hw="gb200x4", nodes=12, precision="fp8", kv_dtype="bf16", engine="sglang", tp=1, dp=48, ep=48, attention_dp=True, disaggregated=True, batch="max", input_len=2048, output_len=100),
          n="Decode trays of a PD-disaggregated deployment (disaggregated; overlap not stated). Decode on 12 GB200 trays (48 GPUs) of an NVL72 (the 2 prefill trays are not modelled): 12 trays of gb200x4 (nodes: 12) over NVLink5, DP48/EP48, value per GPU over 48. Output length not stated: 100 as in the H100 ablation (S02) ASSUMED; 'large batch (saturated)' -> batch max."),
 "V01": A(m=OUT, per="gpu", per_count=32, p=A(model="deepseek-r1", hw="h200x8-ib", nodes=4, precision="fp8", kv_dtype="bf16", engine="vllm", tp=1, dp=32, ep=32, attention_dp=True, overlap_comm=True, batch="max", input_len=2048, output_len=1024),
          n="DBO (dual-batch overlap) as the row states (overlap_comm). vLLM + llm-d wide-EP on CoreWeave H200 nodes with ConnectX-7 InfiniBand (new system h200x8-ib). Node count, ISL/OSL and concurrency NOT stated: 4 nodes (DP32/EP32, llm-d's wide-EP example size), 2K/1K and batch max are ASSUMPTIONS; per-GPU value."),
 "V02": A(m=E2E, v=1.91744, x=True, p=A(model="mixtral-8x7b", hw="h200x2", precision="bf16", engine="vllm", tp=2, batch=8, input_len=32, output_len=128),
          n="vLLM nightly CI latency test: TP2 on 2x H200, batch 8, 32 in / 128 out. 1917.44 ms -> 1.91744 s mean end-to-end latency."),
 # ---------------- CPU ----------------
 "C04": A(m=TPOT, v=0.17201, p=A(model="deepseek-r1", hw="xeon6980p-1s", precision="q8_0", engine="llama.cpp", numa="one-socket", batch=1, input_len=1024, output_len=1024),
          n="One llama.cpp instance per socket, one request each: modelled as one socket (system xeon6980p-1s, numa one-socket). Threads not stated. 172.01 ms -> 0.17201 s. " + GGUF),
 "C05": A(m=PU, p=A(model="deepseek-r1", hw="xeon6980p-1s", precision="q4_k_m", engine="ik_llama.cpp", threads=64, numa="one-socket", batch=1, input_len=512, output_len=128),
          n=IK + "-mla 2 -fa -fmoe -rtr; numactl -N 0 -m 0 with 64 threads -> numa one-socket, threads 64. pp512/tg128 -> input 512 / output 128. " + GGUF),
 # ---------------- hybrid / offload ----------------
 "K01": A(m=PU, p=A(model="deepseek-r1", hw="xeon6454s-1s-rtx4090", precision="q4_k_m", engine="ktransformers", offload="cpu-experts", numa="one-socket", batch=1, input_len=500, output_len=1000),
          n="KTransformers v0.2: MLA/shared experts on the GPU, routed experts (Q4_K_M) on one socket. RTX 4090D (114 SMs, same 1008 GB/s memory) mapped to rtx-4090 (compute ~11% high). ~500 in / up to 1000 out as stated. " + GGUF),
 "K04": A(m=PRE, p=A(model="deepseek-v3", hw="xeon6454s-2s-rtx4090", precision="int8", engine="ktransformers", offload="cpu-experts", batch=1, input_len=2048, output_len=1),
          n="KTransformers v0.3-preview AMX kernels: routed experts int8 on the CPUs; the GPU side is int4 in the source, which one precision cannot express (int8 everywhere modelled). NUMA mode not stated. 1-4 RTX 4090D: one GPU (4090D -> rtx-4090). 2K prompt, prefill tok/s."),
 "K05": A(m=PU, p=A(model="deepseek-r1", hw="epyc9654-1s-rtx4090", precision="q4_k_m", engine="ktransformers", offload="cpu-experts", threads=84, batch=1, input_len=1024, output_len=256),
          n="'4-bit GGUF' taken as Q4_K_M (the KTransformers tutorial's file). EPYC 9654 (NPS1, SMT off, 84 threads) with 12x 64GB DDR5-4800 + RTX 4090 (new system). ~1K context; output length not stated: 256 ASSUMED. User report. " + GGUF),
 "O02": A(m=PU, p=A(model="deepseek-v3", hw="rtx3090x4", precision="q4_k_m", engine="llama.cpp", gpu_layers=7, batch=1, input_len=512, output_len=128),
          n="llama.cpp -ngl 7: 7 of 61 layers on the four 3090s, the other 54 layers (attention and experts) on the CPU (gpu_layers 7). Host CPU/DRAM not stated: typical 4x3090 rig = 1-socket EPYC 7763, 8x DDR4-3200 (204.8 GB/s), 512 GB ASSUMED (system rtx3090x4). pp512/tg128. " + GGUF),
 "G01": A(m=PU, p=A(model="mixtral-8x7b", hw="a100x1", precision="int8", engine="trtllm", batch=1, input_len=512, output_len=128),
          n="TRT-LLM (Dec 2023) INT8 weight-only on one A100 80GB (SXM assumed; variant not stated). 512/128 at concurrency 1."),
 "G02": A(m=TOT, p=A(model="qwen3-235b-a22b", hw="h100x8", precision="fp8", kv_dtype="bf16", engine="vllm", tp=8, batch="max", requests=1000, output_len_dist="exponential", input_len=SHAREGPT_IN, output_len=SHAREGPT_OUT),
          n="Burst size not in the excerpt: vllm bench serve default --num-prompts 1000 ASSUMED, exponential output lengths (ShareGPT). vLLM 0.11 un-tuned defaults, TP8 presumed (row). " + SHAREGPT + "Concurrency not in the excerpt. Qwen tokenizer vs gpt-oss tokenizer counts differ by a few %."),
 "G03": A(m=TOT, p=A(model="qwen3-235b-a22b", hw="a100x8", precision="fp8", kv_dtype="bf16", engine="vllm", tp=8, batch="max", requests=1000, output_len_dist="exponential", input_len=SHAREGPT_IN, output_len=SHAREGPT_OUT),
          n="Burst size not in the excerpt: vllm bench serve default --num-prompts 1000 ASSUMED, exponential output lengths (ShareGPT). vLLM 0.11 defaults; A100 has no FP8 tensor cores: FP8 weights run weight-only (Marlin W8A16). TP8 presumed. " + SHAREGPT),
 "X01": A(m=TOT, per="gpu", per_count=8, p=A(model="deepseek-r1", hw="b200x8", precision="fp8", kv_dtype="fp8", engine="sglang", tp=1, dp=8, ep=8, attention_dp=True, batch="max", max_tpot_s=0.0435, input_len=8192, output_len=1024),
          n="Interactivity point 23 tok/s/user -> max_tpot_s = 1/23 s (the largest batch at that TPOT). InferenceX dashboard point (best config incl. multi-node disagg) at 23 tok/s/user, ~1,088 concurrent, 8K/1K. Token definition taken as TOTAL (in+out): 1,088 x 23 tok/s x 9 (8K+1K per 1K out) / 5,857 per GPU = ~38 GPUs, consistent with a multi-node disaggregated config (output-only would imply ~4.3 GPUs, too few for 1,088 users). Modelled on one b200x8 at the same per-GPU concurrency: 1,088 / 38 x 8 = 229. Engine best-of: sglang chosen. Interpolated C row."),
 "X02": A(m=TOT, per="gpu", per_count=1, p=A(model="gpt-oss-120b", hw="b200x1", precision="mxfp4", engine="vllm", tp=1, batch="max", max_tpot_s=0.0139, input_len=1024, output_len=1024),
          n="Interactivity point 72 tok/s/user -> max_tpot_s = 1/72 s. InferenceX point at 72 tok/s/user, ~256 concurrent, 1K/1K, B200 value. Token definition taken as total (in+out), as for X01. GPU count of the best config not stated: one B200 (TP1, 61 GB model) with 256 concurrent ASSUMED; per GPU. Engine best-of: vllm chosen."),
 # ---------------- GPUStack / single-GPU serving ----------------
 "P001": A(m=OUT, p=A(model="gpt-oss-20b", hw="h100x1", precision="mxfp4", engine="vllm", tp=1, batch="max", requests=1000, output_len_dist="exponential", input_len=SHAREGPT_IN, output_len=SHAREGPT_OUT),
           n="Closed burst: requests submitted at once (request rate inf) -> requests and exponential output lengths (ShareGPT heavy tail, mean 194). " + GPUSTACK_H100 + SHAREGPT),
 "P002": A(m=OUT, p=A(model="gpt-oss-20b", hw="h100x1", precision="mxfp4", engine="vllm", tp=1, batch="max", requests=1000, output_len_dist="exponential", input_len=SHAREGPT_IN, output_len=SHAREGPT_OUT),
           n="Closed burst: requests submitted at once (request rate inf) -> requests and exponential output lengths (ShareGPT heavy tail, mean 194). " + GPUSTACK_H100 + SHAREGPT + "--async-scheduling (overlaps host scheduling with the GPU step) is not expressible: same prediction as P001."),
 "P003": A(m=OUT, p=A(model="gpt-oss-20b", hw="h100x1", precision="mxfp4", engine="sglang", tp=1, batch="max", requests=1000, output_len_dist="exponential", input_len=SHAREGPT_IN, output_len=SHAREGPT_OUT),
           n="Closed burst: requests submitted at once (request rate inf) -> requests and exponential output lengths (ShareGPT heavy tail, mean 194). " + GPUSTACK_H100 + SHAREGPT + "Untuned SGLang defaults (source: engine-variance point)."),
 "P004": A(m=OUT, p=A(model="gpt-oss-20b", hw="a100x1", precision="mxfp4", engine="vllm", tp=1, batch="max", requests=1000, output_len_dist="exponential", input_len=SHAREGPT_IN, output_len=SHAREGPT_OUT),
           n="Closed burst: requests submitted at once (request rate inf) -> requests and exponential output lengths (ShareGPT heavy tail, mean 194). A100 SXM 80GB as stated; MXFP4 MoE runs weight-only (fallback kernels, no FP4 cores on SM80). " + SHAREGPT),
 "P005": A(m=OUT, p=A(model="gpt-oss-120b", hw="h100x1", precision="mxfp4", engine="vllm", tp=1, batch="max", requests=1000, output_len_dist="exponential", input_len=SHAREGPT_IN, output_len=SHAREGPT_OUT),
           n="Closed burst: requests submitted at once (request rate inf) -> requests and exponential output lengths (ShareGPT heavy tail, mean 194). " + GPUSTACK_H100 + SHAREGPT + "--max-model-len 32768 does not change the KV pool; KV-capacity bound at 1000 requests (source)."),
 "P006": A(m=OUT, r=REFUSED, p=A(model="qwen3-30b-a3b", hw="rtx5090x1", precision="nvfp4", engine="vllm", tp=1, batch=32, input_len=1024, output_len=256),
           n=REFUSED + ": Qwen3.6-35B-A3B's config is not in ../shared/reference or the CSV notes; qwen3-30b-a3b is only the nearest catalog model (recorded for when the architecture is added). 1,024 in / 256 out (ignore_eos), 32 concurrent as stated. RTX 5090 = new device."),
 "P007": A(m=OUT, r=REFUSED, p=A(model="qwen3-30b-a3b", hw="rtx5090x1", precision="q4_k_m", engine="llama.cpp", batch=32, input_len=1024, output_len=256),
           n=REFUSED + ": Qwen3.6-35B-A3B (unsloth UD-Q4_K_M; nearest preset q4_k_m) not published in our references; nearest catalog model recorded. llama-server slot count not stated."),
 "P008": A(m=PU, x=True, p=A(model="gpt-oss-20b", hw="rtx4090x1", precision="mxfp4", engine="llama.cpp", batch=1, input_len=1, output_len=128),
           n=TG0 + "Full GPU offload (llama-bench defaults). Host irrelevant."),
 "P009": A(m=PU, x=True, p=A(model="qwen3-30b-a3b", hw="rtx4090x1", precision="q4_0", engine="llama.cpp", batch=1, input_len=1, output_len=128),
           n=TG0 + "Q4_0 GGUF (q4_0 preset: q4_0 everywhere, output q6_k). Full GPU offload."),
 "P010": A(m=PU, p=A(model="mixtral-8x7b", hw="a100x1", precision="int8", engine="vllm", batch=1, input_len=5, output_len=200),
           n="gpt-fast (torch.compile + CUDA graphs, no serving engine) has no preset: vllm (CUDA-graph decode) is the closest. A100-80GB power-limited to 330 W (not expressible; SXM 400 W modelled). ~5-token prompt; output_len 200 = gpt-fast generate.py's default max_new_tokens."),
 "P011": A(m=PU, p=A(model="mixtral-8x7b", hw="a100x2", precision="bf16", engine="vllm", tp=2, batch=1, input_len=5, output_len=200),
           n="gpt-fast TP2 (torchrun, intra-node comm) -> engine vllm, tp 2 on the new system a100x2 (2 of an 8x A100 SXM box). 330 W cap not expressible. 5-token prompt, 200 new tokens (gpt-fast default)."),
 "P012": A(m=PU, p=A(model="mixtral-8x7b", hw="a100x8", precision="int8", engine="vllm", tp=8, batch=1, input_len=5, output_len=200),
           n="gpt-fast TP8 int8 weight-only -> engine vllm tp 8 on a100x8 (hybrid cube mesh; catalog uses NVSwitch p4de). 330 W cap not expressible. 5-token prompt, 200 new tokens (gpt-fast default)."),
 "P013": A(m=PRE, x=True, p=A(model="deepseek-v2-lite", hw="rtx3090x1", precision="q4_0", engine="llama.cpp", batch=1, max_num_batched_tokens=512, input_len=512, output_len=1),
           n="llama-bench pp512 with n_ubatch 512 (max_num_batched_tokens 512). New system rtx3090x1."),
 "P014": A(m=PRE, x=True, p=A(model="deepseek-v2-lite", hw="rtx4080x1", precision="q4_0", engine="llama.cpp", batch=1, max_num_batched_tokens=512, input_len=4096, output_len=1),
           n="llama-bench pp4096 with -ub 512 (8 micro-batches of 512). New system rtx4080x1 (RTX 4080 16GB; Q4_0 V2-Lite ~9 GB fits)."),
 "P015": A(m=PU, p=A(model="qwen3-235b-a22b", hw="mi300xx8", precision="bf16", engine="vllm", tp=8, batch=1, max_num_seqs=512, max_num_batched_tokens=120000, input_len=100, output_len=4096),
           n="vLLM server-log window with 1 running request (thinking-mode math prompt, max_tokens 8192). Prompt length not stated: 100 ASSUMED; output_len 4096 (half the 8192 budget: mid-generation context) ASSUMED. Flags as stated."),
 "P016": A(m=PU, p=A(model="qwen3-30b-a3b", hw="ryzen7950x", precision="iq4_xs-q5_k", kv_dtype="q8_0", engine="llama.cpp", threads=16, batch=1, input_len=1, output_len=128),
           n=TG0 + "Custom GGUF (experts IQ4_XS, attention Q5_K, output Q6_K; 15.4 GiB) = preset iq4_xs-q5_k. K cache q8_0, V f16 (kv q8_0 modelled). RAM not stated: AM5 official 2x DDR5-5200 (83.2 GB/s) ASSUMED (system ryzen7950x)."),
 "P017": A(m=PRE, p=A(model="qwen3-30b-a3b", hw="ryzen7950x", precision="iq4_xs-q5_k", kv_dtype="q8_0", engine="llama.cpp", threads=16, batch=1, max_num_batched_tokens=512, input_len=512, output_len=1),
           n="sweep-bench PP=512 at empty cache. Preset iq4_xs-q5_k. RAM: 2x DDR5-5200 ASSUMED."),
 "P018": A(m=PU, p=A(model="qwen3-30b-a3b", hw="ryzen7950x", precision="iq4_xs-q5_k", kv_dtype="q8_0", engine="llama.cpp", threads=16, batch=1, input_len=8192, output_len=128),
           n="sweep-bench TG=128 with 8,192 tokens already in the KV cache: input_len 8192. No flash-attention. RAM: 2x DDR5-5200 ASSUMED."),
 "P019": A(m=PU, p=A(model="qwen3-30b-a3b", hw="ryzen7950x", precision="iq4_xs-q5_k", kv_dtype="q8_0", engine="ik_llama.cpp", threads=16, batch=1, input_len=1, output_len=128),
           n=IK + TG0 + "-fa -rtr -fmoe, K and V q8_0. RAM: 2x DDR5-5200 ASSUMED."),
 "P020": A(m=PRE, p=A(model="qwen3-30b-a3b", hw="ryzen7950x", precision="iq4_xs-q5_k", kv_dtype="q8_0", engine="ik_llama.cpp", threads=16, batch=1, max_num_batched_tokens=512, input_len=512, output_len=1),
           n=IK + "PP=512 (3.3x mainline's P017: engine/kernel effect). RAM: 2x DDR5-5200 ASSUMED."),
 "P021": A(m=PU, p=A(model="qwen3-next-80b-a3b", hw="threadripper3995wx", precision="iq4_xs", engine="ik_llama.cpp", batch=1, input_len=1, output_len=256),
           n=IK + TG0 + "Threads not stated. RAM not stated: 8x DDR4-3200 (WRX80 full population, 204.8 GB/s), 256 GB ASSUMED (system threadripper3995wx)."),
 "P022": A(m=PRE, p=A(model="qwen3-next-80b-a3b", hw="threadripper3995wx", precision="iq4_xs", engine="ik_llama.cpp", batch=1, input_len=512, output_len=1),
           n=IK + "pp512. RAM: 8x DDR4-3200 ASSUMED."),
 "P023": A(m=PU, p=A(model="deepseek-v2-lite", hw="threadripper5975wx", precision="iq4_nl", kv_dtype="q8_0", engine="ik_llama.cpp", threads=32, batch=1, input_len=128, output_len=64),
           n=IK + "IQ4_NL_R4 (row-interleaved IQ4_NL, same 4.5 bpw) -> preset iq4_nl. -gp 128,64: 64 tokens generated after a 128-token prompt. RAM not stated: 8x DDR4-3200 (204.8 GB/s) ASSUMED (system threadripper5975wx)."),
 "P024": A(m=PU, p=A(model="qwen3-next-80b-a3b", hw="ryzen-ai-hx370", precision="q4_k_m", engine="llama.cpp", batch=1, input_len=100, output_len=256),
           n="Qwen3-Coder-Next uses the Qwen3-Next-80B-A3B architecture (reference table §4 takes Qwen3-Next's config from the Coder-Next config) -> qwen3-next-80b-a3b. Ollama 0.15.6 = llama.cpp (build 7973), CPU only. Prompt and output lengths not stated: 100 / 256 ASSUMED. 2x 48 GB DDR5-5600 as stated (new system ryzen-ai-hx370)."),
 "P025": A(m=PU, p=A(model="qwen3-235b-a22b", hw="xeon6138-2s", precision="q8_0", engine="ik_llama.cpp", threads=20, numa="two-socket", batch=1, input_len=1, output_len=128),
           n=IK + TG0 + "2x Xeon Gold 6138, 12 channels DDR4-2666 as stated; Windows, no NUMA pinning, 20 threads -> numa two-socket (memory interleaved across sockets). Author: memory bandwidth not saturated."),
 "P026": A(m=PRE, p=A(model="qwen3-235b-a22b", hw="xeon6138-2s", precision="q8_0", engine="ik_llama.cpp", threads=20, numa="two-socket", batch=1, max_num_batched_tokens=512, input_len=512, output_len=1),
           n=IK + "PP=512 (n_ubatch 512). Windows, no NUMA pinning."),
 "P027": A(m=PU, p=A(model="qwen3-30b-a3b", hw="xeon6138-2s", precision="q8_0", engine="ik_llama.cpp", threads=20, numa="two-socket", batch=1, input_len=1, output_len=128),
           n=IK + TG0 + "Windows, no NUMA pinning."),
 "P028": A(m=PRE, p=A(model="deepseek-v3", hw="ryzen7800x3d-5gpu", precision="ud-iq3_xxs", engine="llama.cpp", tp=1, pp=5, gpu_layers=61, n_cpu_moe=34, batch=1, max_num_batched_tokens=2048, input_len=21321, output_len=1),
           n="llama.cpp's default --split-mode layer puts consecutive layers on each GPU: pp=5 (not TP). Five different GPUs (RTX 5090 + 2x 4090 + 3090 + A6000 on PCIe x8/x4/x4/x4/x4): the tool has one accelerator type per system, so five RTX 4090s on PCIe Gen4 x4 are modelled (system ryzen7800x3d-5gpu). -ngl 999 (all 61 layers' attention on GPU), -ot puts FFN/experts of layers 0-26 on the GPUs and the rest on CPU -> n_cpu_moe 34. -ub 2048 -> max_num_batched_tokens 2048. Host DRAM: DDR5-6000 dual channel, user states ~64 GB/s effective (single CCD). UD-IQ3_XXS = preset ud-iq3_xxs (approximate mix)."),
 "P029": A(m=PU, p=A(model="deepseek-v3", hw="ryzen7800x3d-5gpu", precision="ud-iq3_xxs", engine="llama.cpp", tp=1, pp=5, gpu_layers=61, n_cpu_moe=34, batch=1, input_len=21321, output_len=1135),
           n="llama.cpp's default --split-mode layer puts consecutive layers on each GPU: pp=5 (not TP). Decode of 1,135 tokens after the 21,321-token prompt. Same mapping as P028 (five RTX 4090s stand in for the mixed GPUs; n_cpu_moe 34)."),
 "P030": A(m=PU, r=REFUSED, p=A(model="qwen3-next-80b-a3b", hw="ryzen7950x-rtx4090", precision="q4_k_l", kv_dtype="q8_0", engine="llama.cpp", offload="cpu-experts", batch=1, input_len=100, output_len=300),
           n=REFUSED + ": Qwen3.5-122B-A10B's config is not in our references; qwen3-next-80b-a3b is only a placeholder. exps=CPU -> offload cpu-experts; KV q8_0; ~300 generated; prompt not stated (100). 96 GB RAM, speed not stated."),
 "P031": A(m=PRE, r=REFUSED, p=A(model="qwen3-next-80b-a3b", hw="ryzen7950x-rtx4090", precision="q4_k_l", kv_dtype="q8_0", engine="llama.cpp", offload="cpu-experts", batch=1, max_num_batched_tokens=3072, input_len=2928, output_len=1),
           n=REFUSED + ": Qwen3.5-122B-A10B not published in our references. 2,928-token prompt, ubatch 3072 (experts streamed to the GPU for large batches)."),
 "P032": A(m=PU, p=A(model="qwen3-30b-a3b", hw="i9-10900x-rtx2080", precision="q4_k_m", engine="llama.cpp", gpu_layers=48, n_cpu_moe=36, batch=1, input_len=256, output_len=256),
           n="-ngl 99 (all 48 layers) --n-cpu-moe 36. Server-reported pure generation speed. Lengths of the llmfit bench not stated: 256/256 ASSUMED. Quad-channel DDR4 at ~102 GB/s measured (new system i9-10900x-rtx2080, 4x DDR4-3200)."),
 "P033": A(m=PU, p=A(model="qwen3-30b-a3b", hw="ryzen7950x-rtx4080", precision="iq4_xs-q5_k", engine="llama.cpp", threads=16, gpu_layers=48, n_cpu_moe=14, batch=1, input_len=1, output_len=128),
           n=TG0 + "-ngl 100 (all 48 layers), -ot blk.34-47.ffn=CPU -> n_cpu_moe 14. RAM speed not stated: 2x DDR5-5200 ASSUMED (system ryzen7950x-rtx4080)."),
 "P034": A(m=PRE, p=A(model="qwen3-30b-a3b", hw="ryzen7950x-rtx4080", precision="iq4_xs-q5_k", engine="llama.cpp", threads=16, gpu_layers=48, n_cpu_moe=14, batch=1, max_num_batched_tokens=512, input_len=512, output_len=1),
           n="PP=512, same placement as P033 (n_cpu_moe 14). RAM: 2x DDR5-5200 ASSUMED."),
 "P035": A(m=PU, p=A(model="deepseek-r1", hw="xeon6430-2s-rtx4090", precision="q4_k_m", engine="ktransformers", offload="cpu-experts", threads=65, numa="two-socket", batch=1, input_len=100, output_len=1000),
           n="KTransformers local_chat --cpu_infer 65 on 2x Xeon Gold 6430 (2 NUMA nodes, no replication stated -> two-socket). VALUE is the maximum observed decode rate, not the mean. Prompt length not stated (interactive): 100 ASSUMED; up to 1000 new tokens. 944 GB DRAM, 8ch DDR5-4400 per socket (563 GB/s theoretical as stated; user measured ~352)."),
 "P036": A(m=PU, p=A(model="deepseek-r1", hw="xeon-e5-2630v4-2s-rtx3090", precision="ud-iq1_s", engine="ktransformers", offload="cpu-experts", threads=18, batch=1, input_len=14, output_len=300),
           n="UD-IQ1_S per the posted --gguf_path (title says UD-Q2_K_XL). 'E5-2630 v4 + 8 channels' = two sockets (4 channels each; --cpu_infer 18 = 20 physical cores - 2). DDR4-2666 DIMMs run at the CPU's 2133 MT/s maximum (system xeon-e5-2630v4-2s-rtx3090). 14-token prompt, 300 generated."),
 "P037": A(m=OUT, p=A(model="mixtral-8x7b", hw="a5000x1-1tb", precision="bf16", engine="moe-infinity", offload="expert-cache", batch="max", input_len=512, output_len=256),
           n=MOEGEN + "MoE-Gen (module-based batching, host-memory KV, expert streaming) has no preset: engine moe-infinity with offload expert-cache (experts streamed from host DRAM over PCIe) is the closest."),
 "P038": A(m=PRE, p=A(model="mixtral-8x7b", hw="a5000x1-1tb", precision="bf16", engine="moe-infinity", offload="expert-cache", batch="max", input_len=512, output_len=256),
           n=MOEGEN + "Prefill throughput of the same run."),
 "P039": A(m=OUT, p=A(model="mixtral-8x7b", hw="a5000x1-1tb", precision="bf16", engine="vllm", offload="expert-cache", batch="max", input_len=512, output_len=256),
           n=MOEGEN + "vLLM offloading mode (--cpu-offload-gb: weights streamed from host each step), flags not stated -> offload expert-cache."),
 "P040": A(m=OUT, p=A(model="mixtral-8x7b", hw="a5000x1-1tb", precision="bf16", engine="llama.cpp", offload="auto", batch="max", input_len=512, output_len=256),
           n=MOEGEN + "llama.cpp partial GPU offload (-ngl not stated) -> offload auto. BF16 GGUF assumed as the table's W16A16."),
 "P041": A(m=OUT, p=A(model="deepseek-r1", hw="a5000x1-1tb", precision="fp8", engine="moe-infinity", offload="expert-cache", batch="max", input_len=512, output_len=256),
           n=MOEGEN + "W8A16: FP8 weights dequantized to BF16 at run time (A5000 has no FP8 cores: weight-only path). Engine moe-infinity + expert-cache as for P037."),
 "P042": A(m=PRE, p=A(model="deepseek-r1", hw="a5000x1-1tb", precision="fp8", engine="moe-infinity", offload="expert-cache", batch="max", input_len=512, output_len=256),
           n=MOEGEN + "Prefill throughput of the same run (W8A16)."),
 "P043": A(m=OUT, p=A(model="deepseek-r1", hw="a5000x1-1tb", precision="q8_0", engine="llama.cpp", offload="auto", batch="max", input_len=512, output_len=256),
           n=MOEGEN + "llama.cpp offloaded; the table's W8A16 for llama.cpp means an 8-bit GGUF: q8_0 ASSUMED."),
 "P044": A(m=OUT, p=A(model="mixtral-8x22b", hw="a5000x1-1tb", precision="bf16", engine="moe-infinity", offload="expert-cache", batch="max", input_len=512, output_len=256),
           n=MOEGEN + "Engine moe-infinity + expert-cache as for P037."),
 # ---------------- dstack / evalscope serving ----------------
 "P045": A(m=OUT, x=True, p=A(model="deepseek-r1", hw="mi300xx8", precision="fp8", engine="vllm", tp=8, requests=500, batch=128, input_len=3200, output_len=800),
           n="500 prompts at the stated max concurrency, fixed lengths (random-range-ratio 1): requests=500. random 3200/800 (range ratio 1: fixed lengths), 500 prompts at max concurrency 128, vLLM TP8 as stated. Host 2x Xeon 8468 vs catalog EPYC host: irrelevant."),
 "P046": A(m=OUT, x=True, p=A(model="deepseek-r1", hw="h200x8", precision="fp8", engine="sglang", tp=8, attention_dp=True, requests=500, batch=128, input_len=3200, output_len=800),
           n="500 prompts at the stated max concurrency, fixed lengths (random-range-ratio 1): requests=500. SGLang --tp 8 --enable-dp-attention (0.4.3: DP size = TP size for attention, MoE TP8) -> attention_dp true. Fixed 3200/800, concurrency 128."),
 "P047": A(m=TPOT, v=0.02573, x=True, p=A(model="deepseek-r1", hw="h200x8", precision="fp8", engine="vllm", tp=8, requests=500, batch=4, input_len=3200, output_len=800),
           n="500 prompts at the stated max concurrency, fixed lengths (random-range-ratio 1): requests=500. vLLM TP8 FlashMLA, concurrency 4, fixed 3200/800. 25.73 ms -> 0.02573 s mean TPOT."),
 "P048": A(m=TPOT, v=0.03494, x=True, p=A(model="deepseek-r1", hw="mi300xx8", precision="fp8", engine="sglang", tp=8, requests=500, batch=4, input_len=3200, output_len=800),
           n="500 prompts at the stated max concurrency, fixed lengths (random-range-ratio 1): requests=500. SGLang TP8 on MI300X, concurrency 4, fixed 3200/800. 34.94 ms -> 0.03494 s."),
 "P049": A(m=OUT, p=A(model="gpt-oss-120b", hw="h100x2", precision="mxfp4", engine="vllm", tp=2, batch="max", requests=1000, output_len_dist="exponential", input_len=SHAREGPT_IN, output_len=SHAREGPT_OUT),
           n="Closed burst: requests submitted at once (request rate inf) -> requests and exponential output lengths (ShareGPT heavy tail, mean 194). " + GPUSTACK_H100 + SHAREGPT + "TP2 (new system h100x2); --async-scheduling not expressible."),
 "P050": A(m=OUT, p=A(model="gpt-oss-120b", hw="h100x4", precision="mxfp4", engine="vllm", tp=4, batch="max", requests=1000, output_len_dist="exponential", input_len=SHAREGPT_IN, output_len=SHAREGPT_OUT),
           n="Closed burst: requests submitted at once (request rate inf) -> requests and exponential output lengths (ShareGPT heavy tail, mean 194). " + GPUSTACK_H100 + SHAREGPT + "TP4; --async-scheduling not expressible."),
 "P051": A(m=OUT, p=A(model="qwen3-235b-a22b", hw="mi300xx8", precision="bf16", engine="vllm", tp=8, batch=256, requests=1024, max_num_seqs=512, max_num_batched_tokens=120000, input_len=67, output_len=127),
           n="evalscope --number 1024 at --parallel 256: requests=1024 (lengths 64-128: fixed approximates). evalscope --parallel 256, random prompts: avg 67.2 in / 127.4 out as measured -> 67 / 127. Azure ND MI300X v5 VM. Flags as stated. KV ~99% full."),
 "P052": A(m=OUT, p=A(model="deepseek-r1", hw="mi300xx8", precision="fp8", engine="sglang", tp=8, batch=300, requests=1000, max_num_batched_tokens=131072, input_len=374, output_len=148),
           n="evalscope --number 1000 at --parallel 300: requests=1000 (lengths 50-150: fixed approximates). evalscope --parallel 300 on C3-dialog: avg 374.3 in / 148.1 out -> 374 / 148; --chunked-prefill-size 131072 -> max_num_batched_tokens."),
 "P053": A(m=OUT, p=A(model="deepseek-r1", hw="mi300xx8", precision="fp8", engine="sglang", tp=8, batch=300, requests=1000, max_num_batched_tokens=131072, input_len=485, output_len=148),
           n="evalscope --number 1000 at --parallel 300: requests=1000 (lengths 50-150: fixed approximates). As P052 with min prompt 512: avg 484.7 in / 148.3 out -> 485 / 148."),
 # ---------------- Apple ----------------
 "P054": A(m=PU, p=A(model="qwen3-30b-a3b", hw="m2-ultra", precision="q8_0", engine="llama.cpp", batch=1, input_len=1, output_len=128),
           n=TG0 + "Metal. GPU core count / RAM not stated: the 76-core GPU, 192 GB Mac Studio (ggml's reference M2 Ultra) ASSUMED (new system m2-ultra); bandwidth 800 GB/s is the same for both bins. Q8_0 30.25 GiB."),
 "P055": A(m=PRE, p=A(model="qwen3-30b-a3b", hw="m2-ultra", precision="q8_0", engine="llama.cpp", batch=1, max_num_batched_tokens=2048, input_len=512, output_len=1),
           n="pp512 with -ub 2048. 76-core/192 GB M2 Ultra ASSUMED."),
 "P056": A(m=PRE, p=A(model="qwen3-30b-a3b", hw="m4-max", precision="int4", engine="llama.cpp", batch=1, input_len=2048, output_len=1),
           n="mlx-lm has no engine preset: llama.cpp (Metal) is the closest. MLX 4-bit (group 64, bf16 scale + bias = 4.5 bpw) modelled as int4 (4.16 bpw). Core count/RAM not stated: 40-core GPU, 546 GB/s, 128 GB M4 Max ASSUMED (new system m4-max)."),
 "P057": A(m=PRE, p=A(model="gpt-oss-20b", hw="m4-max", precision="int4", engine="llama.cpp", batch=1, input_len=2048, output_len=1),
           n="mlx-lm -> llama.cpp (Metal) preset. MLX 4-bit -> int4. 40-core M4 Max ASSUMED. 2048-token prompt."),
 "P058": A(m=PRE, p=A(model="gpt-oss-20b", hw="m1-pro", precision="mxfp4", engine="llama.cpp", batch=1, input_len=14745, output_len=1),
           n="MacBook Pro M1 Pro 32 GB (GPU core count not stated: 16-core bin ASSUMED; bandwidth 200 GB/s either way; new system m1-pro). 14,745-token prompt, llama.cpp defaults (ubatch 512)."),
 "P059": A(m=PU, p=A(model="gpt-oss-20b", hw="m1-pro", precision="mxfp4", engine="llama.cpp", batch=1, input_len=14745, output_len=275),
           n="275 tokens generated after the 14,745-token prompt (decode at ~15K context)."),
 "P060": A(m=PU, r=REFUSED, p=A(model="qwen3-30b-a3b", hw="m4-max", precision="int4", engine="llama.cpp", batch=1, input_len=1479, output_len=2023),
           n=REFUSED + ": Qwen3.5-35B-A3B's config is not in our references (qwen3-30b-a3b only a placeholder). Apple M5 Max specs are not in our sources either: m4-max stands in. 1,479 prompt / 2,023 completion tokens as stated."),
 "P061": A(m=PU, r=REFUSED, p=A(model="deepseek-v3", hw="m3-ultra", precision="int8", engine="llama.cpp", batch=1, input_len=1024, output_len=128),
           n=REFUSED + ": DeepSeek-V4-Flash's architecture is not in ../shared/reference or the CSV notes (deepseek-v3 is only a placeholder). oQ8 8-bit -> int8. pp1024/tg128. M3 Ultra 512 GB as stated."),
}

CLASSES = {"gpu-throughput", "gpu-latency", "gpu-cluster", "cpu", "hybrid", "offload", "apple"}


def build(csv_path: Path = CSV) -> list[dict]:
    rows = list(csv.DictReader(open(csv_path, newline="")))
    missing = [r["id"] for r in rows if r["id"] not in ROWS]
    extra = sorted(set(ROWS) - {r["id"] for r in rows})
    if missing or extra:
        raise SystemExit(f"mapping out of step with the CSV: missing {missing}, extra {extra}")
    out = []
    for r in rows:
        e = ROWS[r["id"]]
        value = float(e.get("v", r["value"]))
        assert math.isfinite(value) and value > 0, r["id"]
        assert r["class"] in CLASSES, r["id"]
        measured = {"metric": e["m"], "value": value, "per": e.get("per", "system")}
        if "per_count" in e:
            measured["per_count"] = e["per_count"]
        case = {"id": r["id"], "class": r["class"], "reliability": r["reliability"].strip()[0],
                "source": r["source"].strip(), "measured": measured, "predict": e["p"],
                "exact": bool(e.get("x", False)), "note": e["n"].strip()}
        if "r" in e:
            case["refused_reason"] = e["r"]
        out.append(case)
    return out


def main(argv: list[str]) -> None:
    cases = build(Path(argv[1]) if len(argv) > 1 else CSV)
    header = ("# Published measurements of real MoE deployments as moecap-sim cases: one per row of\n"
              "# ../shared/reference/published_measurements.csv (see README.md in this folder).\n"
              "# GENERATED by build_cases.py from the CSV and its per-row mapping: edit the mapping there.\n")

    class Dumper(yaml.SafeDumper):
        pass
    Dumper.add_representer(dict, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data.items()))
    # flow style for the small measured/predict maps
    text = ""
    for c in cases:
        block = {k: v for k, v in c.items()}
        s = yaml.dump([block], Dumper=Dumper, sort_keys=False, width=10_000, allow_unicode=True,
                      default_flow_style=None)
        text += s
    (HERE / "cases.yaml").write_text(header + text)
    print(f"wrote {len(cases)} cases to {HERE / 'cases.yaml'}")


if __name__ == "__main__":
    main(sys.argv)
