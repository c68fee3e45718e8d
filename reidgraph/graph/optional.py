"""The optional kNN libraries, pykeops and faiss: whether each imports (and KeOps runs), and the one-line
error naming the install command where a backend needs one that is missing."""
from __future__ import annotations

import functools
import subprocess
import sys
import warnings


def faiss_module(user: str, instead: str = ""):
    """``faiss``, or a ``ValueError`` saying that ``user`` (e.g. ``"backend='faiss'"``) needs it, how to install
    it, and ``instead`` (e.g. ``" or use backend='torch'"``)."""
    try:
        import faiss
    except ImportError:
        raise ValueError(f"{user} needs faiss, which is not installed; run `pip install faiss-cpu`{instead}") from None
    return faiss


def faiss_available() -> bool:
    """Whether faiss imports."""
    try:
        faiss_module("")
    except ValueError:
        return False
    return True


def keops_available() -> bool:
    """Whether pykeops imports (it compiles formulas with g++ on first use)."""
    try:
        import pykeops  # noqa: F401
    except ImportError:
        return False
    return True


def keops_cuda() -> bool:
    """Whether pykeops found a CUDA toolchain (``pykeops.config.gpu_available``).

    Without one (nvrtc not found: the pip wheels of torch for CUDA 13 ship ``libnvrtc.so.13`` where
    ``ctypes.util.find_library`` does not look), pykeops 2.3 switches to CPU only and then runs its CPU
    kernel on the raw pointers of CUDA tensors, which crashes the interpreter.
    """
    if not keops_available():
        return False
    import pykeops.config

    return bool(pykeops.config.gpu_available)


@functools.lru_cache(maxsize=None)
def keops_runs(device_type: str) -> bool:
    """Whether a tiny KeOps kNN runs on ``device_type``, tried once in a subprocess.

    A broken KeOps/CUDA toolchain can crash the interpreter (a segfault while
    linking its kernels, seen with pykeops 2.3 and CUDA 13), which no
    ``try`` catches; the subprocess keeps that crash out of the caller.
    """
    if not keops_available():
        return False
    probe = ("import torch; from pykeops.torch import LazyTensor as L; "
             f"x = torch.randn(64, 8, device='{device_type}'); "
             "(-(L(x[:, None]) | L(x[None]))).Kmin_argKmin(3, dim=1)")
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=600)
    except subprocess.TimeoutExpired:
        return False
    if done.returncode != 0:
        warnings.warn(f"KeOps failed a self-test on {device_type} (exit code {done.returncode}); "
                      "backend='auto' uses the torch kNN instead", RuntimeWarning, stacklevel=3)
    return done.returncode == 0
