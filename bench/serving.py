"""The lookup service under load (``make bench BENCH_ARGS='--part serving'``, or ``python -m bench.serving``).

wrk (Debian's; ``make bench-tools``) on loopback, bounded in time, against the service holding a
snapshot of N users (default 10M): lookups per second and per CPU second of the service,
p50/p99/p99.9 latency, snapshot build and load time, memory; then a second snapshot published
while wrk runs (the hot swap: no error allowed); then the same lookups answered from Redis
(Debian's redis-server) through a minimal handler on the same HTTP layer (bench/serving_redis.py),
and from Feast's feature server on its SQLite online store (bench/serving_feast.py, 1M users).
Everything runs under ``nice``: the machine is shared, and the service's CPU time is measured so
that "per core" does not depend on what else ran.
"""

from __future__ import annotations

import datetime as dt
import http.client
import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench import serving_feast
from karte_assets.serving.snapshot import write_snapshot
from karte_assets.serving.store import LocalSnapshotStore

DAY = dt.date(2026, 8, 30)
KEY = "bench-key-0123456789abcdef"
SAMPLE = 100_000  # ids the load generator draws from
WRK_SCRIPT = """
local ids, n = {}, 0
for line in io.lines(os.getenv("KARTE_BENCH_IDS")) do n = n + 1; ids[n] = line end
wrk.headers["X-Api-Key"] = os.getenv("KARTE_BENCH_KEY")
REQUEST
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests":%d,"duration_us":%d,"socket_errors":%d,"non_2xx":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""
LOOKUP = (
    'request = function() return wrk.format("GET", "/v1/clients/default/users/" .. ids[math.random(n)]) end'
)
# Feast's feature server: one user per POST /get-online-features, both features.
FEAST_LOOKUP = (
    'wrk.method = "POST"; wrk.headers["Content-Type"] = "application/json"\n'
    'request = function() return wrk.format(nil, "/get-online-features", nil, \'{"features":'
    '["loyalty:loyal_score","loyalty:coupon_tier"],"entities":{"user_id":["\' .. ids[math.random(n)] .. \'"]}}\') end'
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _nice(command: list[str]) -> list[str]:
    return [shutil.which("nice"), "-n", "10", *command]


def _scores(users: int, day: dt.date, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = pa.array(np.char.add("u", rng.permutation(users).astype("U12")).astype(object), pa.string())
    score = rng.random(users)
    rank = np.argsort(np.argsort(-score))
    tier = np.where(rank < users // 10, "A", np.where(rank < users * 3 // 10, "B", "none"))
    return pa.table({"user_id": ids, "loyal_score": score, "coupon_tier": tier.astype(object)})


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process and its living descendants (Feast serves from a gunicorn worker)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    children = [
        int(child)
        for tasks in Path(f"/proc/{pid}/task").glob("*/children")
        for child in tasks.read_text().split()
    ]
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(child) for child in children)


def _rss_gb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024**2


def _tree_rss_gb(pid: int) -> float:
    children = [
        int(c) for tasks in Path(f"/proc/{pid}/task").glob("*/children") for c in tasks.read_text().split()
    ]
    return _rss_gb(pid) + sum(_tree_rss_gb(child) for child in children)


def _get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _wait_ready(port: int, day: dt.date, deadline_s: float = 300) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < deadline_s:
        try:
            status, body = _get(port, "/readyz")
            clients = json.loads(body).get("clients", {})
            if status == 200 and clients.get("default", {}).get("partition_date") == str(day):
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"the service on {port} did not serve {day} within {deadline_s}s")


def _wrk(port: int, ids_file: Path, script: Path, seconds: int, connections: int, service_pid: int) -> dict:
    cpu = _cpu_seconds(service_pid)
    output = subprocess.run(
        _nice(
            [
                shutil.which("wrk"),
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "2s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}/",
            ]
        ),
        env={**os.environ, "KARTE_BENCH_IDS": str(ids_file), "KARTE_BENCH_KEY": KEY},
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    result = json.loads(output.split("RESULT ", 1)[1].splitlines()[0])
    result["service_cpu_s"] = _cpu_seconds(service_pid) - cpu
    result["per_second"] = result["requests"] / (result["duration_us"] / 1e6)
    result["per_cpu_second"] = result["requests"] / max(result["service_cpu_s"], 1e-9)
    result["connections"] = connections
    return result


def _load_redis(port: int, table: pa.Table, log) -> dict:
    """SET every user through redis-cli --pipe; the load time and Redis's memory."""
    started = time.perf_counter()
    with tempfile.NamedTemporaryFile(suffix=".resp", delete=False) as protocol:
        ids = table.column("user_id").to_pylist()
        scores = table.column("loyal_score").to_pylist()
        tiers = table.column("coupon_tier").to_pylist()
        for start in range(0, len(ids), 500_000):
            chunk = []
            for user, score, tier in zip(
                ids[start : start + 500_000],
                scores[start : start + 500_000],
                tiers[start : start + 500_000],
                strict=True,
            ):
                key, value = f"default:{user}".encode(), f"{score!r}|{tier}".encode()
                chunk.append(
                    b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value)
                )
            protocol.write(b"".join(chunk))
    with open(protocol.name, "rb") as data:
        subprocess.run(
            [shutil.which("redis-cli"), "-p", str(port), "--pipe"],
            stdin=data,
            check=True,
            capture_output=True,
            timeout=1800,
        )
    os.unlink(protocol.name)
    seconds = time.perf_counter() - started
    info = subprocess.run(
        [shutil.which("redis-cli"), "-p", str(port), "info", "memory"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    used = int(re.search(r"used_memory:(\d+)", info).group(1))
    log(f"redis: {len(ids):,} keys loaded in {seconds:.1f}s, {used / 1024**3:.2f} GB")
    return {"load_s": seconds, "memory_gb": used / 1024**3}


def run(work: Path, users: int, seconds: int, connections: int, log, feast_users: int = 1_000_000) -> dict:
    missing = [tool for tool in ("wrk", "redis-server", "redis-cli", "nice") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"{missing} not installed: run `make bench-tools` (Debian's wrk and redis-server)")
    folder = work / "serving"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    store = LocalSnapshotStore(folder / "models")
    result: dict = {"users": users, "seconds": seconds}

    table = _scores(users, DAY, seed=1)
    started, cpu = time.perf_counter(), time.process_time()
    info = write_snapshot(table, folder / "day1.arrow", "default", DAY, "loyalty-bench-1")
    result["build_s"], result["build_cpu_s"] = time.perf_counter() - started, time.process_time() - cpu
    result["snapshot_gb"] = info.size / 1024**3
    log(
        f"snapshot of {users:,} users built in {result['build_s']:.1f}s, {result['build_cpu_s']:.1f} CPU s "
        f"({result['snapshot_gb']:.2f} GB)"
    )
    store.publish(folder / "day1.arrow", info)
    rng = np.random.default_rng(2)
    hits = table.column("user_id").take(pa.array(rng.integers(0, users, SAMPLE))).to_pylist()
    mixed = [user if i % 10 else f"nobody{i}" for i, user in enumerate(hits)]  # 10 % unknown users
    (folder / "mixed.txt").write_text("\n".join(mixed) + "\n")
    (folder / "hits.txt").write_text("\n".join(hits) + "\n")
    script = folder / "lookups.lua"
    script.write_text(WRK_SCRIPT.replace("REQUEST", LOOKUP))
    started = time.perf_counter()
    swap_info = write_snapshot(
        _scores(users, DAY, seed=3),
        folder / "day2.arrow",
        "default",
        DAY + dt.timedelta(days=1),
        "loyalty-bench-2",
    )
    log(f"second snapshot built in {time.perf_counter() - started:.1f}s")

    port = _free_port()
    service = subprocess.Popen(
        _nice(
            [
                sys.executable,
                "-m",
                "karte_assets.serving",
                "--store",
                str(folder / "models"),
                "--port",
                str(port),
                "--auth",
                "keys",
                "--poll-seconds",
                "1",
                "--workdir",
                str(folder),
            ]
        ),
        env={**os.environ, "KARTE_SERVING_API_KEYS": json.dumps({"default": KEY})},
        stdout=(folder / "access.log").open("w"),
    )
    try:
        result["ready_s"] = _wait_ready(port, DAY)
        result["ready_cpu_s"] = _cpu_seconds(service.pid)  # Python's start and imports included
        metrics = _get(port, "/metrics")[1].decode()
        result["load_s"] = float(
            re.search(r'snapshot_load_seconds\{client="default"\} ([\d.]+)', metrics).group(1)
        )
        result["rss_ready_gb"] = _rss_gb(service.pid)
        log(
            f"service ready in {result['ready_s']:.1f}s, {result['ready_cpu_s']:.1f} CPU s (snapshot load "
            f"{result['load_s']:.2f}s), RSS {result['rss_ready_gb']:.2f} GB"
        )
        _wrk(port, folder / "mixed.txt", script, 2, connections, service.pid)  # warm-up
        result["service"] = _wrk(port, folder / "mixed.txt", script, seconds, connections, service.pid)
        result["rss_after_gb"] = _rss_gb(service.pid)
        log(f"service: {result['service']}")

        swap = subprocess.Popen(
            _nice(
                [
                    shutil.which("wrk"),
                    "-t1",
                    f"-c{connections}",
                    f"-d{seconds + 5}s",
                    "--timeout",
                    "2s",
                    "-s",
                    str(script),
                    f"http://127.0.0.1:{port}/",
                ]
            ),
            env={**os.environ, "KARTE_BENCH_IDS": str(folder / "hits.txt"), "KARTE_BENCH_KEY": KEY},
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)
        store.publish(folder / "day2.arrow", swap_info)
        result["swap_ready_s"] = _wait_ready(port, swap_info.partition_date)
        output = swap.communicate(timeout=seconds + 60)[0]
        result["swap"] = json.loads(output.split("RESULT ", 1)[1].splitlines()[0])
        result["rss_swapped_gb"] = _rss_gb(service.pid)
        log(f"hot swap under load: {result['swap']}, served after {result['swap_ready_s']:.1f}s")
    finally:
        service.terminate()
        service.wait(30)

    redis_port, handler_port = _free_port(), _free_port()
    redis = subprocess.Popen(
        _nice(
            [
                shutil.which("redis-server"),
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
        ),
        stdout=subprocess.DEVNULL,
    )
    handler = None
    try:
        time.sleep(1)
        result["redis"] = _load_redis(redis_port, table, log)
        handler = subprocess.Popen(
            _nice(
                [
                    sys.executable,
                    "-m",
                    "bench.serving_redis",
                    "--redis-port",
                    str(redis_port),
                    "--port",
                    str(handler_port),
                    "--model-version",
                    "loyalty-bench-1",
                    "--day",
                    str(DAY),
                    "--access-log",
                    str(folder / "redis-access.log"),
                ]
            ),
            env={**os.environ, "KARTE_SERVING_API_KEYS": json.dumps({"default": KEY})},
        )
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", handler_port)).close()
                break
            except OSError:
                time.sleep(0.1)
        _wrk(handler_port, folder / "mixed.txt", script, 2, connections, handler.pid)
        redis_cpu = _cpu_seconds(redis.pid)
        run = _wrk(handler_port, folder / "mixed.txt", script, seconds, connections, handler.pid)
        # Per CPU second of both processes: the handler's and Redis's own CPU time during the run.
        run["redis_cpu_s"] = _cpu_seconds(redis.pid) - redis_cpu
        run["per_cpu_second"] = run["requests"] / (run["service_cpu_s"] + run["redis_cpu_s"])
        result["redis"]["handler"] = run
        result["redis"]["handler_rss_gb"] = _rss_gb(handler.pid)
        log(f"redis: {result['redis']}")
    finally:
        for process in (handler, redis):
            if process is not None:
                process.terminate()
                process.wait(30)
    result["feast"] = _feast(folder, table.slice(0, min(users, feast_users)), seconds, connections, log)
    shutil.rmtree(folder, ignore_errors=True)
    return result


def _feast(folder: Path, table: pa.Table, seconds: int, connections: int, log) -> dict:
    """The same kind of lookups against Feast's feature server on its SQLite online store."""
    repo = folder / "feast"
    load_s = serving_feast.load(repo, table, DAY)
    log(f"feast: {len(table):,} users written to its SQLite online store in {load_s:.1f}s")
    hits = table.column("user_id").take(pa.array(np.random.default_rng(2).integers(0, len(table), SAMPLE)))
    ids = folder / "feast-mixed.txt"
    ids.write_text("\n".join(u if i % 10 else f"nobody{i}" for i, u in enumerate(hits.to_pylist())) + "\n")
    script = folder / "feast.lua"
    script.write_text(WRK_SCRIPT.replace("REQUEST", FEAST_LOOKUP))
    port = _free_port()
    server = subprocess.Popen(
        _nice(serving_feast.command(repo, port)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(1200):
            try:
                if _get(port, "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        _wrk(port, ids, script, 2, connections, server.pid)
        run = _wrk(port, ids, script, seconds, connections, server.pid)
        result = {"users": len(table), "load_s": load_s, "server": run, "rss_gb": _tree_rss_gb(server.pid)}
        log(f"feast: {result}")
        return result
    finally:
        server.terminate()
        server.wait(30)


def frameworks(work: Path, users: int, seconds: int, connections: int, log) -> dict:
    """The service's HTTP layer against Starlette on uvicorn (the framework peer), same lookups."""
    folder = work / "serving-frameworks"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    table = _scores(users, DAY, seed=1)
    info = write_snapshot(table, folder / "day1.arrow", "default", DAY, "loyalty-bench-1")
    LocalSnapshotStore(folder / "models").publish(folder / "day1.arrow", info)
    hits = (
        table.column("user_id")
        .take(pa.array(np.random.default_rng(2).integers(0, users, SAMPLE)))
        .to_pylist()
    )
    (folder / "mixed.txt").write_text(
        "\n".join(u if i % 10 else f"nobody{i}" for i, u in enumerate(hits)) + "\n"
    )
    script = folder / "lookups.lua"
    script.write_text(WRK_SCRIPT.replace("REQUEST", LOOKUP))
    env = {**os.environ, "KARTE_SERVING_API_KEYS": json.dumps({"default": KEY})}
    commands = {
        "karte lookup service (asyncio + httptools)": [
            sys.executable,
            "-m",
            "karte_assets.serving",
            "--store",
            str(folder / "models"),
            "--auth",
            "keys",
        ],
        "Starlette + uvicorn (httptools, uvloop)": [
            sys.executable,
            "-m",
            "bench.serving_starlette",
            "--store",
            str(folder / "models"),
        ],
    }
    result: dict = {"users": users, "seconds": seconds, "servers": {}}
    for name, command in commands.items():
        port = _free_port()
        server = subprocess.Popen(
            _nice([*command, "--port", str(port)]), env=env, stdout=(folder / "access.log").open("w")
        )
        try:
            for _ in range(600):
                try:
                    if _get(port, "/v1/clients/default/users/" + hits[1])[0] in (200, 403):
                        break
                except OSError:
                    time.sleep(0.1)
            _wrk(port, folder / "mixed.txt", script, 2, connections, server.pid)
            result["servers"][name] = _wrk(
                port, folder / "mixed.txt", script, seconds, connections, server.pid
            )
            log(f"{name}: {result['servers'][name]}")
        finally:
            server.terminate()
            server.wait(30)
    shutil.rmtree(folder, ignore_errors=True)
    return result


def frameworks_section(result: dict) -> list[str]:
    meta = result.get("meta", {})
    lines = [
        f"**Choosing the HTTP layer** (`python -m bench.serving --frameworks`, {meta.get('measured_at', '?')}, load "
        f"{meta.get('load_before', float('nan')):.1f}): the same lookups (API key, {result['users']:,}-user "
        f"snapshot, one in ten unknown) for {result['seconds']} s each, wrk as above. The framework peer writes no "
        f"access log; the service does.",
        "",
        "| server | lookups per CPU second | lookups/s (wall) | p50 | p99 |",
        "|---|---|---|---|---|",
    ]
    for name, r in result["servers"].items():
        lines.append(
            f"| {name} | {r['per_cpu_second']:,.0f} | {r['per_second']:,.0f} | "
            f"{r['p50_us'] / 1000:.2f} ms | {r['p99_us'] / 1000:.2f} ms |"
        )
    return lines


def section(result: dict) -> list[str]:
    """The BENCHMARKS.md section of a stored serving result."""
    service, swap, redis = result["service"], result["swap"], result["redis"]
    handler = redis["handler"]

    def row(name: str, r: dict, memory: str) -> str:
        return (
            f"| {name} | {r['per_second']:,.0f} | {r['per_cpu_second']:,.0f} | {r['p50_us'] / 1000:.2f} ms | "
            f"{r['p99_us'] / 1000:.2f} ms | {r['p999_us'] / 1000:.2f} ms | {r['socket_errors']} | {memory} |"
        )

    meta, feast = result.get("meta", {}), result.get("feast")
    feast_version = meta.get("feast_version", "")
    return [
        f"`make bench BENCH_ARGS='--part serving'` (`bench/serving.py`), measured {meta.get('measured_at', '?')} at load "
        f"{meta.get('load_before', float('nan')):.1f} before and {meta.get('load_after', float('nan')):.1f} after, on a "
        f"2-core machine shared with other sessions (the load is its run queue): every process ran under `nice -n 10`, so the absolute rates "
        f"are what this crowded machine gave; *per CPU second* divides the requests by the CPU time the serving "
        f"process itself used, the figure that carries to a dedicated core.",
        "",
        f"{result['users']:,} users (ids like `u1234567`); wrk 4.1 with one thread and {service['connections']} "
        f"keep-alive connections for {result['seconds']} s per row, each request a random user of 100,000 drawn "
        f"from the snapshot, one in ten unknown (a 404 with the default tier); API key checked on every request; "
        f"access log written (to a file).",
        "",
        "| server | lookups/s (wall) | lookups per CPU second | p50 | p99 | p99.9 | socket errors | memory |",
        "|---|---|---|---|---|---|---|---|",
        row(
            "karte lookup service (snapshot, mmap)",
            service,
            f"RSS {result['rss_after_gb']:.2f} GB (file {result['snapshot_gb']:.2f} GB)",
        ),
        row(
            "same HTTP layer + Redis 7 GET (CPU: handler + Redis)",
            handler,
            f"Redis {redis['memory_gb']:.2f} GB + handler {redis['handler_rss_gb']:.2f} GB",
        ),
        *(
            [
                row(
                    f"Feast {feast_version} feature server, SQLite online store, {feast['users']:,} users",
                    feast["server"],
                    f"RSS {feast['rss_gb']:.2f} GB",
                )
            ]
            if feast
            else []
        ),
        "",
        f"- **Snapshot**: built in {result['build_s']:.1f} s, {result.get('build_cpu_s', float('nan')):.1f} CPU s (the "
        f"vectorised key of {result['users']:,} ids, the sort, reordering the ids and writing; the scores asset pays "
        f"this once a day), {result['snapshot_gb']:.2f} GB on disk; the service was ready {result['ready_s']:.1f} s "
        f"after its start, having used {result.get('ready_cpu_s', float('nan')):.1f} CPU s (Python's start and "
        f"imports included), of which the snapshot load (one SHA-256 pass over the mapped file, the key directory) "
        f"took {result['load_s']:.2f} s; RSS {result['rss_ready_gb']:.2f} GB "
        f"when ready, {result['rss_after_gb']:.2f} GB after the run. Redis took {redis['load_s']:.1f} s to load the "
        f"same users with `redis-cli --pipe` and holds them in {redis['memory_gb']:.2f} GB.",
        f"- **Hot swap under load**: a second {result['users']:,}-user snapshot was published 2 s into a "
        f"{result['seconds'] + 5} s wrk run of known users; the service served it {result['swap_ready_s']:.1f} s "
        f"later. wrk counted {swap['requests']:,} requests, {swap['socket_errors']} socket errors and "
        f"{swap['non_2xx']} non-2xx answers; p99 {swap['p99_us'] / 1000:.2f} ms, p99.9 {swap['p999_us'] / 1000:.2f} ms, "
        f"max {swap['max_us'] / 1000:.1f} ms (the load runs in a thread beside the event loop). RSS after the swap "
        f"{result['rss_swapped_gb']:.2f} GB: both snapshots are mapped until the old one's last reference goes.",
        *(
            [
                f"- **Feast**: `feast serve` (one gunicorn worker, `--max-requests 0`) on a SQLite online store holding "
                f"the first {feast['users']:,} users (`write_to_online_store` took {feast['load_s']:.0f} s; at that "
                f"rate 10M would take {feast['load_s'] * result['users'] / feast['users'] / 60:.0f} min), one user per "
                f"`POST /get-online-features`; an unknown user is a 200 with status NOT_FOUND, not a 404. CPU: the "
                f"gunicorn master and worker."
            ]
            if feast
            else []
        ),
    ]


TITLE = "## Real-time lookups: the serving snapshot vs Redis"


def rendered(work: Path) -> str:
    """The serving section from the stored results, or "" before the first serving run."""
    lines = []
    for name, render in (("serving", section), ("serving-frameworks", frameworks_section)):
        stored = work / "results" / f"{name}.json"
        if stored.exists():
            lines += [*render(json.loads(stored.read_text())), ""]
    return "\n".join([TITLE, "", *lines, notes_text(), ""]) if lines else ""


def write_section(markdown: Path, work: Path) -> None:
    """Replace (or append) the serving section of BENCHMARKS.md, leaving the rest as it is."""
    text = markdown.read_text() if markdown.exists() else "# Benchmarks\n"
    body = rendered(work)
    pattern = re.compile(re.escape(TITLE) + r".*?(?=\n## |\Z)", re.S)
    text = (
        pattern.sub(lambda _: body.rstrip() + "\n", text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + body
    )
    markdown.write_text(text.rstrip() + "\n")


def notes_text() -> str:
    return Path(__file__).with_name("serving_notes.md").read_text().strip()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=float, default=1e7)
    parser.add_argument("--feast-users", type=float, default=1e6, help="users in Feast's online store")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--work", default=str(Path(os.environ.get("KARTE_HOME", ".karte")) / "bench"))
    parser.add_argument("--output", default="BENCHMARKS.md")
    parser.add_argument(
        "--frameworks", action="store_true", help="only the HTTP layer vs Starlette (1M users)"
    )
    args = parser.parse_args()

    def log(message: str) -> None:
        print(f"[{dt.datetime.now():%H:%M:%S} load {os.getloadavg()[0]:.1f}] {message}", flush=True)

    load_before, started = os.getloadavg()[0], time.perf_counter()
    if args.frameworks:
        measured = frameworks(Path(args.work), int(args.users), args.seconds, args.connections, log)
    else:
        measured = run(
            Path(args.work), int(args.users), args.seconds, args.connections, log, int(args.feast_users)
        )
    measured["meta"] = {
        "feast_version": importlib.metadata.version("feast"),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "seconds": time.perf_counter() - started,
    }
    stored = Path(args.work) / "results" / ("serving-frameworks.json" if args.frameworks else "serving.json")
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_text(json.dumps(measured, indent=1))
    write_section(Path(args.output), Path(args.work))
    log(f"stored {stored}; wrote the serving section of {args.output}")
