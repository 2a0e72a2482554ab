#!/usr/bin/env bash
# Stop the server started by start.sh: SIGTERM (clean shutdown), then SIGKILL after a timeout.
#   NEO4J_PORT          which server (default 7687), as given to start.sh
#   NEO4J_STOP_TIMEOUT  seconds to wait after SIGTERM before SIGKILL (default 60)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PORT="${NEO4J_PORT:-7687}"   # the same NEO4J_PORT as given to start.sh
SUFFIX=""; [[ "$PORT" != 7687 ]] && SUFFIX="-$PORT"
PIDFILE="$HERE/neo4j$SUFFIX.pid"
TIMEOUT="${NEO4J_STOP_TIMEOUT:-60}"

# Alive = exists and is not a zombie (an exited process nobody has reaped yet).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ "$state" != "Z" ]]
}

if [[ ! -f "$PIDFILE" ]]; then
  echo "neo4j: not running (no $PIDFILE)"
  exit 0
fi
PID="$(cat "$PIDFILE" 2>/dev/null || true)"

if [[ -z "$PID" ]] || ! alive "$PID"; then
  echo "neo4j: not running (stale pid file removed)"
  rm -f "$PIDFILE"
  exit 0
fi
# Only signal our own launcher, never a process that merely reused the pid.
if ! tr '\0' ' ' <"/proc/$PID/cmdline" 2>/dev/null | grep -q 'Launcher.java'; then
  echo "neo4j: pid $PID is not the Neo4j launcher; removing the stale pid file"
  rm -f "$PIDFILE"
  exit 0
fi

echo "neo4j: stopping pid $PID ..."
kill -TERM "$PID" 2>/dev/null || true
for ((i = 0; i < TIMEOUT * 5; i++)); do
  alive "$PID" || break
  sleep 0.2
done
if alive "$PID"; then
  echo "neo4j: still running after ${TIMEOUT}s; sending SIGKILL" >&2
  kill -KILL "$PID" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$PID" || break
    sleep 0.2
  done
fi
rm -f "$PIDFILE"
if alive "$PID"; then
  echo "neo4j: pid $PID did not exit" >&2
  exit 1
fi
echo "neo4j: stopped"
