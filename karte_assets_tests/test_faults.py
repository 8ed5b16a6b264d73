"""Faults: a killed training job or a killed write leave nothing half-done, and a re-run converges."""

import datetime as dt
import os
import signal
import stat
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from karte_assets.resources.trainer import SubprocessTrainer
from karte_assets.resources.warehouse import DuckDBWarehouse
from karte_assets_tests.graph import FIRST_DAY, LocalGraph, failure_message

TRAINING_DAY = FIRST_DAY + dt.timedelta(days=14)  # the first day the test config trains a model
TABLES = ["raw_events", "user_features", "loyalty_training_set", "loyalty_model", "loyalty_scores"]
VOLATILE = {"loyalty_model": ("trained_at", "model_uri")}

# Stands in for the Python interpreter: opens the Pipes session like the real job, writes half a
# model file where the model goes, then is killed as an OOM killer or a preempted VM would.
KILLED_TRAINER = textwrap.dedent(
    f"""\
    #!{sys.executable}
    import os, signal
    from dagster_pipes import open_dagster_pipes
    with open_dagster_pipes() as pipes:
        pipes.log.info("training starts")
        path = pipes.extras["model_uri"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as model:
            model.write("tree\\nversion=v4\\nnum_class=1\\n")
            model.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


def killed_trainer(tmp_path) -> SubprocessTrainer:
    script = tmp_path / "killed-python"
    script.write_text(KILLED_TRAINER)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return SubprocessTrainer(python_executable=str(script))


def tables(graph: LocalGraph) -> dict[str, pd.DataFrame]:
    return {name: graph.table(name, drop=VOLATILE.get(name, ())) for name in TABLES}


@pytest.mark.slow
def test_a_training_job_killed_mid_run_registers_nothing_and_a_rerun_converges(tmp_path):
    undisturbed = LocalGraph(tmp_path / "undisturbed")
    assert undisturbed.materialize(FIRST_DAY, TRAINING_DAY).success

    graph = LocalGraph(tmp_path / "disturbed")
    assert graph.materialize(FIRST_DAY, TRAINING_DAY - dt.timedelta(days=1)).success
    real_trainer = graph.resources["trainer"]
    graph.resources["trainer"] = killed_trainer(tmp_path)
    result = graph.materialize(TRAINING_DAY, raise_on_error=False)

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "loyalty_model"
    assert "failed with code -9" in failure_message(result)
    models = tmp_path / "disturbed" / "karte" / "models"
    assert not (models / "versions").exists() or not any((models / "versions").iterdir())
    assert not any((models / "staging").rglob("*.txt")), "the half-written model was left in staging"
    assert not graph.warehouse.partition_exists("loyalty_model", TRAINING_DAY)
    assert not graph.warehouse.partition_exists("loyalty_scores", TRAINING_DAY)

    graph.resources["trainer"] = real_trainer
    assert graph.materialize(TRAINING_DAY).success
    for name, table in tables(undisturbed).items():
        pd.testing.assert_frame_equal(table, tables(graph)[name], obj=name)


SLOW_WRITER = textwrap.dedent(
    """\
    import sys, time
    import datetime as dt
    import pyarrow as pa
    from karte_assets.resources.warehouse import DuckDBWarehouse

    def batches():
        for i in range(1000):
            if i == 2:
                print("writing", flush=True)
            time.sleep(0.05)
            yield pa.record_batch({"x": pa.array([i] * 1000, pa.int64())})

    rows = pa.RecordBatchReader.from_batches(pa.schema({"x": pa.int64()}), batches())
    DuckDBWarehouse(path=sys.argv[1]).replace_partition_with_rows("t", dt.date(2026, 6, 2), rows)
    """
)


def test_a_write_killed_mid_way_leaves_the_previous_partition_visible(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    day = dt.date(2026, 6, 2)
    warehouse.replace_partition_with_rows("t", day, pd.DataFrame({"x": [1, 2, 3]}))
    writer = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, warehouse.path], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "writing"  # the old rows are deleted in its transaction
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    with warehouse.connect() as connection:
        rows = connection.execute(
            "SELECT x FROM t WHERE partition_date = $d ORDER BY x", {"d": day}
        ).fetchall()
    assert rows == [(1,), (2,), (3,)]
    assert warehouse.partition_exists("t", day)


HOLDER = textwrap.dedent(
    """\
    import logging, sys, time
    from karte_assets.resources.warehouse import DuckDBWarehouse

    DuckDBWarehouse(path=sys.argv[1]).hold_for_run("run-elsewhere", logging.getLogger())
    print("holding", flush=True)
    time.sleep(2)
    """
)


def test_a_second_run_of_the_same_days_waits_for_the_first_instead_of_interleaving(graph):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, graph.warehouse.path], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "holding"
    result = graph.materialize(FIRST_DAY)
    assert holder.poll() is not None, "the run wrote while another run held the warehouse"
    messages = [entry.user_message for entry in graph.instance.all_logs(result.run_id)]
    assert any("waiting for run run-elsewhere" in message for message in messages)
