#!/usr/bin/env bash
# Stop the test cluster that scripts/start_slurm_cluster.sh started in FOLDER (the same
# default), daemon by daemon from its own pid files; nothing else on the machine is touched.
# The folder stays (its logs); remove it to start afresh.
set -uo pipefail
DIR=$(realpath -m "${1:-${TMPDIR:-/tmp}/sweeplab-slurm}")
MUNGE_DIR=$(cat "$DIR/munge/started" 2>/dev/null || true)  # a munged this cluster started
for pid_file in "$DIR"/run/{slurmd,slurmctld,slurmdbd,mysql}.pid ${MUNGE_DIR:+"$MUNGE_DIR/munged.pid"}; do
  [ -s "$pid_file" ] || continue
  pid=$(cat "$pid_file")
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
done
[ -n "$MUNGE_DIR" ] && rm -rf "$MUNGE_DIR" "$DIR/munge/started"
exit 0
