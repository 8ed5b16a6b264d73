# The training image Vertex AI runs: `python -m karte_assets.training.entrypoint` under Dagster
# Pipes, with LightGBM's OpenCL GPU learner (the PyPI wheel has it) on NVIDIA accelerators.
# Build from the repository root: docker build -f docker/training.Dockerfile -t $IMAGE .
FROM nvidia/cuda:12.6.3-runtime-ubuntu24.04

# libgomp1: LightGBM's OpenMP. ocl-icd-libopencl1: the OpenCL loader. The NVIDIA ICD points the
# loader at the driver's OpenCL library, which the container runtime mounts for "compute".
# The base image's tag pins the distribution; its package versions follow security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv libgomp1 ocl-icd-libopencl1 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /etc/OpenCL/vendors \
    && echo "libnvidia-opencl.so.1" > /etc/OpenCL/vendors/nvidia.icd
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
WORKDIR /opt/karte
ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never UV_PYTHON=/usr/bin/python3 \
    PATH=/opt/venv/bin:$PATH PYTHONPATH=/opt/karte PYTHONUNBUFFERED=1

# Only the 'training' dependency group of the lock: no Dagster, no warehouse clients.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --only-group training --no-install-project
# Not karte_assets/__init__.py: it names the Dagster component type (karte_assets.LoyaltyScoring),
# and the image has no Dagster; without it karte_assets is a namespace package (PEP 420).
COPY karte_assets/training karte_assets/training

# Vertex AI passes the command (python -m karte_assets.training.entrypoint) and the Pipes env.
CMD ["python", "-m", "karte_assets.training.entrypoint"]
