"""Each measurement runs in a child process of its own, so that its peak RSS is its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ChildResult:
    result: dict
    wall_seconds: float  # the whole child process: interpreter start, imports and the task
    peak_rss_bytes: int  # of the child or any process it waited for (VmHWM, see bench.worker)
    cpu_seconds: float


class ChildFailed(RuntimeError):
    pass


def graph_environment(home: Path, partitions_start: str, timezone: str) -> dict[str, str]:
    """The KARTE_* variables of a benchmark warehouse (read once, when karte_assets is imported)."""
    return {
        "KARTE_ENV": "local",
        "KARTE_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "KARTE_PARTITIONS_START": partitions_start,
        "KARTE_TIMEZONE": timezone,
        "KARTE_EVENTS_SOURCE": "synthetic",
    }


def run_child(
    task: str, spec: dict, env: dict[str, str] | None = None, timeout: float = 3 * 3600
) -> ChildResult:
    """Run ``bench.worker`` task ``task`` with ``spec`` in a fresh interpreter; its JSON result.

    The child's output (Dagster's run log) goes to ``$KARTE_BENCH_LOG``, appended.
    """
    log_path = Path(os.environ.get("KARTE_BENCH_LOG", os.devnull))
    with tempfile.TemporaryDirectory(prefix="karte-bench-") as tmp, open(log_path, "ab") as output:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec, default=str))
        output.write(f"\n=== {task} {json.dumps(spec, default=str)}\n".encode())
        output.flush()
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", task, str(spec_path), str(result_path)],
            env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
            cwd=Path(__file__).resolve().parent.parent,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                raise ChildFailed(f"{task} ran past {timeout:.0f}s")
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        if process.returncode != 0:
            raise ChildFailed(
                f"{task} failed with exit code {process.returncode} (spec {spec}); "
                f"its output is at the end of {log_path}:\n{_tail(log_path)}"
            )
        result = json.loads(result_path.read_text())
        return ChildResult(
            result=result,
            wall_seconds=wall,
            peak_rss_bytes=result["peak_rss"],
            cpu_seconds=usage.ru_utime + usage.ru_stime,
        )


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def fresh_home(home: Path) -> None:
    """An empty $KARTE_HOME with a Dagster instance configured as the project's (dagster.yaml)."""
    shutil.rmtree(home, ignore_errors=True)
    (home / "dagster").mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parent.parent / "dagster.yaml", home / "dagster" / "dagster.yaml")
