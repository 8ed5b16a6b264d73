"""dagster-webserver for the project's code location on a free loopback port, with a fresh instance.

Its instance launches runs straight from the webserver (DefaultRunCoordinator): no daemon is needed
to dequeue them, so a launched run starts at once as a subprocess of the webserver.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from karte_assets.settings import REPO_ROOT

INSTANCE_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator.default_run_coordinator
  class: DefaultRunCoordinator
"""
SERVER_TIMEOUT_S = 120  # generous: a loaded 2-core machine loads the code location slowly


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def webserver(home: Path, log_path: Path, environ: Mapping[str, str]) -> Iterator[str]:
    """The webserver's URL, once it answers; its instance and $KARTE_HOME live under ``home``.

    ``environ`` adds to this process's environment (e.g. ``KARTE_SYNTHETIC_USERS_PER_DAY``).
    """
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "KARTE_HOME": str(home / "karte"), **environ}
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w")
    command = [str(Path(sys.executable).with_name("dagster-webserver")), "-m", "karte_assets.definitions"]
    server = subprocess.Popen(
        [*command, "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the code server and run workers end with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while True:
            assert server.poll() is None, f"the webserver exited; see {log_path}"
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2):  # noqa: S310 (http, loopback)
                    break
            except OSError:
                assert time.monotonic() < deadline, f"no webserver on {url} after {SERVER_TIMEOUT_S}s"
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
