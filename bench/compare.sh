#!/usr/bin/env bash
# Compare natter with the floor (`natter-bench floor-server`, the smallest
# fan-out server on natter's loop design), the reference Go chat server
# (gopl ch. 8) and `ncat --chat`, natter's rooms with its one room, and
# natter over TLS with `ncat --chat --ssl`, and two natter nodes joined
# through Redis against one; write docs/benchmarks.md and
# docs/benchmarks-throughput.svg.
#
#   bench/compare.sh                  # full comparison: 3 runs of everything
#   QUICK=1 bench/compare.sh          # one short run of each scenario (smoke test)
#   SERVERS="natter floor" bench/compare.sh
#   OLD_NATTER=/tmp/natter.old SERVERS="natter natter-old" bench/compare.sh
#
# Environment:
#   QUICK=1            one short run per scenario (1 s measured, idle with 1000
#                      clients unless IDLE_N is set)
#   SERVERS="..."      any of: natter floor ref ncat natter-old ncat-ssl natter-tls
#                      natter-cluster (default: natter floor ref ncat ncat-ssl
#                      natter-tls natter-cluster, plus natter-old with
#                      OLD_NATTER). A server whose tool or
#                      source is missing is skipped with a one-line note saying
#                      how to get it. The plain scenarios run on natter, floor,
#                      ref, ncat and natter-old; the room scenarios on natter
#                      only (the others have no rooms); the TLS scenarios on
#                      ncat-ssl (`ncat --chat --ssl`) and natter-tls (natter
#                      with its plain --listen on one port and --tls-listen on
#                      another, the generator on the TLS one), with an ECDSA
#                      P-256 certificate made at run time with openssl; the
#                      cluster scenarios on natter-cluster: per run a fresh
#                      redis-server (persistence off) and two natter nodes
#                      joined through it (--cluster, --node-name n1 and n2),
#                      all three on SERVER_CPU, the clients spread over both
#                      nodes (or the senders on n1, the others on n2); natter's
#                      plain rows of the same run are the one-node figures.
#   RUNS=N             runs per scenario (default 3; QUICK: 1)
#   DURATION=S         measured seconds (default 5; QUICK: 1)
#   WARMUP=S           warm-up seconds (default 1; QUICK: 0.5)
#   IDLE_N=N           idle clients (default 10000; QUICK: 1000); the rooms row
#                      spreads as many over IDLE_N/10 rooms
#   TLS_IDLE_N=N       idle TLS clients (default 5000; QUICK: 1000)
#   HANDSHAKES_N=N     connections of the handshakes row (default 2000; QUICK: 500)
#   SERVER_CPU=0 GEN_CPU=1   the cores the server and the generator are pinned to
#   REF_SRC=DIR        the Go reference's source: the book's server, the ch8/chat
#                      folder of https://github.com/adonovan/gopl.io (no default;
#                      without it `ref` is skipped). Built with `go build` into
#                      the temporary folder. If the server takes no address
#                      argument (the book's listens on localhost:8000), it runs
#                      on the port written in its source.
#   OLD_NATTER=FILE    a second natter binary, run side by side as `natter-old`
#                      (to check a change: the report adds a table new/old)
#   BUILD=0            use the natter and natter-bench binaries already in
#                      $CARGO_TARGET_DIR/release (default target/release)
#                      instead of building them
#   OUT_MD=FILE        report (default docs/benchmarks.md)
#   OUT_SVG=FILE       chart (default docs/benchmarks-throughput.svg)
#
# Every server runs pinned to SERVER_CPU, the generator to GEN_CPU, each server
# freshly started per run on a free loopback port and killed by its PID
# afterwards (and on exit). Raw JSON results stay in a temporary folder whose
# path is printed at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

QUICK=${QUICK:-0}
SERVERS=${SERVERS:-"natter floor ref ncat ncat-ssl natter-tls natter-cluster"}
if [[ -n ${OLD_NATTER:-} && " $SERVERS " != *" natter-old "* ]]; then
    SERVERS="$SERVERS natter-old"
fi
if [[ $QUICK == 1 ]]; then
    RUNS=${RUNS:-1}
    DURATION=${DURATION:-1}
    WARMUP=${WARMUP:-0.5}
    IDLE_N=${IDLE_N:-1000}
    TLS_IDLE_N=${TLS_IDLE_N:-1000}
    HANDSHAKES_N=${HANDSHAKES_N:-500}
else
    RUNS=${RUNS:-3}
    DURATION=${DURATION:-5}
    WARMUP=${WARMUP:-1}
    IDLE_N=${IDLE_N:-10000}
    TLS_IDLE_N=${TLS_IDLE_N:-5000}
    HANDSHAKES_N=${HANDSHAKES_N:-2000}
fi
ROOMS_IDLE=$((IDLE_N / 10 > 1 ? IDLE_N / 10 : 2))
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
REF_SRC=${REF_SRC:-}
OLD_NATTER=${OLD_NATTER:-}
OUT_MD=${OUT_MD:-$ROOT/docs/benchmarks.md}
OUT_SVG=${OUT_SVG:-$ROOT/docs/benchmarks-throughput.svg}

# report: docs/benchmarks.md and its chart from the raw results in $TMP
# (bench/report.py; it appends bench/analysis.md).
report() {
    mkdir -p "$(dirname "$OUT_MD")" "$(dirname "$OUT_SVG")"
    NATTER_ANALYSIS=$ROOT/bench/analysis.md python3 "$ROOT/bench/report.py" \
        "$TMP/raw" "$TMP/machine.txt" "$TMP/commands.txt" "$TMP/server-commands.txt" \
        "$OUT_MD" "$OUT_SVG" "$QUICK" "$RUNS" "$DURATION" "$WARMUP" "$IDLE_N" "$SERVERS" \
        "$ELAPSED" "$SERVER_CPU" "$GEN_CPU" "$ROOT" "$ROOMS_IDLE" "$TLS_IDLE_N" "$HANDSHAKES_N"
}

if [[ -n ${REPORT_FROM:-} ]]; then
    TMP=${REPORT_FROM%/}
    if [[ ! -f $TMP/settings.sh ]]; then
        echo "compare.sh: $TMP/settings.sh: not found; REPORT_FROM takes the folder an earlier run printed at its end" >&2
        exit 2
    fi
    # shellcheck source=/dev/null # written by the run itself, below
    . "$TMP/settings.sh"
    report
    exit 0
fi

for s in $SERVERS; do
    case $s in
    natter | floor | ref | ncat | natter-old | ncat-ssl | natter-tls | natter-cluster) ;;
    *)
        echo "compare.sh: unknown server '$s' (natter, floor, ref, ncat, natter-old, ncat-ssl, natter-tls, natter-cluster)" >&2
        exit 2
        ;;
    esac
done

log() { printf 'compare.sh: %s\n' "$*" >&2; }

has_server() { [[ " $SERVERS " == *" $1 "* ]]; }

# skip SERVER REASON: drop a server that cannot run here, saying why in one line.
skip() {
    log "skipping $1: $2"
    local s kept=
    for s in $SERVERS; do
        [[ $s == "$1" ]] || kept="$kept $s"
    done
    SERVERS=${kept# }
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/natter-compare.XXXXXX")
RAW=$TMP/raw
LOGS=$TMP/logs
mkdir -p "$RAW" "$LOGS"

# Every server we start, by PID; killed on exit whatever happens.
SERVER_PIDS=()
cleanup() {
    local p
    for p in "${SERVER_PIDS[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            kill "$p" 2>/dev/null || true
            sleep 0.2
            kill -9 "$p" 2>/dev/null || true
        fi
    done
    log "raw results and logs: $TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------------- tools
for cmd in taskset python3 ss; do
    command -v $cmd >/dev/null || {
        log "$cmd is required"
        exit 1
    }
done
for s in ncat ncat-ssl; do
    if has_server $s && ! command -v ncat >/dev/null; then
        skip $s "ncat is not installed (Debian/Ubuntu: apt-get install ncat; elsewhere it comes with nmap)"
    fi
done
for s in ncat-ssl natter-tls; do
    if has_server $s && ! command -v openssl >/dev/null; then
        skip $s "openssl is not installed to make the test certificate (Debian/Ubuntu: apt-get install openssl)"
    fi
done
if has_server natter-cluster && ! { command -v redis-server && command -v redis-cli; } >/dev/null; then
    skip natter-cluster "redis-server or redis-cli is not installed (Debian/Ubuntu: apt-get install redis-server): no cluster rows"
fi
if has_server ref; then
    if [[ -z $REF_SRC ]]; then
        skip ref "REF_SRC is not set: get the book's server, the ch8/chat folder of https://github.com/adonovan/gopl.io, and run with REF_SRC=/path/to/gopl.io/ch8/chat"
    elif ! compgen -G "$REF_SRC/*.go" >/dev/null; then
        skip ref "no Go source in REF_SRC=$REF_SRC (it should be the ch8/chat folder of https://github.com/adonovan/gopl.io)"
    elif ! command -v go >/dev/null; then
        skip ref "go is not installed (Debian/Ubuntu: apt-get install golang-go; elsewhere https://go.dev/dl/)"
    fi
fi
if has_server natter-old && [[ -z $OLD_NATTER || ! -x $OLD_NATTER ]]; then
    skip natter-old "set OLD_NATTER to an executable natter binary to compare with"
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
NATTER=$TARGET/release/natter
BENCH=$TARGET/release/natter-bench
if [[ ${BUILD:-1} != 0 ]]; then
    log "building natter and natter-bench (release)"
    cargo build --release --locked
    cargo build --release --locked -p natter-bench
fi
for b in "$NATTER" "$BENCH"; do
    [[ -x $b ]] || {
        log "$b is missing"
        exit 1
    }
done
if has_server natter-tls; then
    natter_help=$("$NATTER" --help 2>&1 || true)
    if [[ $natter_help != *--tls-listen* ]]; then
        skip natter-tls "this natter has no --tls-listen yet: no natter-tls rows"
    fi
fi
if has_server natter-cluster; then
    natter_help=$("$NATTER" --help 2>&1 || true)
    if [[ $natter_help != *--cluster* ]]; then
        skip natter-cluster "this natter has no --cluster yet: no cluster rows"
    fi
fi
if [[ -z ${SERVERS// /} ]]; then
    log "no server left to run"
    exit 1
fi
log "servers: $SERVERS"
# The TLS servers' certificate: ECDSA P-256, self-signed, for localhost.
CERT=$TMP/tls-cert.pem
KEY=$TMP/tls-key.pem
if has_server ncat-ssl || has_server natter-tls; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout "$KEY" \
        -out "$CERT" -days 1 -nodes -subj /CN=localhost >"$LOGS/openssl.log" 2>&1 || {
        log "openssl could not make the test certificate (see $LOGS/openssl.log)"
        exit 1
    }
fi
REF=$TMP/gopl-chat
# The book's server listens on a fixed address (localhost:8000); a copy
# that reads its address from argv[1] (`os.Args`) runs on a free port.
REF_PORT=
if has_server ref; then
    log "building the reference server from $REF_SRC"
    # Named files, not a package path: the book's folder has no go.mod.
    ref_files=()
    for f in "$REF_SRC"/*.go; do
        [[ $f == *_test.go ]] || ref_files+=("$(basename "$f")")
    done
    if ! (cd "$REF_SRC" && go build -o "$REF" "${ref_files[@]}") >"$LOGS/ref-build.log" 2>&1; then
        skip ref "go build failed in $REF_SRC (see $LOGS/ref-build.log)"
    elif ! (cd "$REF_SRC" && grep -q 'os\.Args' "${ref_files[@]}"); then
        REF_PORT=$(cd "$REF_SRC" && grep -ho 'localhost:[0-9]\+' "${ref_files[@]}" | head -n 1 | cut -d: -f2)
        if [[ -z $REF_PORT ]]; then
            skip ref "its source takes no address argument and names no localhost port"
        else
            log "the reference server ignores arguments: it runs on its own port $REF_PORT"
        fi
    fi
fi

# Descriptors: 10,000 idle clients need more than the usual 1024, for the
# generator and for the servers alike (the Go runtime and natter raise their
# own soft limit; ncat does not).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

SERVER_PID=
start_server() {
    # start_server NAME PORT LOGFILE [SERVER ARGS...]; sets SERVER_PID
    local name=$1 port=$2 logf=$3
    shift 3
    case $name in
    natter) taskset -c "$SERVER_CPU" "$NATTER" --listen "127.0.0.1:$port" --rate 0 "$@" >"$logf" 2>&1 & ;;
    natter-tls)
        taskset -c "$SERVER_CPU" "$NATTER" --listen "127.0.0.1:$(free_port)" --tls-listen "127.0.0.1:$port" \
            --tls-cert "$CERT" --tls-key "$KEY" --rate 0 "$@" >"$logf" 2>&1 &
        ;;
    ncat-ssl)
        taskset -c "$SERVER_CPU" ncat --listen --chat --keep-open --ssl --ssl-cert "$CERT" --ssl-key "$KEY" \
            -m 20000 127.0.0.1 "$port" >"$logf" 2>&1 &
        ;;
    natter-old) taskset -c "$SERVER_CPU" "$OLD_NATTER" --listen "127.0.0.1:$port" --rate 0 >"$logf" 2>&1 & ;;
    floor) taskset -c "$SERVER_CPU" "$BENCH" floor-server --listen "127.0.0.1:$port" >"$logf" 2>&1 & ;;
    ref) taskset -c "$SERVER_CPU" "$REF" "127.0.0.1:$port" >"$logf" 2>&1 & ;;
    ncat) taskset -c "$SERVER_CPU" ncat --listen --chat --keep-open -m 20000 127.0.0.1 "$port" >"$logf" 2>&1 & ;;
    esac
    SERVER_PID=$!
    SERVER_PIDS+=("$SERVER_PID")
    wait_listen "$port" "$SERVER_PID"
}

# wait_listen PORT PID: wait (5 s at most) until something listens on PORT,
# giving up early when process PID has exited.
wait_listen() {
    local i
    for i in $(seq 100); do
        if ss -Hltn "sport = :$1" | grep -q LISTEN; then
            return 0
        fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# A cluster run: a fresh redis-server on a free loopback port (persistence
# off: nothing is written to disk) and two natter nodes joined through it,
# all three on SERVER_CPU like every other server, so that the cluster has
# no more cores than one node and its rows show what joining costs.
CLUSTER_PIDS=()  # redis n1 n2
CLUSTER_PORTS=() # redis n1 n2
start_cluster() {
    # start_cluster ID; sets CLUSTER_PIDS and CLUSTER_PORTS
    local id=$1 rport port node
    CLUSTER_PIDS=()
    CLUSTER_PORTS=()
    rport=$(free_port)
    taskset -c "$SERVER_CPU" redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
        >"$LOGS/$id.redis.log" 2>&1 &
    CLUSTER_PIDS+=("$!")
    SERVER_PIDS+=("$!")
    CLUSTER_PORTS+=("$rport")
    wait_listen "$rport" "$!" || return 1
    for node in n1 n2; do
        port=$(free_port)
        taskset -c "$SERVER_CPU" "$NATTER" --listen "127.0.0.1:$port" --rate 0 \
            --cluster "redis://127.0.0.1:$rport" --node-name "$node" >"$LOGS/$id.$node.log" 2>&1 &
        CLUSTER_PIDS+=("$!")
        SERVER_PIDS+=("$!")
        CLUSTER_PORTS+=("$port")
        wait_listen "$port" "$!" || return 1
    done
    # Both nodes registered and subscribed: from the first line on, what is
    # said on one reaches the other.
    local i nodes subs
    for i in $(seq 100); do
        nodes=$(redis-cli -p "$rport" SCARD natter:nodes 2>/dev/null || true)
        subs=$(redis-cli -p "$rport" CLIENT LIST TYPE pubsub 2>/dev/null | grep -c . || true)
        if [[ $nodes == 2 && ${subs:-0} -ge 2 ]]; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# The nodes first (each tells the cluster it leaves), then Redis.
stop_cluster() {
    local i
    for ((i = ${#CLUSTER_PIDS[@]} - 1; i >= 0; i--)); do
        stop_server "${CLUSTER_PIDS[i]}"
    done
}

# redis_info PORT: the counters the report reads (PUBLISH calls and their
# time, commands, bytes in and out, CPU time), as Redis prints them, and
# when they were read. Redis's own CPU figures come from getrusage, in
# microseconds: /proc's 10 ms ticks are too coarse for the few milliseconds
# a second it uses here.
redis_info() {
    { redis-cli -p "$1" INFO commandstats && redis-cli -p "$1" INFO stats &&
        redis-cli -p "$1" INFO cpu; } 2>/dev/null | tr -d '\r' || true
    printf 'snapshot_time:%s\n' "$(date +%s.%N)"
}

stop_server() {
    local pid=$1
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

server_cmd() {
    case $1 in
    natter) echo "taskset -c $SERVER_CPU target/release/natter --listen 127.0.0.1:\$PORT --rate 0" ;;
    natter-old) echo "taskset -c $SERVER_CPU \$OLD_NATTER --listen 127.0.0.1:\$PORT --rate 0" ;;
    floor) echo "taskset -c $SERVER_CPU target/release/natter-bench floor-server --listen 127.0.0.1:\$PORT" ;;
    ref) if [[ -n $REF_PORT ]]; then
        echo "taskset -c $SERVER_CPU \$TMP/gopl-chat    # listens on localhost:$REF_PORT (PORT=$REF_PORT)"
    else
        echo "taskset -c $SERVER_CPU \$TMP/gopl-chat 127.0.0.1:\$PORT"
    fi ;;
    ncat) echo "taskset -c $SERVER_CPU ncat --listen --chat --keep-open -m 20000 127.0.0.1 \$PORT" ;;
    ncat-ssl) echo "taskset -c $SERVER_CPU ncat --listen --chat --keep-open --ssl --ssl-cert \$TMP/tls-cert.pem --ssl-key \$TMP/tls-key.pem -m 20000 127.0.0.1 \$PORT" ;;
    natter-tls) echo "taskset -c $SERVER_CPU target/release/natter --listen 127.0.0.1:\$PLAIN_PORT --tls-listen 127.0.0.1:\$PORT --tls-cert \$TMP/tls-cert.pem --tls-key \$TMP/tls-key.pem --rate 0" ;;
    natter-cluster)
        echo "taskset -c $SERVER_CPU redis-server --port \$REDIS_PORT --bind 127.0.0.1 --save '' --appendonly no"
        local n
        for n in 1 2; do
            echo "taskset -c $SERVER_CPU target/release/natter --listen 127.0.0.1:\$PORT$n --rate 0 --cluster redis://127.0.0.1:\$REDIS_PORT --node-name n$n"
        done
        ;;
    esac
}

COMMANDS=$TMP/commands.txt
: >"$COMMANDS"

# run_one SERVER KEY RUN SCENARIO ARGS...; SERVER_ARGS: extra server arguments
SERVER_ARGS=()
run_one() {
    local server=$1 key=$2 run=$3
    shift 3
    if [[ $server == natter-cluster ]]; then
        run_cluster "$key" "$run" "$@"
        return
    fi
    local id="${server}__${key}__${run}"
    local port
    port=$(free_port)
    local out=$RAW/$id.json
    if [[ $server == ref && -n $REF_PORT ]]; then
        port=$REF_PORT
        if ss -Hltn "sport = :$port" | grep -q LISTEN; then
            log "$id: port $port (the reference server's own) is in use by another program"
            printf '{"label":"%s","status":"port %s in use"}\n' "$server" "$port" >"$out"
            return
        fi
    fi
    if ! start_server "$server" "$port" "$LOGS/$id.server.log" "${SERVER_ARGS[@]}"; then
        log "$id: server did not start"
        printf '{"label":"%s","status":"server did not start"}\n' "$server" >"$out"
        stop_server "$SERVER_PID"
        return
    fi
    local pid=$SERVER_PID
    log "$id: $* (server pid $pid, port $port)"
    local rc=0
    timeout 1200 taskset -c "$GEN_CPU" "$BENCH" "$@" --addr "127.0.0.1:$port" \
        --server-pid "$pid" --label "$server" >"$out.tmp" 2>"$LOGS/$id.bench.log" || rc=$?
    local alive=true
    kill -0 "$pid" 2>/dev/null || alive=false
    stop_server "$pid"
    finish_result "$server" "$id" "$rc" "$alive"
    # Let TIME_WAIT sockets and the CPU settle between runs.
    sleep 0.5
}

# wait_log PID FILE TEXT: wait until FILE, the log of process PID, has a
# line with TEXT; false if PID ends first. tail follows the file through
# inotify, so the wait costs no CPU while the generator measures.
wait_log() {
    local fd tailpid found=1
    exec {fd}< <(exec tail --pid="$1" -n +1 -f "$2" 2>/dev/null)
    tailpid=$!
    grep -q -m1 -F -- "$3" <&"$fd" && found=0
    exec {fd}<&-
    kill "$tailpid" 2>/dev/null || true
    wait "$tailpid" 2>/dev/null || true
    return $found
}

# run_cluster KEY RUN ARGS...: one run against a fresh cluster; ARGS name
# the nodes' addresses {N1} and {N2}. The generator reads the CPU of n1, n2
# and Redis (in that order: n1's memory is the one sampled). Redis's own
# counters (PUBLISH calls, CPU, bytes) are read when the generator starts
# sending and after its drain, so that they cover the lines it sent and
# not the arrivals of the connect phase; and over one second before the
# generator starts, for what Redis spends with nothing to relay (its
# housekeeping, the nodes' pings), which is not a cost of the lines.
run_cluster() {
    local key=$1 run=$2
    shift 2
    local id="natter-cluster__${key}__${run}"
    local out=$RAW/$id.json
    if ! start_cluster "$id"; then
        log "$id: the cluster did not start (see $LOGS/$id.*.log)"
        printf '{"label":"natter-cluster","status":"cluster did not start"}\n' >"$out"
        stop_cluster
        return
    fi
    local a gen_args=()
    for a in "$@"; do
        a=${a//\{N1\}/127.0.0.1:${CLUSTER_PORTS[1]}}
        gen_args+=("${a//\{N2\}/127.0.0.1:${CLUSTER_PORTS[2]}}")
    done
    log "$id: ${gen_args[*]} (redis pid ${CLUSTER_PIDS[0]} port ${CLUSTER_PORTS[0]}, n1 pid ${CLUSTER_PIDS[1]}, n2 pid ${CLUSTER_PIDS[2]})"
    local rc=0 gen blog=$LOGS/$id.bench.log
    rm -f "$out.redis0" "$out.redis1"
    redis_info "${CLUSTER_PORTS[0]}" >"$out.idle0"
    sleep 1
    redis_info "${CLUSTER_PORTS[0]}" >"$out.idle1"
    timeout 1200 taskset -c "$GEN_CPU" "$BENCH" "${gen_args[@]}" --server-pid "n1=${CLUSTER_PIDS[1]}" \
        --server-pid "n2=${CLUSTER_PIDS[2]}" --server-pid "redis=${CLUSTER_PIDS[0]}" \
        --label natter-cluster >"$out.tmp" 2>"$blog" &
    gen=$!
    # Stopped on exit like the servers if the script is interrupted.
    SERVER_PIDS+=("$gen")
    if wait_log "$gen" "$blog" "natter-bench: warm-up"; then
        redis_info "${CLUSTER_PORTS[0]}" >"$out.redis0"
        if wait_log "$gen" "$blog" "natter-bench: drained in"; then
            redis_info "${CLUSTER_PORTS[0]}" >"$out.redis1"
        fi
    fi
    wait "$gen" || rc=$?
    local p alive=true
    for p in "${CLUSTER_PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || alive=false
    done
    stop_cluster
    finish_result natter-cluster "$id" "$rc" "$alive" "$out.redis0" "$out.redis1" "$out.idle0" "$out.idle1"
    rm -f "$out.redis0" "$out.redis1" "$out.idle0" "$out.idle1"
    sleep 0.5
}

# finish_result SERVER ID RC ALIVE [REDIS_BEFORE REDIS_AFTER IDLE_BEFORE
# IDLE_AFTER]: $RAW/ID.json from the generator's output ($RAW/ID.json.tmp):
# whether the server (every process of it) survived the run, and for a
# cluster what Redis counted while the generator sent (when both readings
# were made) and its CPU with nothing to do; or what went wrong.
finish_result() {
    local server=$1 id=$2 rc=$3 alive=$4
    local out=$RAW/$id.json
    if [[ $rc == 0 && -s $out.tmp ]]; then
        python3 - "$out.tmp" "$alive" "${5:-}" "${6:-}" "${7:-}" "${8:-}" >"$out" <<'EOF'
import json, os, sys
d = json.loads(open(sys.argv[1]).read())
d["server_alive_after"] = sys.argv[2] == "true"
if not d["server_alive_after"] and d.get("status") == "ok":
    d["status"] = "server exited during the run"


def counters(path):
    c = {}
    for line in open(path):
        k, _, v = line.strip().partition(":")
        if k == "cmdstat_publish":
            f = dict(x.split("=", 1) for x in v.split(",") if "=" in x)
            c["publish_calls"], c["publish_usec"] = int(f["calls"]), int(f["usec"])
        elif k in ("total_net_input_bytes", "total_net_output_bytes", "total_commands_processed"):
            c[k] = int(v)
        elif k in ("used_cpu_sys", "used_cpu_user"):
            c["cpu_s"] = c.get("cpu_s", 0.0) + float(v)
        elif k == "snapshot_time":
            c["t"] = float(v)
    return c


def readable(*files):
    return all(f and os.path.isfile(f) and os.path.getsize(f) > 0 for f in files)


if readable(*sys.argv[3:5]):
    a, b = counters(sys.argv[3]), counters(sys.argv[4])
    names = {"publish_calls": "publish_calls", "publish_usec": "publish_usec",
             "total_net_input_bytes": "net_input_bytes", "total_net_output_bytes": "net_output_bytes",
             "total_commands_processed": "commands", "cpu_s": "cpu_s"}
    d["redis_run"] = {n: b[k] - a.get(k, 0) for k, n in names.items() if k in b}
    if "cpu_s" in d["redis_run"]:
        d["redis_run"]["cpu_s"] = round(d["redis_run"]["cpu_s"], 6)
    d["redis_run"]["seconds"] = round(b["t"] - a["t"], 3)
if readable(*sys.argv[5:7]):
    a, b = counters(sys.argv[5]), counters(sys.argv[6])
    d["redis_idle_cpu_util"] = round((b["cpu_s"] - a["cpu_s"]) / (b["t"] - a["t"]), 6)
    d["redis_run_measured_at"] = ("Redis's INFO counters from the start of the warm-up to the end "
                                  "of the drain: while lines_sent were sent and delivered")
print(json.dumps(d))
EOF
    else
        local err
        err=$(tail -n 1 "$LOGS/$id.bench.log" | tr -d '"\\' | cut -c1-200)
        printf '{"label":"%s","status":"generator failed (exit %s): %s","server_alive_after":%s}\n' \
            "$server" "$rc" "$err" "$alive" >"$out"
    fi
    rm -f "$out.tmp"
}

record_cmd() {
    # record_cmd KEY SERVER_ARGS ARGS... (once per scenario key)
    local key=$1 extra=$2
    shift 2
    local args="$*"
    args=${args//$TMP/\$TMP}
    if [[ $key == cluster-* ]]; then
        # The nodes' ports and the three PIDs, as server_cmd names them.
        args=${args//\{N1\}/127.0.0.1:\$PORT1}
        args=${args//\{N2\}/127.0.0.1:\$PORT2}
        grep -q "^$key	" "$COMMANDS" ||
            printf '%s\ttaskset -c %s target/release/natter-bench %s --server-pid n1=$PID1 --server-pid n2=$PID2 --server-pid redis=$REDIS_PID --label natter-cluster\n' \
                "$key" "$GEN_CPU" "$args" >>"$COMMANDS"
        return
    fi
    [[ -z $extra ]] || extra="    # the server with $extra"
    grep -q "^$key	" "$COMMANDS" ||
        printf '%s\ttaskset -c %s target/release/natter-bench %s --addr 127.0.0.1:$PORT --server-pid $PID --label $SERVER%s\n' \
            "$key" "$GEN_CPU" "$args" "$extra" >>"$COMMANDS"
}

COMMON=(--duration "$DURATION" --warmup "$WARMUP")
TLS=(--tls --tls-ca "$CERT")
# Each entry: KEY|CLASS|server arguments|natter-bench arguments. CLASS says
# which servers run it: plain (natter floor ref ncat natter-old), rooms
# (natter: the others have no rooms), tls (ncat-ssl natter-tls), cluster
# (natter-cluster: two nodes and Redis, see run_cluster).
MATRIX=()
for n in 10 100 1000; do
    MATRIX+=("throughput-$n|plain||throughput --clients $n --senders 8 --window 64 --line-bytes 64 ${COMMON[*]}")
done
for n in 10 100 1000; do
    MATRIX+=("throughput-quickack-$n|plain||throughput --clients $n --senders 8 --window 64 --line-bytes 64 --quickack ${COMMON[*]}")
done
MATRIX+=("latency-100|plain||latency --clients 100 --senders 8 --rate 2000 --line-bytes 64 ${COMMON[*]}")
MATRIX+=("latency-1000|plain||latency --clients 1000 --senders 8 --rate 500 --line-bytes 64 ${COMMON[*]}")
MATRIX+=("idle-$IDLE_N|plain||idle --clients $IDLE_N --connect-timeout 240 --settle 1.5 --settle-max 90")
MATRIX+=("slow-reader-100|plain||slow-reader --clients 100 --senders 8 --window 64 --line-bytes 64 ${COMMON[*]}")
# Rooms: 1,000 clients in 100 rooms of 10, two senders in each; idle clients
# ten to a room (natter's --max-rooms counts its default room too).
MAX_ROOMS=
((ROOMS_IDLE + 1 <= 1000)) || MAX_ROOMS="--max-rooms $((ROOMS_IDLE + 1))"
MATRIX+=("rooms-throughput-1000|rooms||throughput --clients 1000 --rooms 100 --senders 200 --window 64 --line-bytes 64 ${COMMON[*]}")
MATRIX+=("rooms-idle-$IDLE_N|rooms|$MAX_ROOMS|idle --clients $IDLE_N --rooms $ROOMS_IDLE --connect-timeout 240 --settle 1.5 --settle-max 90")
# TLS: the plain rows' throughput and latency, idle TLS clients, handshakes
# (64 in flight), and the latency at 2,000 lines/s while 200 handshakes come
# at once.
for n in 100 1000; do
    MATRIX+=("tls-throughput-$n|tls||throughput --clients $n --senders 8 --window 64 --line-bytes 64 ${COMMON[*]} ${TLS[*]}")
done
MATRIX+=("tls-latency-100|tls||latency --clients 100 --senders 8 --rate 2000 --line-bytes 64 ${COMMON[*]} ${TLS[*]}")
MATRIX+=("tls-latency-1000|tls||latency --clients 1000 --senders 8 --rate 500 --line-bytes 64 ${COMMON[*]} ${TLS[*]}")
MATRIX+=("tls-idle-$TLS_IDLE_N|tls||idle --clients $TLS_IDLE_N --connect-timeout 240 --settle 1.5 --settle-max 90 ${TLS[*]}")
MATRIX+=("tls-handshakes-$HANDSHAKES_N|tls||handshakes --clients $HANDSHAKES_N --connect-parallel 64 --connect-timeout 240 ${TLS[*]}")
MATRIX+=("tls-burst-100|tls||latency --clients 100 --senders 8 --rate 2000 --line-bytes 64 --burst 200 --connect-timeout 60 ${COMMON[*]} ${TLS[*]}")
# Cluster: the plain throughput rows with the clients spread over two nodes
# (client i on node i mod 2: senders and observer on both), and the plain
# latency row with the 8 senders on n1 and the 92 others on n2, so that
# every line but the senders' own copies crosses Redis. {N1} and {N2} are
# the nodes' addresses, filled in per run.
for n in 100 1000; do
    MATRIX+=("cluster-throughput-$n|cluster||throughput --clients $n --senders 8 --window 64 --line-bytes 64 ${COMMON[*]} --addrs {N1},{N2}")
done
MATRIX+=("cluster-latency-100|cluster||latency --clients 100 --senders 8 --rate 2000 --line-bytes 64 ${COMMON[*]} --sender-addr {N1} --addr {N2}")

# servers_for CLASS: the servers of this run that take part in CLASS rows.
servers_for() {
    local s out=
    for s in $SERVERS; do
        case $1:$s in
        plain:natter | plain:floor | plain:ref | plain:ncat | plain:natter-old) out="$out $s" ;;
        rooms:natter | tls:ncat-ssl | tls:natter-tls | cluster:natter-cluster) out="$out $s" ;;
        esac
    done
    echo "$out"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if python3 -c "import sys; sys.exit(0 if float('${LOAD_START%% *}') > 0.5 else 1)"; then
    log "warning: the machine is busy (load average $LOAD_START); other processes on"
    log "CPU $SERVER_CPU or $GEN_CPU distort every number (compare server_cpu_util with server_core_busy)"
fi
START=$(date +%s)
for run in $(seq "$RUNS"); do
    for entry in "${MATRIX[@]}"; do
        IFS='|' read -r key class extra args <<<"$entry"
        runners=$(servers_for "$class")
        [[ -n $runners ]] || continue
        record_cmd "$key" "$extra" "$args"
        # shellcheck disable=SC2206 # server arguments are a word list on purpose
        SERVER_ARGS=($extra)
        for server in $runners; do
            # shellcheck disable=SC2086 # args are word lists on purpose
            run_one "$server" "$key" "$run" $args
        done
    done
done
SERVER_ARGS=()
ELAPSED=$(($(date +%s) - START))

# ------------------------------------------------------------------ machine
MACHINE=$TMP/machine.txt
{
    echo "nproc: $(nproc)"
    echo "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)"
    echo "kernel: $(uname -sr)"
    echo "rustc: $(rustc --version)"
    if has_server ref; then echo "go: $(go version)"; fi
    if has_server ncat || has_server ncat-ssl; then echo "ncat: $(ncat --version 2>&1 | head -n 1)"; fi
    if has_server ncat-ssl || has_server natter-tls; then
        echo "openssl: $(openssl version 2>&1)"
        echo "TLS certificate: $(openssl x509 -in "$CERT" -noout -text 2>/dev/null |
            sed -n 's/^ *\(Public Key Algorithm\|NIST CURVE\|ASN1 OID\): *//p' | paste -sd' ')"
    fi
    if has_server natter-old; then echo "natter-old: $OLD_NATTER"; fi
    if has_server natter-cluster; then echo "redis-server: $(redis-server --version 2>&1 | head -n 1)"; fi
    echo "loadavg at the start: $LOAD_START"
    echo "loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$MACHINE"
for s in $SERVERS; do
    # One line per process (a cluster has three).
    server_cmd "$s" | while IFS= read -r line; do
        printf '%s\t%s\n' "$s" "$line"
    done
done >"$TMP/server-commands.txt"

# What the report needs besides the raw results, so that REPORT_FROM can
# write it again later.
{
    for v in QUICK RUNS DURATION WARMUP IDLE_N ROOMS_IDLE TLS_IDLE_N HANDSHAKES_N \
        SERVER_CPU GEN_CPU SERVERS ELAPSED; do
        printf '%s=%q\n' "$v" "${!v}"
    done
} >"$TMP/settings.sh"
report

log "done in ${ELAPSED}s"
