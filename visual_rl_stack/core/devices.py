"""
Device choice shared by every model: ``auto`` picks CUDA when present, else CPU.

Mixed precision and compilation only pay off (and are only tested) on CUDA, so
both are no-ops on CPU; nothing else in the stack hard-codes a device.
"""

from contextlib import AbstractContextManager, nullcontext
import threading

import torch
from torch import nn

DEVICE_NAMES = ('auto', 'cpu', 'cuda')


def resolve_device(name: str = 'auto') -> torch.device:
    """Turn a user-facing device name (``auto``, ``cpu``, ``cuda``, ``cuda:N``) into a device."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    kind = name.split(':', 1)[0]
    if kind not in DEVICE_NAMES[1:]:
        raise ValueError(f'unknown device {name!r}; expected one of {DEVICE_NAMES} or cuda:N')
    if kind == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {name!r} requested but CUDA is not available here; '
                         "use 'auto' or 'cpu'")
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise ValueError(f'invalid device {name!r}: {error}') from error


def autocast_context(device: torch.device) -> AbstractContextManager:
    """Return bf16 autocast on CUDA; on CPU full precision keeps results reproducible."""
    if device.type == 'cuda':
        return torch.autocast(device_type='cuda', dtype=torch.bfloat16)
    return nullcontext()


def maybe_compile(module: nn.Module, device: torch.device, enabled: bool) -> nn.Module:
    """Return ``torch.compile(module)`` on CUDA when enabled, else ``module`` unchanged."""
    if enabled and device.type == 'cuda':
        return torch.compile(module)
    return module


def limit_thread_torch(threads: int) -> None:
    """
    Give the torch ops of the calling (worker) thread ``threads`` intra-op threads.

    Why: a second live thread with its own multi-threaded OpenMP pool made every
    torch op of the main thread ~4x slower on 2 cores (a policy chunk 32 -> 122 ms,
    measured); one thread keeps the worker out of the pool. The setting is per
    thread with torch's OpenMP backend, so the other threads keep theirs.
    """
    torch.set_num_threads(int(threads))


_THREAD_SETTING = threading.local()


def limit_callback_torch(threads: int) -> None:
    """
    :func:`limit_thread_torch` for a ROS callback: once per thread that runs it.

    Why: a node's inference runs on whichever thread spins its executor (the
    main thread under ``ros2 launch``, a background one in ``vrl bringup``),
    and with torch's default threads the policy node of the simulated graph
    on 2 cores missed 18 % of its control steps (``vrl bench soak``); with
    one thread, 0.1 %.
    """
    if getattr(_THREAD_SETTING, 'threads', None) != threads:
        limit_thread_torch(threads)
        _THREAD_SETTING.threads = threads
