"""The deploy pipeline, checked without a Docker engine or a network.

The images are built only in GitHub Actions (.github/workflows/ci-cd.yml); here their dependency lists
are resolved from uv.lock with the same `uv sync` options the Dockerfiles use, and the deploy script
runs against the real dagster-cloud CLI up to the step that would call Dagster+.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster_cloud_cli.config_utils import get_location_document

ROOT = Path(__file__).resolve().parents[1]
SHA = "0123456789abcdef0123456789abcdef01234567"
CODE_DIGEST = "sha256:" + "a" * 64
REGISTRY = "asia-northeast1-docker.pkg.dev/karte-test/karte"
TRAINING_IMAGE = f"{REGISTRY}/training@sha256:" + "b" * 64


def _uv() -> str:
    # `uv run` (make test) names itself in UV; otherwise uv from PATH or the Makefile's bootstrap.
    found = os.environ.get("UV") or shutil.which("uv") or str(ROOT / ".karte/bootstrap/bin/uv")
    assert Path(found).exists(), "uv not found: run the tests with `make test` or put uv on PATH"
    return found


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / dockerfile).read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _sync_options(dockerfile: str) -> list[str]:
    """The options of the Dockerfile's last `uv sync`, the one that installs the image's environment."""
    syncs = [
        shlex.split(command)
        for kind, run in _instructions(dockerfile)
        if kind == "RUN"
        for command in run.split("&&")
        if command.split()[:2] == ["uv", "sync"]
    ]
    assert syncs, f"{dockerfile} runs no `uv sync`"
    return [option for option in syncs[-1][2:] if option != "--no-install-project"]


def _copied(dockerfile: str) -> list[Path]:
    """The repository paths the Dockerfile copies into the image."""
    sources = []
    for kind, args in _instructions(dockerfile):
        if kind == "COPY" and not args.startswith("--from"):
            sources += [ROOT / source for source in args.split()[:-1]]
    return sources


def _locked_packages(options: list[str]) -> dict[str, str]:
    """name -> version of what `uv sync <options>` installs, resolved from uv.lock."""
    exported = subprocess.run(
        [_uv(), "export", "--no-hashes", "--no-header", "--no-emit-project", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", exported, flags=re.M)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def test_code_location_image_has_what_dagster_plus_needs():
    """Dagster+ hybrid runs the code server from the image with dagster-cloud's instance class, so the
    image needs dagster-cloud at dagster's own version (dagster-cloud pins dagster==its version)."""
    options = _sync_options("Dockerfile")
    assert "--frozen" in options, "the image must install exactly uv.lock"
    packages = _locked_packages(options)
    assert "dagster-cloud" in packages, (
        f"the code-location image (uv sync {' '.join(options)}) lacks dagster-cloud"
    )
    assert packages["dagster-cloud"] == packages["dagster"]
    assert "pytest" not in packages, "the code-location image installs the dev group"

    module = yaml.safe_load((ROOT / "dagster_cloud.yaml").read_text())["locations"][0]["code_source"][
        "module_name"
    ]
    module_file = ROOT / (module.replace(".", "/") + ".py")
    assert module_file.exists(), f"dagster_cloud.yaml names {module}, which is not in the repository"
    assert any(module_file.is_relative_to(source) for source in _copied("Dockerfile")), (
        f"the Dockerfile copies no source of {module}"
    )


def _imports(files: list[Path]) -> set[str]:
    """Every `module` and `module:name` imported anywhere in `files`, at module level or in functions."""
    names = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names |= {f"{node.module}:{alias.name}" for alias in node.names}
    return names


# Runs in the training venv: imports each `module` and finds each `module:name`, as attribute or submodule.
_PROBE = """
import importlib, sys
for item in sys.argv[1:]:
    module, _, name = item.partition(":")
    try:
        if name and not hasattr(importlib.import_module(module), name):
            importlib.import_module(f"{module}.{name}")
        importlib.import_module(module)
    except ImportError as error:
        print(f"{item}: {error}")
"""


@pytest.mark.parametrize(
    ("dockerfile", "group", "entrypoint"),
    [
        ("docker/training.Dockerfile", "training", "karte_assets/training/entrypoint.py"),
        ("docker/serving.Dockerfile", "serving", "karte_assets/serving/__main__.py"),
    ],
)
def test_job_and_service_images_install_only_their_group_and_all_their_code_imports(
    tmp_path, dockerfile, group, entrypoint
):
    """A venv made as the Dockerfile makes its own imports everything the copied code imports."""
    options = _sync_options(dockerfile)
    assert "--only-group" in options and group in options, options
    assert "dagster" not in _locked_packages(options), (
        f"the {group} image installs the project's dependencies"
    )

    # The image's file tree: only what the Dockerfile copies, under PYTHONPATH as in the image.
    app = tmp_path / "app"
    code = []
    for source in _copied(dockerfile):
        target = app / source.relative_to(ROOT)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
        code += [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))
    assert app / entrypoint in code, f"{dockerfile} copies no {entrypoint}"
    venv = tmp_path / "venv"
    subprocess.run(
        [_uv(), "sync", "--no-install-project", "--quiet", *options],
        cwd=ROOT,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)},
        check=True,
    )
    probe = subprocess.run(
        [str(venv / "bin/python"), "-c", _PROBE, *sorted(_imports(code))],
        cwd=app,
        env={"PYTHONPATH": str(app), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout == "", f"the {group} image cannot import:\n{probe.stdout}"


def _deploy(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    """deploy/deploy-code-location.sh with DRY_RUN=1: every step up to `ci deploy`, offline."""
    env = {
        key: value
        for key, value in os.environ.items()
        # Under GitHub Actions the CLI would read the event and create branch deployments over the
        # network (dagster_cloud_cli/commands/metrics.py get_source): this is a local dry run.
        if key not in {"GITHUB_ACTION", "DAGSTER_CLOUD_URL"}
    }
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}:{env['PATH']}",
            "DAGSTER_DEPLOYMENT": "prod",
            "DAGSTER_CLOUD_ORGANIZATION": "karte-test",
            "DAGSTER_CLOUD_API_TOKEN": "not-a-token",
            "DAGSTER_BUILD_STATEDIR": str(tmp_path / "state"),
            "REGISTRY": REGISTRY,
            "GIT_SHA": SHA,
            "CODE_LOCATION_DIGEST": CODE_DIGEST,
            "TRAINING_IMAGE": TRAINING_IMAGE,
            "DRY_RUN": "1",
        }
        | overrides
    )
    return subprocess.run(
        [str(ROOT / "deploy/deploy-code-location.sh")], env=env, capture_output=True, text=True
    )


def test_deploy_sends_this_commits_images_by_digest(tmp_path):
    """What `ci deploy` would send, built by the CLI's own get_location_document as its _deploy does."""
    run = _deploy(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    state = json.loads((tmp_path / "state/location-karte_assets.json").read_text())
    assert state["deployment_name"] == "prod"
    assert state["build"]["commit_hash"] == SHA
    document = get_location_document(
        "karte_assets", {"image": state["build_output"]["image"], "location_file": state["location_file"]}
    )
    assert document["image"] == f"{REGISTRY}/code-location:{SHA}@{CODE_DIGEST}"
    assert document["code_source"] == {"module_name": "karte_assets.definitions"}
    assert f"KARTE_TRAINING_IMAGE={TRAINING_IMAGE}" in document["container_context"]["k8s"]["env_vars"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TRAINING_IMAGE", f"{REGISTRY}/training:prod"),
        ("CODE_LOCATION_DIGEST", SHA),
        ("GIT_SHA", "main"),
    ],
)
def test_deploy_refuses_mutable_references(tmp_path, name, value):
    run = _deploy(tmp_path, **{name: value})
    assert run.returncode == 2
    assert f"{name}={value}" in run.stderr
    assert not (tmp_path / "state").exists()
