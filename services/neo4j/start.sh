#!/usr/bin/env bash
# Start a real Neo4j Community server (embedded, Bolt on 127.0.0.1, auth enabled) in the background
# and wait until it answers a query. See README.md in this folder.
#
#   services/neo4j/start.sh            # prints the Bolt URI on success
#
# Environment (all optional):
#   NEO4J_PORT           Bolt port on 127.0.0.1           (default 7687)
#   NEO4J_PASSWORD       password of user neo4j           (default kgqa-test-password, >= 8 characters)
#   NEO4J_DATA           data directory                   (default services/neo4j/data)
#   NEO4J_HEAP           JVM maximum heap                 (default 1g)
#   NEO4J_PAGECACHE_MB   page cache in MiB                (default 256)
#   NEO4J_START_TIMEOUT  seconds to wait for readiness    (default 120)
#   NEO4J_PYTHON         a Python with the neo4j driver, used for the readiness query
#                        (default: the first of $VIRTUAL_ENV/bin/python, python3, python that has it)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB="$HERE/lib"
PORT="${NEO4J_PORT:-7687}"
# One server per port: the default port uses neo4j.pid / neo4j.log, any other port neo4j-PORT.pid / .log.
SUFFIX=""; [[ "$PORT" != 7687 ]] && SUFFIX="-$PORT"
LOG="$HERE/neo4j$SUFFIX.log"
PIDFILE="$HERE/neo4j$SUFFIX.pid"

export NEO4J_PASSWORD="${NEO4J_PASSWORD:-kgqa-test-password}"
DATA="${NEO4J_DATA:-$HERE/data}"
HEAP="${NEO4J_HEAP:-1g}"
export NEO4J_PAGECACHE_MB="${NEO4J_PAGECACHE_MB:-256}"
TIMEOUT="${NEO4J_START_TIMEOUT:-120}"
URI="bolt://127.0.0.1:$PORT"

# JVM flags from the server.jvm.additional lines of Neo4j 5.x's stock conf/neo4j.conf
# (minus -XX:+AlwaysPreTouch, which slows start-up), plus a small heap.
JVM_FLAGS=(
  "-Xmx$HEAP"
  -XX:+ExitOnOutOfMemoryError
  -XX:+UseG1GC
  -XX:-OmitStackTraceInFastThrow
  -XX:+UnlockExperimentalVMOptions
  -XX:+TrustFinalNonStaticFields
  -XX:+DisableExplicitGC
  -Djdk.nio.maxCachedBufferSize=1024
  -Dio.netty.tryReflectionSetAccessible=true
  -Djdk.tls.ephemeralDHKeySize=2048
  -Djdk.tls.rejectClientInitiatedRenegotiation=true
  --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
  --enable-native-access=ALL-UNNAMED
  -Dlog4j2.disable.jmx=true
  -Dfile.encoding=UTF-8
)

SHOW_LOG=0   # set once this script has launched a server: only then is neo4j.log about this start
fail() {
  echo "neo4j: $*" >&2
  if [[ "$SHOW_LOG" == 1 && -s "$LOG" ]]; then
    echo "---- last lines of $LOG ----" >&2
    tail -n 25 "$LOG" >&2
  fi
  exit 1
}

# Alive = exists and is not a zombie (an exited process nobody has reaped yet).
pid_alive() {
  [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null || return 1
  [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)" != "Z" ]]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

find_python() {
  local candidates=()
  [[ -n "${NEO4J_PYTHON:-}" ]] && candidates+=("$NEO4J_PYTHON")
  [[ -n "${VIRTUAL_ENV:-}" ]] && candidates+=("$VIRTUAL_ENV/bin/python")
  candidates+=(python3 python)
  local py
  for py in "${candidates[@]}"; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import neo4j' >/dev/null 2>&1; then
      echo "$py"
      return 0
    fi
  done
  return 1
}

# A real query over Bolt with the configured password (password passed via the environment).
bolt_query_ok() {
  local py="$1"
  NEO4J_URI="$URI" "$py" - >/dev/null 2>&1 <<'EOF'
import os, neo4j
with neo4j.GraphDatabase.driver(os.environ["NEO4J_URI"],
                                auth=("neo4j", os.environ["NEO4J_PASSWORD"])) as driver:
    records, _, _ = driver.execute_query("RETURN 1 AS ok")
    assert records[0]["ok"] == 1
EOF
}

# ---- already running? --------------------------------------------------------------------------
if [[ -f "$PIDFILE" ]]; then
  OLD_PID="$(cat "$PIDFILE" 2>/dev/null || true)"
  if pid_alive "$OLD_PID"; then
    if port_open; then
      echo "neo4j: already running (pid $OLD_PID) at $URI"
      echo "$URI"
      exit 0
    fi
    fail "a server is running (pid $OLD_PID, from $PIDFILE) but port $PORT is not open yet; it is probably still starting (see $LOG), or stop it with $HERE/stop.sh."
  fi
  rm -f "$PIDFILE"   # stale
fi

if port_open; then
  fail "port $PORT on 127.0.0.1 is already in use by another process; set NEO4J_PORT to a free port."
fi

command -v java >/dev/null 2>&1 || fail "java not found on PATH (Java 17 or newer is required)."

# ---- fetch the jars (once; the stamp makes a half-finished download retry) ----------------------
STAMP="$LIB/.complete"
POM_SUM="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$POM_SUM" ]]; then
  command -v mvn >/dev/null 2>&1 || fail "lib/ is missing and mvn is not on PATH to fetch the Neo4j jars."
  echo "neo4j: fetching Neo4j jars into $LIB (first run only) ..."
  rm -rf "$LIB"
  if ! mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies -DoutputDirectory="$LIB" >"$HERE/mvn.log" 2>&1; then
    tail -n 25 "$HERE/mvn.log" >&2
    fail "fetching the Neo4j jars with Maven failed (full output: $HERE/mvn.log)."
  fi
  echo "$POM_SUM" >"$STAMP"
  rm -f "$HERE/mvn.log"
fi

# ---- start ---------------------------------------------------------------------------------------
mkdir -p "$DATA"
DATA="$(cd "$DATA" && pwd)"
echo "neo4j: starting on $URI (data: $DATA, heap: $HEAP, page cache: ${NEO4J_PAGECACHE_MB}m) ..."
START=$SECONDS
# setsid: its own session, so a Ctrl-C in the calling terminal does not reach the server.
SETSID=()
command -v setsid >/dev/null 2>&1 && SETSID=(setsid)
nohup "${SETSID[@]}" java "${JVM_FLAGS[@]}" -cp "$LIB/*" "$HERE/Launcher.java" \
  --data "$DATA" --port "$PORT" >"$LOG" 2>&1 </dev/null &
PID=$!
echo "$PID" >"$PIDFILE"
SHOW_LOG=1

PY="$(find_python || true)"
while :; do
  if ! pid_alive "$PID"; then
    rm -f "$PIDFILE"
    fail "the server exited during start-up."
  fi
  if grep -q '^READY ' "$LOG" 2>/dev/null && port_open; then
    if [[ -z "$PY" ]] || bolt_query_ok "$PY"; then
      break
    fi
  fi
  if (( SECONDS - START >= TIMEOUT )); then
    fail "not ready after ${TIMEOUT}s (pid $PID still running; stop it with $HERE/stop.sh)."
  fi
  sleep 1
done

if [[ -n "$PY" ]]; then how="a Bolt query with $PY"; else how="READY line + open port; no Python neo4j driver found"; fi
echo "neo4j: ready after $((SECONDS - START))s (pid $PID, checked by $how); log: $LOG"
echo "$URI"
