# CCAS images for docker-compose.flink.yml (no Docker engine on the development machines: built by CI/production only).
#   stage wheel:   builds the ccas wheel from the source tree (migrations inside as ccas/_migrations; no tests, no clone files).
#   target app:    python:3.11 slim + the wheel — pki (`ccas tls init`), init (database roles and migrations, Kafka principals
#                  and topics, bucket), poller, scoring service, ops API, lag exporter, and the job submitter (`ccas-pipeline`).
#   target worker: Beam's Python SDK harness image + the wheel — the EXTERNAL worker pool beside each TaskManager.
# Only the installed package goes into the images, never the source tree: a clone in the working directory would shadow the
# installed package for `python -c`/`-m` (and its alembic/ folder the alembic library). The worker image must carry our code:
# Flink runs our DoFns in it, and its Beam must equal the submitter's (2.73.0).

FROM python:3.11.11-slim-bookworm AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm AS app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Dependencies first (their own layer, rebuilt only when requirements.txt changes), then the wheel without dependencies.
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/ccas-*.whl && rm -rf /tmp/wheels \
    && useradd --system --uid 10001 --create-home --home-dir /home/ccas ccas
WORKDIR /home/ccas
USER ccas
ENTRYPOINT ["ccas"]

# The SDK image's entrypoint is Beam's boot program; `--worker_pool` (compose command) makes it serve the worker pool on 50000.
FROM apache/beam_python3.11_sdk:2.73.0 AS worker
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /tmp/requirements.txt
# Beam is already in the image at the pinned version; installing the rest of our requirements beside it keeps it unchanged.
RUN grep -v '^apache-beam' /tmp/requirements.txt > /tmp/requirements-no-beam.txt \
    && pip install -r /tmp/requirements-no-beam.txt && rm /tmp/requirements*.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/ccas-*.whl && rm -rf /tmp/wheels
