# The code-location image: the Dagster code server for karte_assets (dagster_cloud.yaml). The
# Dagster+ agent starts `dagster api grpc` in it with dagster-cloud's instance, so dagster-cloud, a
# main dependency at dagster's version, is part of what `uv sync --no-dev` installs
# (karte_assets_tests/test_deploy.py checks the list; GitHub Actions builds the image).
FROM python:3.11-slim

# LightGBM's wheel needs OpenMP at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /opt/karte_assets
ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 PATH=/opt/venv/bin:$PATH

COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY karte_assets ./karte_assets
RUN uv sync --frozen --no-dev

# Production variables (KARTE_ENV, KARTE_GCP_PROJECT, ...) come from the deployment, never the image.
EXPOSE 4000
CMD ["dagster", "api", "grpc", "-m", "karte_assets.definitions", "-h", "0.0.0.0", "-p", "4000"]
