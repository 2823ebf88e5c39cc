#!/usr/bin/env bash
# Stop the test cluster that scripts/start_slurm_cluster.sh started in FOLDER (the same
# default), daemon by daemon from its own pid files; nothing else on the machine is touched.
# The folder stays (its logs); remove it to start afresh.
set -uo pipefail
DIR=$(realpath -m "${1:-${TMPDIR:-/tmp}/sweeplab-slurm}")
for pid_file in run/slurmd.pid run/slurmctld.pid run/slurmdbd.pid run/mysql.pid munge/munged.pid; do
  [ -s "$DIR/$pid_file" ] || continue
  pid=$(cat "$DIR/$pid_file")
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
done
exit 0
