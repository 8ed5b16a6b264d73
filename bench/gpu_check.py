"""``make gpu-check``: does the training image's GPU learner work here, and is it worth it?

    python3 bench/gpu_check.py               # 1M rows; builds the environment first
    python3 bench/gpu_check.py --rows 200000

Builds the training image's Python environment (the lock's ``training`` group only, as
docker/training.Dockerfile does) into ``$KARTE_HOME/gpu-check-venv``, then, in it, trains the
loyalty model on synthetic snapshots with ``device_type=gpu`` and ``cpu`` (the same parameters
and rows) and prints time and validation AUC side by side. Where LightGBM finds no OpenCL GPU it says
so and exits 3 without the CPU run: there is nothing to compare.

LightGBM takes OpenCL platform 0 unless told otherwise, and a machine may list a CPU platform
(PoCL) before the GPU's: on an H200 machine LightGBM's platform 0 was PoCL, so an unpinned "gpu"
run trained on the CPU and looked like a GPU result. Each platform is therefore probed for the
device LightGBM really opens, and the GPU run is pinned to the first that is not a CPU.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IN_ENV_FLAG = "--in-training-env"
NO_DEVICE_EXIT = 3
# ModelConfig's defaults (karte_assets/assets/training.py), which this environment cannot import.
PARAMS = {"num_leaves": 31, "learning_rate": 0.05, "min_data_in_leaf": 50, "feature_fraction": 0.9,
          "lambda_l2": 1.0, "seed": 7}  # fmt: skip
ROUNDS, EARLY_STOPPING, HORIZON_DAYS = 400, 30, 28
MAX_PLATFORMS = 8
# A few rounds on tiny data with LightGBM's info log on: it names the OpenCL device it opened.
PROBE = """
import sys, numpy as np, lightgbm as lgb
x = np.random.default_rng(0).normal(size=(2000, 3)); y = (x[:, 0] > 0).astype(int)
lgb.train({"objective": "binary", "device_type": "gpu", "gpu_platform_id": int(sys.argv[1]),
           "gpu_device_id": 0, "verbosity": 1}, lgb.Dataset(x, y), 1)
"""
DEVICE_LINE = re.compile(r"Using GPU Device: (?P<name>.*), Vendor: (?P<vendor>.*)")
CPU_VENDORS = ("GenuineIntel", "AuthenticAMD")


def opencl_gpu_platform() -> int | None:
    """The first OpenCL platform on which LightGBM opens a GPU (not a CPU such as PoCL), or None."""
    for platform in range(MAX_PLATFORMS):
        probe = subprocess.run(
            [sys.executable, "-c", PROBE, str(platform)], capture_output=True, text=True, timeout=300
        )
        found = DEVICE_LINE.search(probe.stdout)
        if found is None:
            return None  # no such platform (LightGBM fails on an index past the last one)
        name, vendor = found["name"], found["vendor"].strip()
        is_cpu = vendor in CPU_VENDORS or name.lower().startswith("cpu")
        print(f"OpenCL platform {platform}: {name} ({vendor}){' - a CPU, skipped' if is_cpu else ''}")
        if not is_cpu:
            return platform
    return None


def build_training_env() -> Path:
    """The ``training`` dependency group of uv.lock in its own virtual environment."""
    venv = Path(os.environ.get("KARTE_HOME", ROOT / ".karte")) / "gpu-check-venv"
    uv = os.environ.get("UV") or shutil.which("uv") or str(ROOT / ".karte/bootstrap/bin/uv")
    subprocess.run(
        [uv, "sync", "--frozen", "--only-group", "training", "--no-install-project"],
        cwd=ROOT,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)},
        check=True,
    )
    return venv / "bin" / "python"


def synthetic_snapshots(rows: int, seed: int = 0):
    """``rows`` users over 8 weekly snapshots with 20 features; the label depends on a few of them."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    snapshots = pd.date_range("2026-06-01", periods=8, freq="7D").date
    features = rng.normal(size=(rows, 20)).astype("float32")
    logit = 1.5 * features[:, 0] - features[:, 1] + 0.5 * features[:, 2] * features[:, 3] - 1
    frame = pd.DataFrame(features, columns=[f"f{i}" for i in range(20)])
    frame["purchases_90d"] = rng.poisson(np.exp(0.3 * features[:, 0]) * 2)
    frame["snapshot_date"] = rng.choice(snapshots, rows)
    frame["user_id"] = np.arange(rows).astype(str)
    frame["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def compare(rows: int) -> int:
    import lightgbm as lgb

    from karte_assets.training.loyalty import train_loyalty_model

    platform = opencl_gpu_platform()
    if platform is None:
        print("\nno GPU result: LightGBM opens no OpenCL GPU on this machine.", file=sys.stderr)
        print("Run `make gpu-check` on a machine with a GPU and its OpenCL driver.", file=sys.stderr)
        return NO_DEVICE_EXIT
    frame = synthetic_snapshots(rows)
    print(f"LightGBM {lgb.__version__}, {rows:,} rows, {os.cpu_count()} CPUs", flush=True)
    results = {}
    for device, pinned in (("gpu", {"gpu_platform_id": platform, "gpu_device_id": 0}), ("cpu", {})):
        started = time.perf_counter()
        try:
            trained = train_loyalty_model(
                frame,
                HORIZON_DAYS,
                {**PARAMS, "device_type": device, **pinned},
                ROUNDS,
                EARLY_STOPPING,
                log=lambda _: None,
            )
        except RuntimeError as error:
            if device != "gpu":
                raise
            print(f"\nno GPU result: {error}", file=sys.stderr)
            print(
                "This machine has no OpenCL GPU device; run `make gpu-check` on one with a GPU.",
                file=sys.stderr,
            )
            return NO_DEVICE_EXIT
        results[device] = (time.perf_counter() - started, trained.metrics)
    print(
        f"\n{'device':<8}{'seconds':>10}{'validation AUC':>17}{'best round':>12}{'threads':>9}  reproducible"
    )
    for device, (seconds, metrics) in results.items():
        print(
            f"{device:<8}{seconds:>10.1f}{metrics['validation_auc']:>17.4f}{metrics['best_iteration']:>12}"
            f"{metrics['num_threads']:>9}  {metrics['reproducible']}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(IN_ENV_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_training_env:
        return compare(args.rows)
    python = build_training_env()
    # Only the project's training package on the path, as in the image (PYTHONPATH=/opt/karte).
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([python, __file__, IN_ENV_FLAG, "--rows", str(args.rows)], env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
