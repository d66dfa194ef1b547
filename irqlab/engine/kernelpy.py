"""The kernel's own Python, run with the JIT off: the readable reference (backend
``reference``).

The kernel's modules (:data:`irqlab.engine.kernelrun.KERNEL_SOURCES`) are written in
Numba's compilable subset, so they also run as plain Python. Numba decides at decoration
time whether ``njit`` compiles (``numba.config.DISABLE_JIT``), so :func:`python_kernel`
imports a second, private copy of those modules with the JIT off, beside the compiled
ones: ``sys.modules`` and the ``irqlab.engine`` package are left as they were, and the
compiled kernel keeps running in the same process. A third-party kernel hook's module
(``kernel_hook = "module:function"``) is imported into the same private copy, so its
helpers from :mod:`irqlab.engine.kernel_api` are the Python ones too.

The two executions differ only in who runs the code: Python's integers and NumPy's
scalars, or LLVM. ``tests/engine/test_kernel_python.py`` checks that they agree.
"""

from __future__ import annotations

import _imp
import importlib
import sys
import threading
from types import ModuleType

_lock = threading.Lock()
_copies: dict[str | None, dict[str, ModuleType]] = {}


def python_kernel(hook_module: str | None = None) -> dict[str, ModuleType]:
    """The private JIT-off copy of the kernel's modules, by full name (``"irqlab.engine.kernel"``
    and the rest of ``KERNEL_SOURCES``), plus ``hook_module`` if given. Imported once per
    process and ``hook_module``."""
    with _lock:
        if hook_module not in _copies:
            _copies[hook_module] = _import_without_jit(hook_module)
        return _copies[hook_module]


def _import_without_jit(hook_module: str | None) -> dict[str, ModuleType]:
    import numba

    from irqlab.engine.kernelrun import KERNEL_SOURCES

    names = [f"irqlab.engine.{stem}" for stem in KERNEL_SOURCES]
    if hook_module is not None and hook_module not in names:
        importlib.import_module(hook_module.rpartition(".")[0] or hook_module)  # its package, compiled
        names.append(hook_module)
    jit_off = numba.config.DISABLE_JIT
    _imp.acquire_lock()  # no other thread imports (or decorates with the JIT off) meanwhile
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    # ``from irqlab.engine import kernel_idle`` takes the package's attribute if it has one
    attrs = {n: _parent_attr(n) for n in names}
    for n, (parent, child, _) in attrs.items():
        if parent is not None and hasattr(parent, child):
            delattr(parent, child)
    numba.config.DISABLE_JIT = True
    try:
        for n in names:
            importlib.import_module(n)
        return {n: sys.modules[n] for n in names}
    finally:
        numba.config.DISABLE_JIT = jit_off
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)
        for parent, child, value in attrs.values():
            if parent is None:
                continue
            if value is _ABSENT:
                if hasattr(parent, child):
                    delattr(parent, child)
            else:
                setattr(parent, child, value)
        _imp.release_lock()


_ABSENT = object()


def _parent_attr(name: str):
    """``(parent package or None, child name, the package's attribute or _ABSENT)``."""
    parent, _, child = name.rpartition(".")
    package = sys.modules.get(parent) if parent else None
    return package, child, getattr(package, child, _ABSENT) if package is not None else _ABSENT
