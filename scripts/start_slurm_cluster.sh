#!/usr/bin/env bash
# A one-node SLURM cluster of its own for tests/test_slurm.py: munge, MariaDB (accounting),
# slurmdbd, slurmctld and slurmd, with their config, sockets, state, spool, logs and ports all
# in one folder, so that a machine's own SLURM (/etc/slurm, /var/spool/slurm*, its MariaDB) is
# neither read nor changed. Talk to it with SLURM_CONF=<folder>/slurm.conf. Authentication is
# munge's standard socket: the machine's munged where one runs, else one started with a key of
# the folder's.
#
#   scripts/start_slurm_cluster.sh [FOLDER]   # default: ${TMPDIR:-/tmp}/sweeplab-slurm
#   scripts/stop_slurm_cluster.sh [FOLDER]
#
# Needs root and apt (Debian's slurm-wlm). A cluster of FOLDER that is up already is left
# alone. Exits 0 only once the node is idle in sinfo; otherwise non-zero, the reason on stderr.
set -euo pipefail
DIR=$(realpath -m "${1:-${TMPDIR:-/tmp}/sweeplab-slurm}")
HOST=$(hostname)
CLUSTER=sweeplab
export SLURM_CONF=$DIR/slurm.conf

fail() { echo "$*" >&2; exit 1; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
node_idle() { sinfo -h -o %T 2>/dev/null | grep -qE "^(idle|mixed|allocated)"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

[ "$(id -u)" = 0 ] || fail "the test cluster needs root (it starts munged, MariaDB and SLURM's daemons)"
if ! command -v slurmctld >/dev/null || ! command -v mariadb-install-db >/dev/null; then
  command -v apt-get >/dev/null || fail "SLURM is not installed and there is no apt-get to install it"
  apt-get update -qq || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    slurmd slurmctld slurm-client slurmdbd munge mariadb-server >/dev/null \
    || fail "apt-get could not install slurm-wlm, munge and mariadb-server"
fi
if [ -f "$SLURM_CONF" ] && node_idle; then
  exit 0  # this folder's cluster is up
fi

mkdir -p "$DIR"/{state,spool,log,run,mysql,munge}
# Ports are chosen once per folder and kept, so that a restart finds its own daemons' config.
if [ ! -s "$DIR/ports" ]; then
  echo "$(free_port) $(free_port) $(free_port) $(free_port)" > "$DIR/ports"
fi
read -r CTLD_PORT SLURMD_PORT DBD_PORT DB_PORT < "$DIR/ports"

# munge: SLURM's clients (sacctmgr among them) reach munged only on its standard socket, so
# the cluster uses the munged that answers there, or starts one there with a key of its own.
# munged runs as the munge user, who cannot enter a private folder such as pytest's, so its
# key, pid, seed and log live in a folder of this cluster's own under munge's /run/munge.
MUNGE_DIR=/run/munge/sweeplab-$(printf %s "$DIR" | md5sum | cut -c1-12)
if ! munge -n </dev/null >/dev/null 2>&1; then
  mkdir -p "$MUNGE_DIR" && chown munge:munge /run/munge "$MUNGE_DIR" && chmod 700 "$MUNGE_DIR"
  if [ ! -s "$MUNGE_DIR/munge.key" ]; then
    dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
  fi
  chown munge:munge "$MUNGE_DIR/munge.key" && chmod 400 "$MUNGE_DIR/munge.key"
  runuser -u munge -- munged --key-file="$MUNGE_DIR/munge.key" \
    --pid-file="$MUNGE_DIR/munged.pid" --seed-file="$MUNGE_DIR/munge.seed" \
    --log-file="$MUNGE_DIR/munged.log" \
    || fail "munged did not start: $(tail -1 "$MUNGE_DIR/munged.log" 2>/dev/null)"
  echo "$MUNGE_DIR" > "$DIR/munge/started"  # for stop_slurm_cluster.sh
fi

# MariaDB: its own data folder, socket and port, for slurmdbd's accounting database
MYSQL=(mariadb --no-defaults --socket="$DIR/run/mysql.sock" -uroot)
if [ ! -d "$DIR/mysql/mysql" ]; then
  mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root \
    --auth-root-authentication-method=normal --skip-test-db >"$DIR/log/mysql-install.log" 2>&1 \
    || fail "mariadb-install-db failed: $(tail -1 "$DIR/log/mysql-install.log")"
fi
if ! alive "$DIR/run/mysql.pid"; then
  setsid mariadbd --no-defaults --datadir="$DIR/mysql" --socket="$DIR/run/mysql.sock" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$DIR/run/mysql.pid" --user=root \
    --log-error="$DIR/log/mysql.log" </dev/null >/dev/null 2>&1 &
  for _ in $(seq 120); do "${MYSQL[@]}" -e "SELECT 1" >/dev/null 2>&1 && break; sleep 0.5; done
fi
"${MYSQL[@]}" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;" \
  || fail "MariaDB did not start: $(tail -2 "$DIR/log/mysql.log" 2>/dev/null)"

cat > "$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
EOF
chmod 600 "$DIR/slurmdbd.conf"
cat > "$SLURM_CONF" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
JobAcctGatherType=jobacct_gather/linux
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
KillWait=10
MinJobAge=600
NodeName=$HOST CPUs=$(nproc) RealMemory=$(( $(free -m | awk '/^Mem:/ {print $2}') * 8 / 10 )) State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

alive "$DIR/run/slurmdbd.pid" || slurmdbd || fail "slurmdbd did not start: $(tail -2 "$DIR/log/slurmdbd.log")"
for _ in $(seq 60); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
sacctmgr -n list cluster format=cluster 2>/dev/null | grep -qw "$CLUSTER" \
  || sacctmgr -i add cluster "$CLUSTER" >/dev/null \
  || fail "slurmdbd does not answer: $(tail -2 "$DIR/log/slurmdbd.log")"
alive "$DIR/run/slurmctld.pid" || slurmctld || fail "slurmctld did not start: $(tail -2 "$DIR/log/slurmctld.log")"
alive "$DIR/run/slurmd.pid" || slurmd || fail "slurmd did not start: $(tail -2 "$DIR/log/slurmd.log")"
for _ in $(seq 60); do
  node_idle && exit 0
  sleep 1
done
fail "the SLURM node is not idle after 60 s: sinfo says '$(sinfo -h -o '%T %E' 2>&1 | tail -1)'; \
slurmctld's log ends: $(tail -1 "$DIR/log/slurmctld.log" 2>/dev/null)"
