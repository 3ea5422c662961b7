"""A run's figures: percentiles, latency tables, rates, the machine's size, printing and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def latency_table(latencies: Mapping[str, Sequence[float]]) -> dict[str, dict[str, float]]:
    """Return n, p50, p99 and max in ms for every kind of request, and for all of them."""
    table = {}
    everything: list[float] = []
    for kind in sorted(latencies):
        values = latencies[kind]
        everything += values
        table[kind] = summary(values)
    table["all requests"] = summary(everything)
    return table


def summary(values: Sequence[float]) -> dict[str, float]:
    """Return n, p50, p99 and max of one list of latencies."""
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50), 1),
        "p99_ms": round(percentile(values, 99), 1),
        "max_ms": round(max(values), 1) if values else float("nan"),
    }


def peak_rate(times: Sequence[float], window: float = 10.0) -> float:
    """Return the highest number of events per second over any `window`-second span."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best / window


def machine() -> dict[str, Any]:
    """Return the machine's size: cores, memory and the load average at the start."""
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(pages / 2**30, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def best_of(repeat: int, run: Callable[[], Any], quiet: bool = False) -> tuple[float, Any]:
    """Return the fastest wall time of `repeat` runs and the last result (with `quiet`, the
    runs' warnings are not shown)."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def print_figures(figures: Mapping[str, Any]) -> None:
    """Print a run's figures, one per line."""
    for key, value in figures.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            print(f"{key}:")
            for name, row in value.items():
                print(f"    {name:22} " + "  ".join(f"{k} {v}" for k, v in row.items()))
        else:
            print(f"{key:34} {value}")


def write_json(path: Path | None, figures: Mapping[str, Any]) -> None:
    """Write the figures as JSON when a path was given."""
    if path is not None:
        path.write_text(json.dumps(figures, indent=2, default=str) + "\n")


def run_json(command: list[str], what: str, timeout: float = 7200) -> dict[str, Any]:
    """Run a command that prints its figures as JSON on its last line; return them.

    Exits (SystemExit) with the command's error output when it fails.
    """
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])
