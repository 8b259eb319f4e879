#!/usr/bin/env bash
# Builds the Go binaries the local stack needs (SeaweedFS, Prism, Beam's Java boot program) into the shared cache,
# once per machine: a fresh clone on the same machine finds them there and builds nothing.
set -euo pipefail

CCAS_CACHE="${CCAS_CACHE:-$HOME/.cache/ccas}"
SEAWEEDFS_VERSION="v0.0.0-20261109003541-7506e5f91cd6"
BEAM_VERSION="v2.73.0"
BIN="$CCAS_CACHE/bin"
export GOPATH="$CCAS_CACHE/go" GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local
mkdir -p "$BIN"

log() { printf '[build-tools] %s\n' "$*" >&2; }

build_weed() {
  local out="$BIN/weed-$SEAWEEDFS_VERSION"
  if [[ -x "$out" ]]; then return 0; fi
  log "building SeaweedFS $SEAWEEDFS_VERSION (about 4 min on 2 cores, once per machine)"
  local dir src
  dir=$(go mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  src=$(mktemp -d "$CCAS_CACHE/weed-src.XXXXXX")
  cp -r "$dir/." "$src" && chmod -R u+w "$src"
  (cd "$src" && go build -o "$out.tmp" ./weed)
  mv "$out.tmp" "$out" && rm -rf "$src"
  log "SeaweedFS built: $out"
}

build_prism() {
  # Prism's Job API listens on every interface (jobservices.NewServer: net.Listen(":port")) and runs any job it is sent;
  # the stack's build binds it to the loopback address instead. Its web UI and worker endpoints already use localhost.
  local out="$BIN/prism-$BEAM_VERSION-loopback"
  if [[ -x "$out" ]]; then return 0; fi
  log "building Prism $BEAM_VERSION bound to 127.0.0.1 (about 2 min, once per machine)"
  local dir src server
  dir=$(go mod download -json "github.com/apache/beam/sdks/v2@$BEAM_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  src=$(mktemp -d "$CCAS_CACHE/prism-src.XXXXXX")
  cp -r "$dir/." "$src" && chmod -R u+w "$src"
  server="$src/go/pkg/beam/runners/prism/internal/jobservices/server.go"
  grep -q 'net.Listen("tcp", fmt.Sprintf(":%d", port))' "$server" || { log "Prism's listener line changed upstream: $server"; exit 1; }
  sed -i 's/net.Listen("tcp", fmt.Sprintf(":%d", port))/net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))/' "$server"
  (cd "$src" && go build -o "$out.tmp" ./go/cmd/prism)
  mv "$out.tmp" "$out" && rm -rf "$src"
  log "Prism built: $out"
}

build_java_boot() {
  local out="$BIN/beam-java-boot-$BEAM_VERSION"
  if [[ -x "$out" ]]; then return 0; fi
  log "building Beam's Java boot program $BEAM_VERSION"
  GOBIN="$CCAS_CACHE/gobin-boot" go install "github.com/apache/beam/sdks/v2/java/container@$BEAM_VERSION"
  mv "$CCAS_CACHE/gobin-boot/container" "$out"
  log "Java boot program built: $out"
}

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(weed prism java_boot)
for target in "${targets[@]}"; do
  "build_$target"
done
