"""What machine a benchmark figure comes from: the device name (GPU model or CPU model name), the CPU's vector
extensions and whether it has native bf16 arithmetic (AVX512-BF16 or AMX-BF16), for the JSON records of bench/*.py.
"""

from __future__ import annotations

import platform

import torch

__all__ = ["cpu_flags", "cpu_model_name", "cpu_native_bf16", "device_fields", "device_name"]


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:  # not Linux
        return ""


def cpu_model_name() -> str:
    """``model name`` of /proc/cpuinfo (e.g. ``AMD EPYC 9R14``), else ``platform.processor()`` or the machine type."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU feature flags of /proc/cpuinfo (empty off Linux)."""
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_native_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (AVX512-BF16 or AMX-BF16), so bf16 matmuls are not emulated."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def device_name(device) -> str:
    """``torch.cuda.get_device_name`` for a CUDA device, the CPU model name otherwise."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model_name()


def device_fields(device) -> dict:
    """Fields every record of bench/run_all.py carries: the device and, on a CPU, its vector extensions."""
    device = torch.device(device)
    fields = {"device_name": device_name(device), "torch": torch.__version__}
    if device.type == "cpu":
        flags = cpu_flags()
        fields.update(
            cpu_capability=torch.backends.cpu.get_cpu_capability(),
            cpu_native_bf16=cpu_native_bf16(),
            cpu_amx=any(f.startswith("amx") for f in flags),
            torch_threads=torch.get_num_threads(),
        )
    return fields
