"""Where and in which precision the trainer runs: device, autocast dtype, memory format."""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from drop_core.errors import DropError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp32")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")   # /proc/cpuinfo flags of CPUs with native bf16 math
EVAL_BATCH = {"cuda": 1024, "cpu": 128}         # samples per eval forward; on CPU larger batches fall out of cache
# channels_last for 4-D image batches: on CUDA (tensor cores), and on CPU too, where oneDNN measured here
# (1 thread, AVX-512 BF16) gave cnn +60% train / +70-120% eval, lenet +30%, resnet18/vgg16 within +-6%
CHANNELS_LAST_DEVICES = ("cuda", "cpu")
# glibc malloc: serve blocks up to 32 MiB (glibc's maximum) from the heap and keep up to 256 MiB of freed heap
# instead of handing it back to the kernel (mallopt M_MMAP_THRESHOLD = -3, M_TRIM_THRESHOLD = -1)
MALLOC_SETTINGS = ((-3, 32 << 20), (-1, 256 << 20))
_allocator_tuned = False


@dataclass(frozen=True)
class Runtime:
    """A resolved device plus the precision and memory format used on it."""

    device: torch.device
    dtype: torch.dtype          # torch.bfloat16 (autocast) or torch.float32
    channels_last: bool         # 4-D image batches (and the model) in channels_last layout

    @property
    def eval_batch(self) -> int:
        """Default batch size of eval-mode forward passes on this device."""
        return EVAL_BATCH.get(self.device.type, EVAL_BATCH["cpu"])

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on this device, or a no-op in fp32."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def place(self, model: torch.nn.Module, image: bool) -> torch.nn.Module:
        """Move ``model`` to the device (in channels_last for image input where this runtime uses it)."""
        model.to(self.device)
        if self.channels_last and image:
            model.to(memory_format=torch.channels_last)
        return model

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """Put a 4-D image batch into the memory format the model uses."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x


def keep_freed_memory() -> bool:
    """Let glibc reuse the CPU trainer's large per-step buffers instead of returning them to the kernel.

    Autograd frees and re-allocates the same multi-MB activation and gradient buffers every
    step; glibc's defaults serve those by mmap and give them back on free, so every step pays
    for thousands of fresh page faults (kernel time that grows with the load on the machine).
    With these settings the process keeps up to 256 MiB of freed heap for reuse. Process-wide
    and set once; True where applied (Linux with glibc), False elsewhere (nothing changes).
    """
    global _allocator_tuned
    if not _allocator_tuned and platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _allocator_tuned = all(libc.mallopt(param, value) == 1 for param, value in MALLOC_SETTINGS)
    return _allocator_tuned


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn "auto" / "cpu" / "cuda" / "cuda:N" (or a torch.device) into a usable torch.device."""
    name = str(device)
    kind = name.split(":")[0]
    if kind not in DEVICES or (":" in name and kind != "cuda"):
        raise DropError(
            f"The 'device' parameter must be one of {', '.join(DEVICES)} (or cuda:N). Got {name!r} instead."
        )
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DropError(
            f"Device {name!r} was requested but PyTorch sees no CUDA GPU on this machine; "
            "use --device cpu (or auto)."
        )
    return torch.device(name)


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True if the CPU flags (``/proc/cpuinfo`` text, read when not given) include native bf16 math."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    flags = set(cpuinfo.split())
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def resolve_precision(precision: str, device: torch.device, *, cpuinfo: str | None = None) -> torch.dtype:
    """Autocast dtype for ``precision`` on ``device``.

    "auto" picks bf16 on CUDA GPUs that support it and on CPUs with native bf16
    (avx512_bf16 / amx_bf16), else fp32. "bf16" and "fp32" are taken as given.
    """
    if precision not in PRECISIONS:
        raise DropError(
            f"The 'precision' parameter must be one of {', '.join(PRECISIONS)}. Got {precision!r} instead."
        )
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_native_bf16(cpuinfo) else torch.float32


def resolve_runtime(device: str | torch.device, precision: str = "auto") -> Runtime:
    """Device, autocast dtype and memory format in one object."""
    dev = resolve_device(device)
    return Runtime(device=dev, dtype=resolve_precision(precision, dev),
                   channels_last=dev.type in CHANNELS_LAST_DEVICES)
