"""The machine a benchmark ran on, in one line: every benchmark prints it beside its figures."""

from __future__ import annotations

import os
import platform


def describe() -> str:
    """Architecture, CPU model, core count and OS, e.g. 'x86_64, Intel(R) Xeon(R) ..., 2 cores, Linux 6.1'."""
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{platform.machine()}, {model or 'unknown CPU'}, {os.cpu_count()} cores, "
            f"{platform.system()} {platform.release()}")
