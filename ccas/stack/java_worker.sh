#!/usr/bin/env bash
# Beam's Java SDK harness as Prism's PROCESS environment; ccas/stack/expansion.py names this script as the command and passes
# CCAS_JAVA_BOOT (Beam's boot program `container`, built by scripts/build_tools.sh) and CCAS_JAVA_WORKER_DIR in its env.
#
# Why a wrapper and not the boot program itself (docs/pipeline.md, Kafka readers):
# - Prism 2.73 starts the command with --id='<id>' including the quotes (no shell in between); the boot program would then
#   register under the quoted id and fail ("worker_id ... not registered"). The quotes are stripped here.
# - The boot program copies the staged jars (~140 MB) into <semi_persist_dir>/<id>/staged and never deletes them (default /tmp):
#   they go under the stack folder instead (<CCAS_JAVA_WORKER_DIR>/<wrapper pid>/<id>/staged), and that folder is removed when
#   the worker ends.
# - Prism stops a worker by SIGKILL of this process (Go's exec.CommandContext), which no trap sees; a detached watcher therefore
#   stops the boot program's process group (boot program + java) and removes the folder once this process is gone.
set -uo pipefail

: "${CCAS_JAVA_BOOT:?CCAS_JAVA_BOOT (path of Beam's Java boot program) is not set}"
: "${CCAS_JAVA_WORKER_DIR:?CCAS_JAVA_WORKER_DIR (folder for the workers' staged jars) is not set}"

args=()
id=""
for arg in "$@"; do
  case "$arg" in
    --id=*) id="${arg#--id=}"; id="${id//\'/}"; args+=("--id=$id") ;;
    --semi_persist_dir=*) ;;  # ours wins: the folder must be one we clean
    *) args+=("$arg") ;;
  esac
done
if [[ -z "$id" || "$id" == */* || "$id" == . || "$id" == .. ]]; then
  echo "java_worker.sh: missing or unusable --id in: $*" >&2
  exit 2
fi

# One folder per wrapper process, not per worker id: every Prism numbers its jobs from job-001, so two Prisms (two test runs)
# give their workers the same id, and the boot program would share (and the watchers delete) one staging folder.
wrapper=$$
worker_dir="$CCAS_JAVA_WORKER_DIR/$wrapper"
rm -rf "$worker_dir"  # a leftover of an earlier wrapper with this (recycled) pid: that one is certainly gone
mkdir -p "$worker_dir"
printf '%s\n' "$id" > "$worker_dir/id"

# The boot program writes pipeline_options.json and pathing.jar into its working directory (Prism's, often the clone's root):
# run it in the worker's folder, so concurrent workers do not overwrite each other's and nothing is left behind.
cd "$worker_dir" || exit 2
# setsid: the boot program leads a new process group, so the watcher can stop it together with the java it starts.
setsid "$CCAS_JAVA_BOOT" "${args[@]}" --semi_persist_dir="$worker_dir" &
boot=$!
# Read by `ccas stack` and the tests to find (and, if ever needed, stop) what this worker left running.
echo "$wrapper $boot" > "$worker_dir/pids"

(
  trap '' INT TERM HUP  # the watcher must outlive a Ctrl-C of the test run to clean up
  while kill -0 "$wrapper" 2>/dev/null && kill -0 "$boot" 2>/dev/null; do sleep 1; done
  kill -TERM -- "-$boot" 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    kill -0 -- "-$boot" 2>/dev/null || break
    sleep 0.5
  done
  kill -KILL -- "-$boot" 2>/dev/null
  rm -rf "$worker_dir"
) </dev/null >/dev/null 2>&1 &

wait "$boot"
exit $?
