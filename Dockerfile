# CCAS images for docker-compose.flink.yml (no Docker engine on the development machines: built by CI/production only).
#   target app:    python:3.11 slim + the ccas package — poller, scoring service, init and the job submitter (run_pipeline.py).
#   target worker: Beam's Python SDK harness image + the ccas package — the EXTERNAL worker pool beside each TaskManager.
# The worker image must carry our code: Flink runs our DoFns in it, and its Beam must equal the submitter's (2.73.0).

FROM python:3.11.11-slim-bookworm AS app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /opt/ccas
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY . .
RUN pip install --no-deps . && useradd --system --uid 10001 ccas
USER ccas
ENTRYPOINT ["ccas"]

# The SDK image's entrypoint is Beam's boot program; `--worker_pool` (compose command) makes it serve the worker pool on 50000.
FROM apache/beam_python3.11_sdk:2.73.0 AS worker
ENV PIP_NO_CACHE_DIR=1
WORKDIR /opt/ccas
COPY requirements.txt ./
# Beam is already in the image at the pinned version; installing the rest of our requirements beside it keeps it unchanged.
RUN grep -v '^apache-beam' requirements.txt > /tmp/requirements.txt && pip install -r /tmp/requirements.txt
COPY . .
RUN pip install --no-deps .
