"""A deployment: model + system + precision + parallelism, resolved and checked.

This is the single place where user choices are validated against each other (impossible
flag combinations are :class:`UserError`, exit 2) and turned into the per-device quantities the
memory planner and the cost model share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from moecap_sim.catalog.hardware import devices, systems
from moecap_sim.catalog.models import get_model
from moecap_sim.errors import UserError
from moecap_sim.precision import KV_BYTES, WeightScheme, check_kv_dtype, resolve_scheme
from moecap_sim.specs.hardware import DeviceSpec, SystemSpec
from moecap_sim.specs.model import ModelSpec


@dataclass(frozen=True)
class Parallelism:
    """TP × PP devices per replica, DP replicas; EP shards routed experts over ``ep`` ranks
    (within the TP group when ep ≤ tp, across DP ranks — DeepSeek-style wide EP — when ep > tp)."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1

    @property
    def devices_used(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def expert_shards(self) -> int:
        """Ways the routed-expert weights are split per pipeline stage."""
        return max(self.tp, self.ep)

    def as_dict(self) -> dict:
        return {"tp": self.tp, "pp": self.pp, "dp": self.dp, "ep": self.ep, "devices": self.devices_used}


@dataclass(frozen=True)
class Deployment:
    model: ModelSpec
    system: SystemSpec
    accelerator: Optional[DeviceSpec]  # None for a CPU-only system
    host_cpu: DeviceSpec
    scheme: WeightScheme
    kv_dtype: str
    parallelism: Parallelism
    gpu_memory_utilization: float = 0.9
    notes: tuple[str, ...] = field(default_factory=tuple)
    nodes: int = 1  # identical boxes; ``system`` is already the whole cluster (see scale_system)
    devices_per_node: int = 0  # accelerators in one box (0: single box)
    scale_out_gb_s: Optional[float] = None  # per device per direction, between boxes
    scale_out_latency_us: Optional[float] = None
    attention_dp: bool = False

    @property
    def kv_bytes(self) -> float:
        return KV_BYTES[self.kv_dtype]

    @property
    def device_count(self) -> int:
        return self.system.accelerators.count if self.system.accelerators else 0

    @property
    def cpu_only(self) -> bool:
        return self.accelerator is None

    @property
    def unified_memory(self) -> bool:
        return self.accelerator is not None and self.accelerator.kind == "unified"

    @property
    def host_dram_bandwidth_gb_s(self) -> float:
        h = self.system.host
        return h.dram_bandwidth_gb_s or h.cpu.sockets * self.host_cpu.memory.bandwidth_gb_s


def device_of(system: SystemSpec, ref: str) -> DeviceSpec:
    """Resolve a system's device reference: a catalog name, or a YAML path (relative paths are
    relative to the system file, so a probed system and its device file travel together)."""
    if ref.endswith((".yaml", ".yml")) and system.path and not Path(ref).is_absolute():
        ref = str(Path(system.path).parent / ref)
    return devices().get(ref)


def default_kv_dtype(accel: Optional[DeviceSpec]) -> str:
    """bf16 where the device has it, else fp16 (T4, V100-class)."""
    if accel is not None and not accel.supports("bf16") and accel.supports("fp16"):
        return "fp16"
    return "bf16"


#: Default scale-out fabric when a system file has none: one 400 Gb/s InfiniBand NDR / RoCE NIC
#: per accelerator (ConnectX-7, 50 GB/s per direction), ~5 µs one-way latency through a
#: switch (NVIDIA ConnectX-7 datasheet: 400 Gb/s; NDR switch port-to-port latency < 1 µs plus
#: NIC/PCIe ~2 µs each way).  An assumption, labelled as such in the prediction's notes.
DEFAULT_SCALE_OUT_GB_S = 50.0
DEFAULT_SCALE_OUT_LATENCY_US = 5.0


def scale_system(s: SystemSpec, nodes: int) -> SystemSpec:
    """``nodes`` identical copies of box ``s`` as one system: accelerators, host DRAM, NVMe and
    prices multiply; per-device quantities are unchanged."""
    if nodes == 1:
        return s
    acc = s.accelerators.model_copy(update={"count": s.accelerators.count * nodes}) if s.accelerators else None
    host = s.host.model_copy(update={
        "dram_gb": s.host.dram_gb * nodes,
        "dram_bandwidth_gb_s": s.host.dram_bandwidth_gb_s * nodes if s.host.dram_bandwidth_gb_s else None,
        "nvme_gb": s.host.nvme_gb * nodes if s.host.nvme_gb else None,
        "host_power_w": s.host.host_power_w * nodes if s.host.host_power_w else None})
    price = {k: getattr(s.pricing, k) * nodes for k in ("on_demand_usd_per_hour", "spot_usd_per_hour", "purchase_usd")
             if getattr(s.pricing, k)}
    return s.model_copy(update={"name": f"{nodes}x{s.name}", "display_name": f"{nodes} × {s.display_name}",
                                "accelerators": acc, "host": host, "pricing": s.pricing.model_copy(update=price)})


def resolve_deployment(model: str | ModelSpec, hw: str | SystemSpec, *, precision: Optional[str] = None,
                       kv_dtype: Optional[str] = None, tp: Optional[int] = None, pp: int = 1,
                       dp: int = 1, ep: int = 1, nodes: int = 1, attention_dp: bool = False,
                       gpu_memory_utilization: float = 0.9) -> Deployment:
    """Resolve names (or paths) and check the parallel layout against the system.

    Defaults: TP over every accelerator of the system not used by PP/DP; EP off; the model's
    native weight scheme; a 16-bit KV cache.  ``nodes`` > 1 joins that many boxes over the
    system's scale-out network.  ``attention_dp`` is the DeepSeek-style layout: attention data
    parallel on every device (TP 1, DP = devices), routed experts expert-parallel over all of them.
    """
    m = get_model(model) if isinstance(model, str) else model
    box = systems().get(hw) if isinstance(hw, str) else hw
    if nodes < 1:
        raise UserError(f"--nodes must be ≥ 1, got {nodes}")
    if nodes > 1 and not box.accelerators:
        raise UserError(f"--nodes {nodes}: {box.name} is a CPU-only system; multi-node serving is modelled for "
                        f"accelerator systems")
    s = scale_system(box, nodes)
    accel = device_of(s, s.accelerators.device) if s.accelerators else None
    host = device_of(s, s.host.cpu.device)
    notes = []
    scale_out = getattr(box, "scale_out", None)
    so_bw = so_lat = None
    if nodes > 1:
        if scale_out is not None:
            so_bw, so_lat = scale_out.bandwidth_gb_s, scale_out.latency_us
        else:
            so_bw, so_lat = DEFAULT_SCALE_OUT_GB_S, DEFAULT_SCALE_OUT_LATENCY_US
            notes.append(f"{box.name} declares no scale_out network: assumed one 400 Gb/s NIC per accelerator "
                         f"({so_bw:g} GB/s, {so_lat:g} µs)")
    if attention_dp:
        n_dev = s.accelerators.count if s.accelerators else 1
        if not m.arch.moe_layers:
            raise UserError("--attention-dp needs a model with MoE layers (it pairs attention DP with expert parallelism)")
        tp, dp, ep = 1, n_dev // pp, n_dev // pp
    if not (0.05 <= gpu_memory_utilization <= 1.0):
        raise UserError(f"--gpu-memory-utilization must be in [0.05, 1.0], got {gpu_memory_utilization}")
    for flag, v in (("--pp", pp), ("--dp", dp), ("--ep", ep)):
        if v < 1:
            raise UserError(f"{flag} must be ≥ 1, got {v}")
    n = s.accelerators.count if s.accelerators else 1
    if tp is None:
        tp = max(1, n // (pp * dp))
    if tp < 1:
        raise UserError(f"--tp must be ≥ 1, got {tp}")
    if tp * pp * dp > n:
        where = f"{s.name} has {n} accelerator(s)" if s.accelerators else f"{s.name} is a CPU-only system (parallelism is over 1 host)"
        raise UserError(f"--tp {tp} × --pp {pp} × --dp {dp} = {tp * pp * dp} devices, but {where}")
    if tp * pp * dp < n:
        notes.append(f"uses {tp * pp * dp} of the {n} accelerators")
    if ep > 1:
        if not m.arch.moe_layers:
            raise UserError("--ep needs a model with MoE layers")
        if (tp * dp) % ep != 0:
            raise UserError(f"--ep {ep} must divide tp×dp = {tp * dp} (expert-parallel ranks are TP/DP ranks)")
        if m.arch.num_experts % ep != 0:
            notes.append(f"{m.arch.num_experts} experts do not divide evenly over {ep} EP ranks")
    heads = m.arch.layers[0].attention.num_heads
    if heads % tp != 0:
        notes.append(f"{heads} attention heads do not divide by TP={tp}; engines such as vLLM refuse this layout")
    if pp > m.arch.num_layers:
        raise UserError(f"--pp {pp} exceeds the model's {m.arch.num_layers} layers")
    scheme = resolve_scheme(m.native_precision, precision)
    kv = check_kv_dtype(kv_dtype) if kv_dtype else default_kv_dtype(accel)
    return Deployment(model=m, system=s, accelerator=accel, host_cpu=host, scheme=scheme, kv_dtype=kv,
                      parallelism=Parallelism(tp=tp, pp=pp, dp=dp, ep=ep),
                      gpu_memory_utilization=gpu_memory_utilization, notes=tuple(notes), nodes=nodes,
                      devices_per_node=box.accelerators.count if box.accelerators else 0,
                      scale_out_gb_s=so_bw, scale_out_latency_us=so_lat, attention_dp=attention_dp)
