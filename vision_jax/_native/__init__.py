"""Native CPU kernels: C++ sources shipped with the package, compiled on first use with the
system's C++ compiler against jaxlib's FFI headers, cached, and registered as XLA FFI targets.

A kernel is used only on CPU and only where it compiles; everything has a pure-JAX path, which
runs on other platforms, without a compiler, or when ``VISION_JAX_NATIVE=0`` is set. Compiled
libraries are cached under ``$VISION_JAX_CACHE_DIR`` (default ``~/.cache/vision_jax``), keyed by
the source, the compiler and its flags, jaxlib's version and the CPU's instruction-set flags (the
code is built for the machine it runs on). ``CXX`` names the compiler (default ``c++``).

Kernels: ``matching_pursuit.cc`` (:mod:`vision_jax.sparse`) and ``retina.cc``, the retina
cascade without spikes and its hand-written reverse pass (:mod:`vision_jax.retina._adjoint`,
``retina.run(..., adjoint="native")``).

Measured (``benchmarks/bench_sparse.py``: 2-core AVX-512 CPU, 4096 patches, 676 atoms, 21 steps,
same process, three runs): the matching pursuit kernel codes 1.0-1.1x as fast as XLA's blocked
program (MP) and 1.03-1.27x (HEH), with the same entries. For the retina's gradient see
``benchmarks/bench_retina.py`` and the README.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import jax
import jaxlib

__all__ = ["available", "target"]

# kernel name -> (source, {suffix: handler symbol}); a handler registers as vision_jax_<name>[_<suffix>]
_SOURCES = {"matching_pursuit": ("matching_pursuit.cc", {"": "VisionJaxMatchingPursuit"}),
            "retina": ("retina.cc", {"forward": "VisionJaxRetinaForward", "backward": "VisionJaxRetinaBackward"})}
_BASE_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-ffast-math"]
# -ffast-math lets the compiler vectorise exp (glibc's libmvec) and the max reductions; inputs
# are finite (checked by the public entry points)
_MACHINE_FLAGS = ["-march=native", "-mprefer-vector-width=512"]


def _enabled() -> bool:
    return os.environ.get("VISION_JAX_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


def _cache_dir() -> Path:
    if os.environ.get("VISION_JAX_CACHE_DIR"):
        return Path(os.environ["VISION_JAX_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vision_jax"


def _cpu_signature() -> str:
    """The instruction-set flags of this CPU (a library built with -march=native runs only there)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine() + platform.processor()


def _compile(source: Path, out: Path, compiler: str) -> str | None:
    """Builds ``source`` into ``out``; returns None or the compiler's complaint."""
    include = jax.ffi.include_dir()
    errors = []
    for flags in (_BASE_FLAGS + _MACHINE_FLAGS, _BASE_FLAGS):
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
        os.close(fd)
        cmd = [compiler, *flags, f"-I{include}", str(source), "-o", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as err:
            os.unlink(tmp)
            return str(err)
        if proc.returncode == 0:
            os.replace(tmp, out)  # atomic: concurrent processes may build the same library
            return None
        os.unlink(tmp)
        errors.append(proc.stderr.strip()[-2000:])
    return "\n".join(errors)


@functools.cache
def target(name: str) -> str | None:
    """The FFI target name of kernel ``name``, compiled and registered for CPU; None where unavailable.

    A kernel with several handlers registers each as ``<target>_<suffix>`` (e.g. the retina's
    ``vision_jax_retina_forward`` and ``vision_jax_retina_backward``).
    """
    if not _enabled():
        return None
    filename, symbols = _SOURCES[name]
    source = Path(__file__).with_name(filename)
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        warnings.warn(f"vision_jax: no C++ compiler found for the native {name} kernel; using the pure-JAX "
                      "implementation (slower on CPU). Set CXX, or VISION_JAX_NATIVE=0 to silence this.",
                      RuntimeWarning, stacklevel=3)
        return None
    key = hashlib.sha256()
    for part in (source.read_bytes(), compiler.encode(), " ".join(_BASE_FLAGS + _MACHINE_FLAGS).encode(),
                 jaxlib.__version__.encode(), _cpu_signature().encode()):
        key.update(part)
        key.update(b"\0")
    library = _cache_dir() / f"{name}-{key.hexdigest()[:20]}.so"
    if not library.exists():
        try:
            problem = _compile(source, library, compiler)
        except OSError:  # the cache folder cannot be written: build in the temporary folder
            library = Path(tempfile.gettempdir()) / f"vision_jax-{os.getuid() if hasattr(os, 'getuid') else 0}" / library.name
            problem = None if library.exists() else _compile(source, library, compiler)
        if problem is not None:
            warnings.warn(f"vision_jax: the native {name} kernel did not compile ({compiler}); using the pure-JAX "
                          f"implementation (slower on CPU). Set VISION_JAX_NATIVE=0 to silence this.\n{problem}",
                          RuntimeWarning, stacklevel=3)
            return None
    try:
        lib = ctypes.cdll.LoadLibrary(str(library))
        ffi_name = f"vision_jax_{name}"
        for suffix, symbol in symbols.items():
            jax.ffi.register_ffi_target(f"{ffi_name}_{suffix}" if suffix else ffi_name,
                                        jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    except (OSError, AttributeError) as err:
        warnings.warn(f"vision_jax: the native {name} kernel could not be loaded from {library} ({err}); using the "
                      "pure-JAX implementation.", RuntimeWarning, stacklevel=3)
        return None
    return ffi_name


def available(name: str) -> bool:
    """Whether kernel ``name`` runs natively on CPU in this process (compiling it if needed)."""
    return target(name) is not None
