"""The lookup service on loopback with real snapshot files: answers, auth, and hot swaps under load."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import http.client
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from dagster_gcp import GCSResource

from karte_assets.assets.snapshots import publish_snapshot, refresh_served_snapshot
from karte_assets.resources.gcs_model_store import GcsModelStore
from karte_assets.resources.model_store import LocalModelStore
from karte_assets.resources.warehouse import DuckDBWarehouse
from karte_assets.serving.server import ApiKeys, JsonLines, LookupService, serve
from karte_assets.serving.snapshot import (
    NO_ANOMALY,
    Anomaly,
    Snapshot,
    SnapshotError,
    file_sha256,
    products_path,
    user_key,
    utf8_keys,
    write_snapshot,
)
from karte_assets.serving.store import LocalSnapshotStore
from karte_assets.settings import REPO_ROOT
from karte_assets_tests.fakes.gcs import emulated_gcs
from karte_assets_tests.graph import FIRST_DAY

DAY = dt.date(2026, 8, 1)
KEY = "k" * 32
OTHER_KEY = "o" * 32


def scores(day: dt.date, users: int = 50) -> pa.Table:
    """Scores that encode their day: user u<i> scores i / 1000 + day-of-month / 100."""
    return pa.table(
        {
            "user_id": [f"u{i}" for i in range(users)],
            "loyal_score": [i / 1000 + day.day / 100 for i in range(users)],
            "coupon_tier": ["A" if i < 5 else "B" if i < 15 else "none" for i in range(users)],
        }
    )


def publish(store: LocalSnapshotStore, tmp_path: Path, day: dt.date, client: str = "default", **kw) -> bool:
    path = tmp_path / f"{client}-{day}.arrow"
    info = write_snapshot(scores(day, **kw), path, client, day, f"loyalty-{day:%Y%m%d}-abc")
    return store.publish(path, info)


class Running:
    def __init__(self, service: LookupService, port: int) -> None:
        self.service, self.port = service, port

    def request(self, method: str, path: str, body: dict | None = None, key: str | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"X-Api-Key": key} if key else {}
        connection.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = connection.getresponse()
        answer = response.status, json.loads(response.read() or b"null")
        connection.close()
        return answer


@contextmanager
def running(store, tmp_path, clients=("default",), keys=None, poll=0.05) -> Iterator[Running]:
    """The service in a thread of its own with its own event loop, on a free loopback port."""
    logs = (tmp_path / "access.log").open("w")
    service = LookupService(store, list(clients), keys, tmp_path / "work", logs=JsonLines(logs))
    loop = asyncio.new_event_loop()
    port = loop.create_future()
    task = loop.create_task(serve(service, "127.0.0.1", 0, poll, port))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield Running(service, asyncio.run_coroutine_threadsafe(asyncio.wait_for(port, 5), loop).result())
    finally:

        async def stop() -> None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        logs.close()


def wait_ready(service: Running, day: dt.date, client: str = "default") -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, body = service.request("GET", "/readyz")
        if status == 200 and body["clients"].get(client, {}).get("partition_date") == str(day):
            return
        time.sleep(0.02)
    raise AssertionError(f"{client} never served {day}: {body}")


@pytest.fixture
def store(tmp_path) -> LocalSnapshotStore:
    return LocalSnapshotStore(tmp_path / "models")


def test_a_snapshot_finds_every_user_it_holds_and_no_other(tmp_path):
    table = scores(DAY, users=2000)
    info = write_snapshot(table, tmp_path / "s.arrow", "default", DAY, "v1")
    snapshot = Snapshot(tmp_path / "s.arrow", info)
    for user, score, tier in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True):
        assert snapshot.find(user.encode()) == (score, tier, -1)  # no anomaly use case: no verdict
    assert [snapshot.find(f"x{i}".encode()) for i in range(2000)] == [None] * 2000
    with pytest.raises(ValueError, match="user u3 appears twice"):
        write_snapshot(
            pa.concat_tables([table, table.slice(3, 1)]), tmp_path / "t.arrow", "default", DAY, "v1"
        )


def test_a_snapshot_whose_bytes_differ_from_its_pointer_is_refused(tmp_path):
    info = write_snapshot(scores(DAY), tmp_path / "s.arrow", "default", DAY, "v1")
    with (tmp_path / "s.arrow").open("r+b") as file:
        file.seek(-20, 2)
        file.write(b"\0")
    with pytest.raises(ValueError, match="its pointer says"):
        Snapshot(tmp_path / "s.arrow", info)


# Keys computed by an independent C implementation of the documented function
# (key = len; for each little-endian 64-bit word w, zero-padded: key = fmix64(key ^ w)), not by
# the code under test: a change of the key function must fail here and bump FORMAT.
KNOWN_KEYS = {
    "": 0x0000000000000000,
    "u0": 0x0816187D54159E12,
    "u1234567": 0x74E89CA6548A6105,
    "u12345678": 0x83C8D3AA64EC8528,
    "customer-00042@example.com": 0x777FCF11B01549B4,
    "ユーザー7": 0xA329367D77AB7343,
}


def test_the_user_key_is_the_documented_function_in_the_reader_and_the_vectorised_writer():
    assert {user: user_key(user.encode()) for user in KNOWN_KEYS} == KNOWN_KEYS
    ids = pa.array(["x", *KNOWN_KEYS], pa.large_string()).slice(1)  # an offset into the buffers
    assert [int(key) for key in utf8_keys(ids)] == list(KNOWN_KEYS.values())


def fmix64(h: int) -> int:
    """MurmurHash3's 64-bit finaliser, written out here apart from the code under test."""
    h = (h ^ (h >> 33)) * 0xFF51AFD7ED558CCD % 2**64
    h = (h ^ (h >> 33)) * 0xC4CEB9FE1A85EC53 % 2**64
    return h ^ (h >> 33)


def colliding_ids() -> tuple[str, str]:
    """Two 16-character printable ids with one key: after the first word the state is
    h = fmix64(16 ^ w0), and the key is fmix64(h ^ w1), so w1' = w1 ^ h ^ h' gives the same key."""
    first, word = b"collide0", int.from_bytes(b"AAAAAAAA", "little")
    for n in range(1 << 20):
        other = b"c%07d" % n
        tail = (
            word ^ fmix64(16 ^ int.from_bytes(first, "little")) ^ fmix64(16 ^ int.from_bytes(other, "little"))
        ).to_bytes(8, "little")
        if all(0x20 <= byte < 0x7F for byte in tail):
            return (first + b"AAAAAAAA").decode(), (other + tail).decode()
    raise AssertionError("no printable collision found")


def test_ids_sharing_a_key_are_both_found_and_a_repeated_one_among_them_is_refused(tmp_path):
    a, b = colliding_ids()
    assert a != b and user_key(a.encode()) == user_key(b.encode())
    table = pa.table(
        {
            "user_id": ["u1", a, b, "u2"],
            "loyal_score": [0.1, 0.2, 0.3, 0.4],
            "coupon_tier": ["A", "B", "none", "A"],
        }
    )
    info = write_snapshot(table, tmp_path / "s.arrow", "default", DAY, "v1")
    snapshot = Snapshot(tmp_path / "s.arrow", info)
    assert [snapshot.find(user.encode()) for user in ("u1", a, b, "u2")] == [
        (0.1, "A", -1),
        (0.2, "B", -1),
        (0.3, "none", -1),
        (0.4, "A", -1),
    ]
    # The repeat is not next to its twin in any order of the three tied rows.
    for ids in ([a, b, a], [b, a, b]):
        repeated = pa.table({"user_id": ids, "loyal_score": [0.1] * 3, "coupon_tier": ["A"] * 3})
        with pytest.raises(ValueError, match=re.escape(f"user {ids[0]} appears twice")):
            write_snapshot(repeated, tmp_path / "t.arrow", "default", DAY, "v1")


def test_a_snapshot_in_another_format_is_refused_naming_both_formats(tmp_path):
    info = write_snapshot(scores(DAY), tmp_path / "s.arrow", "default", DAY, "v1")
    table = ipc.open_file(pa.memory_map(str(tmp_path / "s.arrow"))).read_all()
    metadata = json.loads(table.schema.metadata[b"karte"])
    for other in ("karte-serving-snapshot/1", "karte-serving-snapshot/2", "karte-serving-snapshot/4", None):
        path = tmp_path / f"{other}.arrow".replace("/", "-")
        stamped = table.replace_schema_metadata({"karte": json.dumps({**metadata, "format": other})})
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, stamped.schema) as writer:
            writer.write_table(stamped)
        signed = dataclasses.replace(info, sha256=file_sha256(path), size=path.stat().st_size)
        with pytest.raises(
            SnapshotError,
            match=f"in the format {other!r}, this service reads only 'karte-serving-snapshot/3'",
        ):
            Snapshot(path, signed)


def test_a_refused_snapshot_is_checked_once_not_on_every_poll_and_a_newer_one_still_swaps_in(store, tmp_path):
    publish(store, tmp_path, DAY)
    info = store.latest("default")[0]
    with store.local_copy(info, tmp_path).open("r+b") as file:
        file.seek(-20, 2)
        file.write(b"\0")  # its bytes no longer match the pointer
    service = LookupService(store, ["default"], None, tmp_path / "work", logs=JsonLines(io.StringIO()))
    with pytest.raises(SnapshotError, match="its pointer says"):
        asyncio.run(service.refresh("default"))
    assert not asyncio.run(service.refresh("default"))  # the same pointer: not hashed again
    publish(store, tmp_path, DAY + dt.timedelta(days=1))
    assert asyncio.run(service.refresh("default"))
    assert service.served["default"].info.partition_date == DAY + dt.timedelta(days=1)


def test_the_pointer_moves_only_forward_in_time(store, tmp_path):
    assert publish(store, tmp_path, DAY + dt.timedelta(days=1))
    assert not publish(store, tmp_path, DAY)  # a backfill of an older day
    assert store.latest("default")[0].partition_date == DAY + dt.timedelta(days=1)
    assert publish(store, tmp_path, DAY + dt.timedelta(days=1), users=60)  # a re-run of the same day
    assert store.latest("default")[0].users == 60


def test_a_user_gets_the_score_tier_model_and_day_an_unknown_one_a_404_with_the_default_tier(store, tmp_path):
    publish(store, tmp_path, DAY)
    with running(store, tmp_path) as service:
        wait_ready(service, DAY)
        assert service.request("GET", "/v1/clients/default/users/u3") == (
            200,
            {
                "client": "default",
                "user_id": "u3",
                "found": True,
                "loyal_score": 0.003 + 0.01,
                "coupon_tier": "A",
                "flagged": None,
                "anomaly_use_case": False,
                "anomaly_date": None,
                "model_version": "loyalty-20260801-abc",
                "partition_date": "2026-08-01",
            },
        )
        status, body = service.request("GET", "/v1/clients/default/users/nobody")
        assert status == 404 and body["error"] == "unknown user" and body["coupon_tier"] == "none"
        status, body = service.request("GET", "/v1/clients/acme/users/u3")
        assert (status, body["error"]) == (404, "unknown client")
        status, body = service.request(
            "POST", "/v1/clients/default/users:batchGet", {"user_ids": ["u20", "nobody", "u0"]}
        )
        assert status == 200 and [(u["user_id"], u["found"], u["coupon_tier"]) for u in body["users"]] == [
            ("u20", True, "none"),
            ("nobody", False, "none"),
            ("u0", True, "A"),
        ]
        assert service.request("POST", "/v1/clients/default/users:batchGet", {"ids": []})[0] == 400
    log = (tmp_path / "access.log").read_text()
    assert '"route":"lookup"' in log and "u3" not in log and "nobody" not in log  # no user ids in logs


def test_a_key_reads_only_its_own_client(store, tmp_path):
    publish(store, tmp_path, DAY)
    publish(store, tmp_path, DAY, client="acme")
    keys = ApiKeys(json.dumps({"default": KEY, "acme": [OTHER_KEY]}), "test keys")
    with running(store, tmp_path, clients=keys.clients, keys=keys) as service:
        wait_ready(service, DAY, "acme")
        wait_ready(service, DAY, "default")
        path = "/v1/clients/default/users/u1"
        assert service.request("GET", path)[0] == 401
        assert service.request("GET", path, key="x" * 32)[0] == 401
        assert service.request("GET", path, key=OTHER_KEY)[0] == 403
        assert service.request("GET", path, key=KEY)[0] == 200
        assert service.request("GET", "/v1/clients/acme/users/u1", key=OTHER_KEY)[0] == 200
        batch = service.request("POST", "/v1/clients/acme/users:batchGet", {"user_ids": ["u1"]}, key=KEY)
        assert batch[0] == 403


def test_short_or_malformed_keys_are_refused_at_start():
    with pytest.raises(ValueError, match="at least 24 characters"):
        ApiKeys('{"default": "short"}', "$KARTE_SERVING_API_KEYS")
    with pytest.raises(ValueError, match="JSON object of client -> API key"):
        ApiKeys("default=abc", "$KARTE_SERVING_API_KEYS")


def test_newer_snapshots_swap_in_under_concurrent_requests_without_an_error_or_a_step_back(store, tmp_path):
    publish(store, tmp_path, DAY)
    days = [DAY + dt.timedelta(days=i) for i in range(1, 4)]
    seen: list[list[tuple[str, float]]] = []
    errors: list[str] = []
    stop = threading.Event()

    def hammer(port: int) -> None:
        answers: list[tuple[str, float]] = []
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # keep-alive
        try:
            while not stop.is_set():
                connection.request("GET", "/v1/clients/default/users/u7")
                response = connection.getresponse()
                body = json.loads(response.read())
                if response.status != 200:
                    errors.append(f"{response.status}: {body}")
                answers.append((body["partition_date"], body["loyal_score"]))
        except Exception as error:  # noqa: BLE001 - every failure of a request is what the test counts
            errors.append(repr(error))
        seen.append(answers)

    with running(store, tmp_path) as service:
        wait_ready(service, DAY)
        threads = [threading.Thread(target=hammer, args=(service.port,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for day in days:
            time.sleep(0.3)
            publish(store, tmp_path, day)
            wait_ready(service, day)
        publish(store, tmp_path, DAY)  # an older day landing late is never served
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(10)
        assert service.request("GET", "/readyz")[1]["clients"]["default"]["partition_date"] == str(days[-1])
        assert service.service.metrics.swaps["default"] == 4
    assert errors == []
    for answers in seen:
        # Each answer is one snapshot's: its score is that day's, and days never go backwards.
        assert all(
            score == pytest.approx(0.007 + dt.date.fromisoformat(day).day / 100) for day, score in answers
        )
        assert [day for day, _ in answers] == sorted(day for day, _ in answers)
    assert {day for answers in seen for day, _ in answers} >= {str(days[-1])}


def test_metrics_count_requests_and_report_the_snapshot_age(store, tmp_path):
    publish(store, tmp_path, DAY)
    with running(store, tmp_path) as service:
        wait_ready(service, DAY)
        service.request("GET", "/v1/clients/default/users/u1")
        service.request("GET", "/v1/clients/default/users/nobody")
        connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    assert 'karte_serving_requests_total{route="lookup",status="200"} 1' in text
    assert 'karte_serving_requests_total{route="lookup",status="404"} 1' in text
    assert 'karte_serving_request_seconds_count{route="lookup"} 2' in text
    assert 'karte_serving_snapshot_age_seconds{client="default"}' in text
    assert 'karte_serving_lookups_total{client="default",outcome="missing"} 1' in text


@pytest.mark.slow
def test_make_serve_after_a_graph_run_answers_a_user_with_the_score_in_the_warehouse(graph):
    day = FIRST_DAY + dt.timedelta(days=14)
    assert graph.materialize(FIRST_DAY, day).success
    expected = graph.table("loyalty_scores", day).sort_values("score_rank").iloc[0]
    with socket.socket() as probe:  # a free port the OS picks
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KARTE_SERVING")}
    process = subprocess.Popen(
        [shutil.which("make"), "--no-print-directory", "serve", f"SERVE_PORT={port}"],
        cwd=REPO_ROOT,
        env={**environ, "KARTE_HOME": str(graph.home)},
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # make, uv and python: stopped together below
    )
    try:
        service = Running(None, port)
        deadline = time.monotonic() + 180  # make, uv and the imports, on a crowded CI machine
        while True:
            try:
                wait_ready(service, day)
                break
            except (ConnectionError, AssertionError):
                assert process.poll() is None and time.monotonic() < deadline, "make serve never became ready"
                time.sleep(0.5)
        status, body = service.request("GET", f"/v1/clients/default/users/{expected['user_id']}")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
    assert status == 200
    assert (body["loyal_score"], body["coupon_tier"], body["model_version"], body["partition_date"]) == (
        expected["loyal_score"],
        expected["coupon_tier"],
        expected["model_version"],
        str(day),
    )


def test_on_gcs_the_file_lands_before_the_pointer_and_the_pointer_only_moves_forward(monkeypatch, tmp_path):
    with emulated_gcs(monkeypatch, "karte-models") as gcs:
        model_store = GcsModelStore(bucket="karte-models", prefix="karte/prod/", gcs=GCSResource(project="p"))
        store = model_store.snapshots()
        later = write_snapshot(
            scores(DAY + dt.timedelta(days=1)),
            tmp_path / "later.arrow",
            "default",
            DAY + dt.timedelta(days=1),
            "v2",
        )
        assert store.publish(tmp_path / "later.arrow", later)
        folder = "karte/prod/serving/default"
        assert [name for name, _ in gcs.written] == [
            f"{folder}/2026-08-02/{later.sha256[:16]}.arrow",
            f"{folder}/LATEST.json",
        ]
        older = write_snapshot(scores(DAY), tmp_path / "older.arrow", "default", DAY, "v1")
        assert not store.publish(tmp_path / "older.arrow", older)
        assert (
            store.latest("default")[0] == later and len(gcs.written) == 3
        )  # the older file, not the pointer
        copy = store.local_copy(later, tmp_path)
        assert Snapshot(copy, later).find(b"u3") == (0.003 + 0.02, "A", -1)


# ---- the anomaly flag and the products (snapshot format 3) ----

FLAGGED_DAY = dt.date(2026, 7, 31)  # the anomaly day a snapshot's verdicts come from


def flagged_scores(day: dt.date, users: int = 50) -> pa.Table:
    """``scores`` with verdicts: u<i> flagged on odd days of the month if i % 3 == 0, judged unflagged
    if i % 3 == 1, and no verdict (not active on the anomaly day) if i % 3 == 2."""
    verdicts = [(i % 3 == 0 and day.day % 2 == 1) if i % 3 < 2 else None for i in range(users)]
    return scores(day, users).append_column("flagged", pa.array(verdicts, pa.bool_()))


def products(day: dt.date, count: int = 20) -> pa.Table:
    """p<i>: forecast i + day-of-month units, an overstock candidate ranked i + 1 if i < 5."""
    over = [i < 5 for i in range(count)]
    return pa.table(
        {
            "product_id": [f"p{i}" for i in range(count)],
            "demand_forecast": [float(i + day.day) for i in range(count)],
            "demand_hi_95": [float(i + day.day) * 1.5 for i in range(count)],
            "horizon_days": pa.array([14] * count, pa.int64()),
            "overstock": over,
            "stock_on_hand": [100.0 + i if o else None for i, o in enumerate(over)],
            "stock_as_of": pa.array([day if o else None for o in over], pa.date32()),
            "excess": [100.0 + i - (i + day.day) * 1.5 if o else None for i, o in enumerate(over)],
            "excess_rank": pa.array([i + 1 if o else None for i, o in enumerate(over)], pa.int64()),
            "model_version": ["ets@2026-07-01"] * count,
        }
    )


def publish_full(store, tmp_path, day: dt.date, client: str = "default", anomaly: bool = True) -> bool:
    """A snapshot with verdicts of the day before (if ``anomaly``) and the day's products."""
    path = tmp_path / f"{client}-{day}-full.arrow"
    info = write_snapshot(
        flagged_scores(day),
        path,
        client,
        day,
        f"loyalty-{day:%Y%m%d}-abc",
        Anomaly(True, day - dt.timedelta(days=1)) if anomaly else NO_ANOMALY,
        products(day),
        day,
    )
    return store.publish(path, info)


def test_a_flagged_user_is_answered_with_the_flag_and_the_anomaly_day(store, tmp_path):
    publish_full(store, tmp_path, FLAGGED_DAY + dt.timedelta(days=1))
    with running(store, tmp_path) as service:
        wait_ready(service, FLAGGED_DAY + dt.timedelta(days=1))
        answers = {u: service.request("GET", f"/v1/clients/default/users/{u}")[1] for u in ("u3", "u4", "u5")}
        assert {u: a["flagged"] for u, a in answers.items()} == {"u3": True, "u4": False, "u5": None}
        assert {(a["anomaly_use_case"], a["anomaly_date"]) for a in answers.values()} == {
            (True, "2026-07-31")
        }
        status, body = service.request(
            "POST", "/v1/clients/default/users:batchGet", {"user_ids": ["u3", "u4", "u5", "nobody"]}
        )
        assert status == 200 and [u["flagged"] for u in body["users"]] == [True, False, None, None]
        assert body["anomaly_date"] == "2026-07-31"
        assert service.request("GET", "/readyz")[1]["clients"]["default"]["anomaly_date"] == "2026-07-31"


def test_a_client_without_the_anomaly_use_case_says_so_and_never_answers_false(store, tmp_path):
    publish_full(store, tmp_path, DAY, client="acme", anomaly=False)
    with running(store, tmp_path, clients=("acme",)) as service:
        wait_ready(service, DAY, "acme")
        for user in ("u3", "u4", "u5"):
            body = service.request("GET", f"/v1/clients/acme/users/{user}")[1]
            assert (body["flagged"], body["anomaly_use_case"], body["anomaly_date"]) == (None, False, None)
    # With the use case but before its first anomaly day (the query's verdicts are all NULL): none either.
    none_yet = flagged_scores(DAY).set_column(3, "flagged", pa.nulls(50, pa.bool_()))
    info = write_snapshot(none_yet, tmp_path / "t.arrow", "acme", DAY, "v1", Anomaly(True, None))
    snapshot = Snapshot(tmp_path / "t.arrow", info)
    assert snapshot.anomaly == Anomaly(True, None) and snapshot.find(b"u3")[2] == -1


def test_a_product_is_answered_from_the_newest_demand_day_an_unknown_one_is_a_404(store, tmp_path):
    publish_full(store, tmp_path, DAY)
    with running(store, tmp_path) as service:
        wait_ready(service, DAY)
        assert service.request("GET", "/v1/clients/default/products/p1") == (
            200,
            {
                "client": "default",
                "product_id": "p1",
                "found": True,
                "demand_forecast": 2.0,
                "demand_hi_95": 3.0,
                "horizon_days": 14,
                "overstock": True,
                "stock_on_hand": 101.0,
                "stock_as_of": "2026-08-01",
                "excess": 98.0,
                "excess_rank": 2,
                "model_version": "ets@2026-07-01",
                "demand_date": "2026-08-01",
                "partition_date": "2026-08-01",
            },
        )
        status, body = service.request("GET", "/v1/clients/default/products/p10")
        assert status == 200 and (body["overstock"], body["excess"], body["excess_rank"]) == (
            False,
            None,
            None,
        )
        status, body = service.request("GET", "/v1/clients/default/products/nothing")
        assert (status, body["error"], body["found"], body["product_id"]) == (
            404,
            "unknown product",
            False,
            "nothing",
        )
        status, body = service.request(
            "POST", "/v1/clients/default/products:batchGet", {"product_ids": ["p0", "nothing"]}
        )
        assert status == 200 and [(p["product_id"], p["found"]) for p in body["products"]] == [
            ("p0", True),
            ("nothing", False),
        ]
        assert service.request("POST", "/v1/clients/default/products:batchGet", {"user_ids": []})[0] == 400
    # A snapshot without a demand day: every product is unknown, and the answer says why.
    publish(store, tmp_path, DAY + dt.timedelta(days=1))
    with running(store, tmp_path) as service:
        wait_ready(service, DAY + dt.timedelta(days=1))
        status, body = service.request("GET", "/v1/clients/default/products/p1")
        assert (status, body["error"], body["demand_date"]) == (
            404,
            "no demand forecast for this client",
            None,
        )


def test_a_key_reads_only_its_own_clients_products(store, tmp_path):
    publish_full(store, tmp_path, DAY)
    publish_full(store, tmp_path, DAY, client="acme")
    keys = ApiKeys(json.dumps({"default": KEY, "acme": OTHER_KEY}), "test keys")
    with running(store, tmp_path, clients=keys.clients, keys=keys) as service:
        wait_ready(service, DAY, "acme")
        wait_ready(service, DAY, "default")
        path = "/v1/clients/default/products/p1"
        assert service.request("GET", path)[0] == 401
        assert service.request("GET", path, key=OTHER_KEY)[0] == 403
        assert service.request("GET", path, key=KEY)[0] == 200
        batch = service.request(
            "POST", "/v1/clients/acme/products:batchGet", {"product_ids": ["p1"]}, key=KEY
        )
        assert batch[0] == 403


def test_a_products_file_that_differs_from_the_pointer_refuses_the_whole_snapshot(store, tmp_path):
    publish_full(store, tmp_path, DAY)
    info = store.latest("default")[0]
    path = products_path(store.local_copy(info, tmp_path))
    with path.open("r+b") as file:  # one byte in the middle: Arrow reads it without complaint
        file.seek(path.stat().st_size // 2)
        byte = file.read(1)
        file.seek(-1, 1)
        file.write(bytes([byte[0] ^ 1]))
    with pytest.raises(SnapshotError, match=r"products\.arrow has sha256 \w+, its pointer says"):
        Snapshot(store.local_copy(info, tmp_path), info)


def test_a_hot_swap_keeps_flags_and_products_consistent_with_the_served_day(store, tmp_path):
    publish_full(store, tmp_path, DAY)
    days = [DAY + dt.timedelta(days=i) for i in range(1, 4)]
    errors: list[str] = []
    seen: list[tuple[str, str, object]] = []
    stop = threading.Event()

    def hammer(port: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            while not stop.is_set():
                for path in ("/v1/clients/default/users/u3", "/v1/clients/default/products/p1"):
                    connection.request("GET", path)
                    response = connection.getresponse()
                    body = json.loads(response.read())
                    if response.status != 200:
                        errors.append(f"{response.status}: {body}")
                    elif "flagged" in body:
                        seen.append(("user", body["partition_date"], (body["flagged"], body["anomaly_date"])))
                    else:
                        seen.append(
                            (
                                "product",
                                body["partition_date"],
                                (body["demand_forecast"], body["demand_date"]),
                            )
                        )
        except Exception as error:  # noqa: BLE001 - every failure of a request is what the test counts
            errors.append(repr(error))

    with running(store, tmp_path) as service:
        wait_ready(service, DAY)
        threads = [threading.Thread(target=hammer, args=(service.port,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for day in days:
            time.sleep(0.3)
            publish_full(store, tmp_path, day)
            wait_ready(service, day)
        time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(10)
    assert errors == []
    for kind, served_day, value in seen:
        day = dt.date.fromisoformat(served_day)
        if kind == "user":  # u3 is flagged on odd days; the verdict is of the day before the snapshot's
            assert value == (day.day % 2 == 1, str(day - dt.timedelta(days=1)))
        else:
            assert value == (1.0 + day.day, served_day)
    assert {served_day for _, served_day, _ in seen} >= {str(DAY), str(days[-1])}


SCORED = [f"u{i}" for i in range(6)]
# What the publishing functions use of an asset's context, its log (build_asset_context() takes
# seconds to import and start an instance, a lean test's whole budget).
LOGGING_CONTEXT = types.SimpleNamespace(log=logging.getLogger("karte_assets_tests.serving"))


def scores_warehouse(tmp_path: Path, model_version: str = "v1") -> DuckDBWarehouse:
    """A DuckDB warehouse holding the loyalty scores of DAY for the client default."""
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    for ddl in ("loyalty_scores_table", "user_anomaly_scores_table", "demand_forecast_table"):
        warehouse.ensure_table(ddl)
    warehouse.ensure_table("overstock_candidates_table")
    warehouse.ensure_table("loyalty_model_table")
    warehouse.replace_partition_with_rows(
        "loyalty_scores",
        DAY,
        pd.DataFrame(
            {
                "user_id": SCORED,
                "loyal_score": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
                "coupon_tier": ["A", "A", "B", "B", "none", "none"],
                "model_version": model_version,
            }
        ),
    )
    return warehouse


def write_verdicts(warehouse: DuckDBWarehouse, day: dt.date, flagged: dict[str, bool]) -> None:
    rows = pd.DataFrame({"user_id": list(flagged), "flagged": list(flagged.values())})
    warehouse.replace_partition_with_rows(
        "user_anomaly_scores", day, rows.assign(anomaly_score=0.5, reasons="", model_version="if")
    )


def test_the_scores_asset_publishes_the_newest_anomaly_verdicts_and_demand_day_on_or_before_its_day(tmp_path):
    """The publishing queries on a real DuckDB warehouse: the anomaly day and demand day are each
    client's newest on or before the snapshot's day (a later one is not used), verdicts are per user."""
    warehouse = scores_warehouse(tmp_path)
    write_verdicts(
        warehouse, DAY - dt.timedelta(days=2), {"u0": True, "u1": True}
    )  # an older verdict, not used
    write_verdicts(
        warehouse, DAY - dt.timedelta(days=1), {"u1": True, "u2": False}
    )  # the newest on or before DAY
    write_verdicts(warehouse, DAY + dt.timedelta(days=1), {"u3": True})  # after the snapshot's day, not used
    for day, units in ((DAY - dt.timedelta(days=1), 1.0), (DAY + dt.timedelta(days=1), 50.0)):
        forecast = pd.DataFrame(
            {
                "product_id": ["p1", "p1", "p2", "p2"],
                "forecast_date": [day + dt.timedelta(days=d) for d in (1, 2, 1, 2)],
                "forecast": [units, units, 2.0, 2.0],
                "hi_95": [units * 2, units * 2, 3.0, 3.0],
                "model_version": "ets@x",
            }
        ).assign(lo_80=0.0, hi_80=0.0, lo_95=0.0)
        warehouse.replace_partition_with_rows("demand_forecast", day, forecast)
        overstock = pd.DataFrame(
            {
                "product_id": ["p1"],
                "stock_on_hand": [10.0],
                "stock_as_of": [day],
                "demand_forecast": [units * 2],
                "demand_hi_95": [units * 4],
                "excess": [10.0 - units * 4],
                "excess_rank": [1],
                "model_version": "ets@x",
            }
        )
        warehouse.replace_partition_with_rows("overstock_candidates", day, overstock)
    model_store = LocalModelStore(root=str(tmp_path / "models"))
    context = LOGGING_CONTEXT
    info = publish_snapshot(context, warehouse, model_store, DAY, "v1", "default", anomaly_use_case=True)
    snapshot = Snapshot(model_store.snapshots().local_copy(info, tmp_path), info)
    assert snapshot.anomaly == Anomaly(True, DAY - dt.timedelta(days=1))
    assert [snapshot.find(u.encode())[2] for u in SCORED] == [-1, 1, 0, -1, -1, -1]
    assert snapshot.products.info.demand_date == DAY - dt.timedelta(days=1)
    assert snapshot.products.find(b"p1") | {"stock_as_of": None} == {
        "demand_forecast": 2.0,
        "demand_hi_95": 4.0,
        "horizon_days": 2,
        "overstock": True,
        "stock_on_hand": 10.0,
        "stock_as_of": None,
        "excess": 6.0,
        "excess_rank": 1,
        "model_version": "ets@x",
    }
    assert snapshot.products.find(b"p2")["overstock"] is False and snapshot.products.find(b"p3") is None
    # The same client without the anomaly use case: no verdicts, though the table has some.
    info = publish_snapshot(context, warehouse, model_store, DAY, "v1", "default", anomaly_use_case=False)
    snapshot = Snapshot(model_store.snapshots().local_copy(info, tmp_path), info)
    assert snapshot.anomaly == NO_ANOMALY and {snapshot.find(u.encode())[2] for u in SCORED} == {-1}


def test_the_anomaly_job_publishes_the_served_day_again_with_its_own_verdicts_only_while_servable(tmp_path):
    warehouse = scores_warehouse(tmp_path)
    model_store = LocalModelStore(root=str(tmp_path / "models"))
    context = LOGGING_CONTEXT

    def model(status: str) -> None:
        row = pd.DataFrame({"status": [status], "model_version": ["v1"]})
        warehouse.replace_partition_with_rows("loyalty_model", DAY, row)

    model("trained")
    write_verdicts(warehouse, DAY - dt.timedelta(days=1), {"u1": True})
    first = publish_snapshot(context, warehouse, model_store, DAY, "v1", "default", anomaly_use_case=True)
    # The anomaly job writes DAY after the loyalty job published DAY: u2 is flagged now, u1 not.
    write_verdicts(warehouse, DAY, {"u1": False, "u2": True})
    assert (
        refresh_served_snapshot(context, warehouse, model_store, "default", DAY + dt.timedelta(days=1))
        is None
    )
    again = refresh_served_snapshot(context, warehouse, model_store, "default", DAY)
    assert again is not None and again.sha256 != first.sha256
    assert model_store.snapshots().latest("default")[0] == again
    snapshot = Snapshot(model_store.snapshots().local_copy(again, tmp_path), again)
    assert (snapshot.anomaly.partition_date, snapshot.find(b"u1")[2], snapshot.find(b"u2")[2]) == (DAY, 0, 1)
    # A re-run rejected the day's model: its scores are not published again.
    model("rejected")
    assert refresh_served_snapshot(context, warehouse, model_store, "default", DAY) is None
    # Scores of another model than the one named are refused, naming both.
    model("trained")
    warehouse = scores_warehouse(tmp_path, model_version="v2")
    with pytest.raises(ValueError, match=r"come from the models \['v2'\], not v1"):
        refresh_served_snapshot(context, warehouse, model_store, "default", DAY)


def test_on_gcs_the_products_land_before_the_snapshot_and_are_downloaded_beside_it(monkeypatch, tmp_path):
    with emulated_gcs(monkeypatch, "karte-models") as gcs:
        model_store = GcsModelStore(bucket="karte-models", prefix="karte/prod/", gcs=GCSResource(project="p"))
        store = model_store.snapshots()
        assert publish_full(store, tmp_path, DAY)
        info = store.latest("default")[0]
        folder = "karte/prod/serving/default/2026-08-01"
        assert [name for name, _ in gcs.written] == [
            f"{folder}/{info.sha256[:16]}.products.arrow",
            f"{folder}/{info.sha256[:16]}.arrow",
            "karte/prod/serving/default/LATEST.json",
        ]
        snapshot = Snapshot(store.local_copy(info, tmp_path), info)
        assert snapshot.products.find(b"p0")["excess_rank"] == 1 and snapshot.find(b"u3")[2] == 1
