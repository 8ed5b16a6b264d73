# The lookup service Cloud Run runs: `python -m karte_assets.serving` on the serving snapshots in
# the model store's bucket (docs/google-cloud.md, "Real-time lookups"). Only the 'serving'
# dependency group of the lock and the serving package: no Dagster, no warehouse clients.
# Build from the repository root: docker build -f docker/serving.Dockerfile -t $IMAGE .
FROM python:3.11-slim

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
WORKDIR /opt/karte
ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/karte

COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --only-group serving --no-install-project
# Not karte_assets/__init__.py: it names the Dagster component type (karte_assets.LoyaltyScoring),
# and the image has no Dagster; without it karte_assets is a namespace package (PEP 420).
COPY karte_assets/serving karte_assets/serving
RUN python -m compileall -q karte_assets

# Cloud Run sets PORT; the store, the clients and the auth mode come from the service's variables
# (KARTE_SERVING_STORE, KARTE_SERVING_CLIENTS, KARTE_SERVING_AUTH, KARTE_SERVING_API_KEYS).
USER nobody
CMD ["python", "-m", "karte_assets.serving", "--host", "0.0.0.0"]
