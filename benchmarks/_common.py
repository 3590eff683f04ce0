"""Small helpers shared by the benchmark scripts: timing, machine info, tables."""

from __future__ import annotations

import gc
import os
import platform
import sys
import time


def best_of(func, repeat: int = 3):
    """Run ``func()`` ``repeat`` times; return (best wall time in s, last result).

    The garbage collector runs before each repetition and is disabled while
    timing, so one run does not pay for another's garbage.
    """
    best, result = float("inf"), None
    for _ in range(max(1, int(repeat))):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            result = func()
            elapsed = time.perf_counter() - start
        finally:
            gc.enable()
        best = min(best, elapsed)
    return best, result


def machine_info() -> dict:
    """Cores, memory, CPU model, Python and library versions."""
    import numpy
    import scipy

    info = {
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "logical cores": os.cpu_count(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }
    try:
        import psutil

        info["physical cores"] = psutil.cpu_count(logical=False)
        info["memory"] = f"{psutil.virtual_memory().total / 2 ** 30:.1f} GiB"
        info["load average"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except (ImportError, OSError):
        pass
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_machine_info(info: dict | None = None) -> None:
    info = info or machine_info()
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"  {key:<{width}} : {value}")


def print_table(headers, rows, align=None) -> None:
    """Plain-text table; ``align`` is a string of 'l'/'r' per column."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align or "l" + "r" * (len(headers) - 1)

    def fmt(row):
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align))

    print(fmt(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(fmt(row))


def si(value: float) -> str:
    """Compact number with a k/M/G suffix (samples per second)."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {suffix}"
    return f"{value:.0f}"
