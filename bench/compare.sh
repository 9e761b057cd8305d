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

mkdir -p "$(dirname "$OUT_MD")" "$(dirname "$OUT_SVG")"
NATTER_ANALYSIS=$ROOT/bench/analysis.md REF_SRC=$REF_SRC \
    python3 - "$RAW" "$MACHINE" "$COMMANDS" "$TMP/server-commands.txt" "$OUT_MD" "$OUT_SVG" \
    "$QUICK" "$RUNS" "$DURATION" "$WARMUP" "$IDLE_N" "$SERVERS" "$ELAPSED" "$SERVER_CPU" "$GEN_CPU" \
    "$ROOT" "$ROOMS_IDLE" "$TLS_IDLE_N" "$HANDSHAKES_N" <<'PYEOF'
import json, os, sys, statistics, collections, html

(raw, machine, commands, server_cmds, out_md, out_svg, quick, runs, duration, warmup,
 idle_n, servers, elapsed, server_cpu, gen_cpu, root, rooms_idle, tls_idle_n,
 handshakes_n) = sys.argv[1:20]
servers = servers.split()
quick = quick == "1"

results = collections.defaultdict(list)  # (server, key) -> [json]
for f in sorted(os.listdir(raw)):
    if not f.endswith(".json"):
        continue
    server, key, run = f[:-5].split("__")
    try:
        d = json.loads(open(os.path.join(raw, f)).read())
    except ValueError as e:
        d = {"status": f"unreadable result: {e}"}
    results[(server, key)].append(d)


def get(d, path):
    for p in path.split("."):
        if not isinstance(d, dict) or d.get(p) is None:
            return None
        d = d[p]
    return d


def med(server, key, path):
    vals = [get(d, path) for d in results.get((server, key), [])]
    vals = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return statistics.median(vals) if vals else None


def anytrue(server, key, path):
    vals = [get(d, path) for d in results.get((server, key), [])]
    vals = [v for v in vals if isinstance(v, bool)]
    return (sum(vals), len(vals)) if vals else None


def statuses(server, key):
    c = collections.Counter(d.get("status", "?") for d in results.get((server, key), []))
    if not c:
        return "not run"
    return "; ".join(s if n == 1 and len(c) == 1 else f"{s} (x{n})" for s, n in c.most_common())


def fnum(v, unit="", digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}{unit}"
    return f"{v:,.{digits}f}{unit}"


def fmib(v):
    return "–" if v is None else f"{v / 2**20:.1f} MiB"


def fus(v):
    if v is None:
        return "–"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"


def fbool(x):
    if x is None:
        return "–"
    n, total = x
    return "yes" if n == total else ("no" if n == 0 else f"{n}/{total}")


NAMES = {"natter": "natter", "floor": "floor", "ref": "Go reference", "ncat": "ncat --chat",
         "natter-old": "natter (old binary)", "ncat-ssl": "ncat --chat --ssl", "natter-tls": "natter (TLS)",
         "natter-cluster": "natter cluster (2 nodes, Redis)"}
PEERS = [s for s in servers if s in ("ref", "ncat")]
md = []
md.append("# Benchmarks: " + " vs. ".join(NAMES[s] for s in servers) + "\n")
md.append("Generated by `bench/compare.sh`" + (" with `QUICK=1` (one short run per "
          "scenario: a smoke test, not a measurement)" if quick else "") +
          f"; medians of {runs} run(s) per cell; {duration} s measured after {warmup} s of warm-up; "
          f"the whole comparison took {int(elapsed) // 60} min {int(elapsed) % 60} s.\n")
md.append("Each server is started fresh for every run on a free loopback port, pinned to "
          f"CPU {server_cpu}; the load generator (`natter-bench`, one thread, mio) is pinned "
          f"to CPU {gen_cpu}. natter runs with `--rate 0` (no per-client rate limit). "
          + ("The floor is `natter-bench floor-server`, the smallest fan-out server on natter's "
             "loop design (see [the floor](#natter-against-the-floor)). " if "floor" in servers else "") +
          "Lines are 64 bytes including the newline; 8 senders; in the throughput "
          "scenarios each sender keeps at most 64 lines unacknowledged (a dedicated "
          "observer client acknowledges). \"Delivered lines/s\" counts every line every "
          "receiving client got. \"Server CPU/line\" is the server's utime+stime over the "
          "measured interval divided by delivered lines; network processing the kernel "
          "does in softirq context may be left out of it, and `server core busy` "
          "(the whole core, from /proc/stat) shows it. A cell marked *generator-bound* "
          "measures the generator's ceiling, not the server.\n")

# ----------------------------------------------------------------- targets
def tp(server, n, qa=False):
    return med(server, f"throughput{'-quickack' if qa else ''}-{n}", "delivered_lines_per_sec")


def gb(server, key):
    x = anytrue(server, key, "generator_bound")
    return x is not None and x[0] * 2 > x[1]


targets = []
if "natter" in servers:
    peers = PEERS
    for n in (100, 1000):
        for qa in (False, True):
            key = f"throughput{'-quickack' if qa else ''}-{n}"
            nat = tp("natter", n, qa)
            best = max([v for v in (tp(p, n, qa) for p in peers) if v is not None], default=None)
            ok = None
            if nat is not None:
                ok = gb("natter", key) or (best is not None and nat >= 2 * best) or (best is None)
            targets.append((f"Throughput N={n}{' (--quickack)' if qa else ''}: ≥ 2× best peer or at the generator's ceiling",
                            f"natter {fnum(nat)} lines/s{' (generator-bound)' if gb('natter', key) else ''}; best peer {fnum(best)}"
                            + (f" ({nat / best:.2f}×)" if nat and best else ""), ok))
    if "ncat" in servers:
        for n in (10, 100, 1000):
            key = f"throughput-{n}"
            a, b = med("natter", key, "server_cpu_ns_per_line"), med("ncat", key, "server_cpu_ns_per_line")
            targets.append((f"Server CPU per delivered line, N={n}: no higher than ncat's",
                            f"natter {fnum(a, ' ns', 1)}, ncat {fnum(b, ' ns', 1)}",
                            None if a is None or b is None else a <= b))
    r = med("natter", "throughput-1000", "server_peak_rss_bytes")
    targets.append(("Peak RSS in the N=1000 throughput run ≤ 16 MB", fmib(r),
                    None if r is None else r <= 16_000_000))
    p99, p999 = med("natter", "latency-100", "latency_us.p99"), med("natter", "latency-100", "latency_us.p999")
    targets.append(("Latency at 2,000 lines/s, N=100: p99 < 1 ms and p99.9 < 2 ms",
                    f"p99 {fus(p99)}, p99.9 {fus(p999)}",
                    None if p99 is None or p999 is None else (p99 < 1000 and p999 < 2000)))
    p99 = med("natter", "latency-1000", "latency_us.p99")
    targets.append(("Latency at 500 lines/s, N=1000: p99 < 10 ms", f"p99 {fus(p99)}",
                    None if p99 is None else p99 < 10000))
    per = med("natter", f"idle-{idle_n}", "server_rss_per_client_bytes")
    targets.append((f"RSS per idle client ≤ 512 bytes (at {int(idle_n):,} clients"
                    + ("; the target is stated for 10,000" if int(idle_n) != 10000 else "") + ")",
                    fnum(per, " bytes", 1), None if per is None else per <= 512))
    slow, base = med("natter", "slow-reader-100", "delivered_lines_per_sec"), tp("natter", 100)
    srss = med("natter", "slow-reader-100", "server_peak_rss_bytes")
    ok = None
    if slow is not None and base and srss is not None:
        ok = slow >= 0.9 * base and srss < 32 * 2**20
    targets.append(("Slow reader, N=100: healthy receivers keep ≥ 90% of their throughput; peak RSS < 32 MiB",
                    f"{fnum(slow)} vs {fnum(base)} lines/s without the slow reader"
                    + (f" ({slow / base:.0%})" if slow and base else "") + f"; peak RSS {fmib(srss)}", ok))
    md.append("## natter's targets\n")
    md.append("| target | result | met |\n|---|---|---|")
    for t, res, ok in targets:
        md.append(f"| {t} | {res} | {'–' if ok is None else ('yes' if ok else '**no**')} |")
    md.append("")

# ------------------------------------------------------------------- tables
def table(title, keys, cols, note=None):
    """A table of `cols` for every server that ran one of `keys` (none: no table)."""
    rows = [(key, n, s) for key, n in keys for s in servers if (s, key) in results]
    if not rows:
        return
    md.append(f"## {title}\n")
    if note:
        md.append(note + "\n")
    md.append("| server | N | " + " | ".join(c[0] for c in cols) + " | status |")
    md.append("|---|---:|" + "---:|" * len(cols) + "---|")
    for key, n, s in rows:
        cells = [f(s, key) for _, f in cols]
        md.append(f"| {NAMES[s]} | {n:,} | " + " | ".join(cells) + f" | {statuses(s, key)} |")
    md.append("")


def c_tp(s, k):
    v = med(s, k, "delivered_lines_per_sec")
    return fnum(v) + (" *generator-bound*" if v is not None and gb(s, k) else "")


tcols = [
    ("delivered lines/s", c_tp),
    ("lost", lambda s, k: fnum(med(s, k, "lost"))),
    ("dup / order / malformed", lambda s, k: " / ".join(fnum(med(s, k, x)) for x in ("duplicates", "order_violations", "malformed_lines"))),
    ("latency p50 / p99", lambda s, k: f"{fus(med(s, k, 'latency_us.p50'))} / {fus(med(s, k, 'latency_us.p99'))}"),
    ("server CPU/line", lambda s, k: fnum(med(s, k, "server_cpu_ns_per_line"), " ns", 1)),
    ("server CPU util", lambda s, k: fnum(med(s, k, "server_cpu_util"), "", 2)),
    ("server core busy", lambda s, k: fnum(med(s, k, "server_core_busy"), "", 2)),
    ("generator core busy", lambda s, k: fnum(med(s, k, "generator_core_busy"), "", 2)),
    ("peak RSS", lambda s, k: fmib(med(s, k, "server_peak_rss_bytes"))),
]
table("Throughput", [(f"throughput-{n}", n) for n in (10, 100, 1000)], tcols,
      "8 senders, window 64, 64-byte lines; latency here is queueing behind the window, from actual send time.")
table("Throughput with --quickack", [(f"throughput-quickack-{n}", n) for n in (10, 100, 1000)], tcols,
      "The same with TCP_QUICKACK set on the generator's sockets after every read: servers that "
      "do not set TCP_NODELAY otherwise wait on the generator's delayed ACKs.")

lcols = [
    ("rate (lines/s)", lambda s, k: fnum(med(s, k, "rate_lines_per_sec"))),
    ("delivered lines/s", lambda s, k: fnum(med(s, k, "delivered_lines_per_sec"))),
    ("p50", lambda s, k: fus(med(s, k, "latency_us.p50"))),
    ("p99", lambda s, k: fus(med(s, k, "latency_us.p99"))),
    ("p99.9", lambda s, k: fus(med(s, k, "latency_us.p999"))),
    ("max", lambda s, k: fus(med(s, k, "latency_us.max"))),
    ("generator send lag p99", lambda s, k: fus(med(s, k, "send_lag_us.p99"))),
    ("lost", lambda s, k: fnum(med(s, k, "lost"))),
    ("server core busy", lambda s, k: fnum(med(s, k, "server_core_busy"), "", 2)),
]
table("Latency", [("latency-100", 100), ("latency-1000", 1000)], lcols,
      "Lines sent at a fixed total rate scheduled by the clock (no coordinated omission); latency "
      "from each line's intended send time to its arrival at every receiving client's socket "
      "(kernel receive timestamp, so the generator's own reading delay is not counted). "
      "\"Generator send lag\" is how late the generator itself queued lines: when it is large, part "
      "of the latency is the generator's.")

icols = [
    ("connected", lambda s, k: fnum(med(s, k, "connected_at_end"))),
    ("RSS before", lambda s, k: fmib(med(s, k, "server_rss_before_bytes"))),
    ("RSS connected", lambda s, k: fmib(med(s, k, "server_rss_connected_bytes"))),
    ("RSS per client", lambda s, k: fnum(med(s, k, "server_rss_per_client_bytes"), " B", 0)),
    ("settled", lambda s, k: fbool(anytrue(s, k, "settled"))),
    ("notice lines read", lambda s, k: fnum(med(s, k, "notice_lines"))),
]
table("Idle connections", [(f"idle-{idle_n}", int(idle_n))], icols,
      "Open the connections (8 in flight at most, each counted once the server greeted it), read "
      "every socket until nothing arrived for 1.5 s (all the \"has arrived\" notices), then "
      "(RSS connected − RSS before) / connected clients.")

scols = [
    ("healthy delivered lines/s", c_tp),
    ("vs. throughput N=100", lambda s, k: (lambda a, b: "–" if a is None or not b else f"{a / b:.0%}")(
        med(s, k, "delivered_lines_per_sec"), tp(s, 100))),
    ("lost", lambda s, k: fnum(med(s, k, "lost"))),
    ("longest gap", lambda s, k: fnum(med(s, k, "longest_delivery_gap_s"), " s", 2)),
    ("peak RSS", lambda s, k: fmib(med(s, k, "server_peak_rss_bytes"))),
    ("slow client disconnected", lambda s, k: fbool(anytrue(s, k, "slow_client_disconnected"))),
]
table("Slow reader", [("slow-reader-100", 100)], scols,
      "The N=100 throughput scenario plus one client that never reads (SO_RCVBUF 4 KiB).")

# ------------------------------------------------------- natter vs. the floor
def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def fx(r):
    return "–" if r is None else f"{r:.2f}×"


def rcell(a, b, f):
    """natter/floor (or new/old) ratio with both medians."""
    return f"{fx(ratio(a, b))} ({f(a)} / {f(b)})"


def fmlines(v):
    return "–" if v is None else f"{v / 1e6:.2f} M"


def fns(v):
    return fnum(v, " ns", 0)


if "natter" in servers and "floor" in servers:
    md.append("## natter against the floor\n")
    md.append("The floor is `natter-bench floor-server`, started like the other servers in the same "
              "run: the smallest fan-out server on natter's loop design (one thread, one "
              "`mio::Poll`, edge-triggered sockets with TCP_NODELAY, a one-line greeting, then per "
              "turn one write of the turn's bytes to every client, the sender included, continued "
              "until the socket would block). It does nothing else: no names, notices, commands, "
              "framing, rate limits or memory caps, no slow-client handling. Each cell is natter's "
              "median divided by the floor's (natter / floor in brackets). Throughput: above 1× "
              "is better; CPU and latency: below 1× is better. CPU per delivered line is given for "
              "the throughput scenario (lines batched by the window) and for the latency scenario "
              "(fixed rate, mostly one line per write). The goal is natter within 1.25× of the "
              "floor's p99 latency and CPU per delivered line (both scenarios) at N = 100 and "
              "N = 1,000.\n")
    md.append("| N | delivered lines/s (throughput) | CPU/line (throughput) | CPU/line (latency) "
              "| latency p50 | p99 | p99.9 | goal met |")
    md.append("|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in (100, 1000):
        tk, lk = f"throughput-{n}", f"latency-{n}"
        m = lambda s, k, f: med(s, k, f)
        tpn, tpf = m("natter", tk, "delivered_lines_per_sec"), m("floor", tk, "delivered_lines_per_sec")
        both_gb = gb("natter", tk) and gb("floor", tk)
        cpu_t = (m("natter", tk, "server_cpu_ns_per_line"), m("floor", tk, "server_cpu_ns_per_line"))
        cpu_l = (m("natter", lk, "server_cpu_ns_per_line"), m("floor", lk, "server_cpu_ns_per_line"))
        lat = {q: (m("natter", lk, f"latency_us.{q}"), m("floor", lk, f"latency_us.{q}"))
               for q in ("p50", "p99", "p999")}
        worst = [ratio(*lat["p99"]), ratio(*cpu_t), ratio(*cpu_l)]
        goal = "–" if None in worst else ("yes" if max(worst) <= 1.25 else
                                          f"**no** (worst {max(worst):.2f}×)")
        md.append(f"| {n:,} | {rcell(tpn, tpf, fmlines)}"
                  + (" *both generator-bound*" if both_gb else "")
                  + f" | {rcell(*cpu_t, fns)} | {rcell(*cpu_l, fns)} | "
                  + " | ".join(rcell(*lat[q], fus) for q in ("p50", "p99", "p999"))
                  + f" | {goal} |")
    md.append("")

# ------------------------------------------------------- new vs. old binary
if "natter" in servers and "natter-old" in servers:
    md.append("## natter against the old binary\n")
    md.append("`OLD_NATTER` named a second natter binary, run as `natter-old` in the same run. A "
              "change that is meant to keep performance should keep throughput and CPU per "
              "delivered line within 5% of the old binary's at N = 100 and N = 1,000, and idle "
              "memory per client no higher. Ratios are new / old medians.\n")
    md.append("| check | N | new | old | new / old | met |")
    md.append("|---|---:|---:|---:|---:|---|")

    def oldrow(what, key, field, f, n, ok):
        a, b = med("natter", key, field), med("natter-old", key, field)
        r = ratio(a, b)
        met = "–" if r is None else ("yes" if ok(r) else "**no**")
        md.append(f"| {what} | {n:,} | {f(a)} | {f(b)} | {fx(r)} | {met} |")

    for n in (100, 1000):
        key = f"throughput-{n}"
        note = " *(both generator-bound)*" if gb("natter", key) and gb("natter-old", key) else ""
        oldrow("throughput (delivered lines/s)" + note, key, "delivered_lines_per_sec", fmlines, n,
               lambda r: 0.95 <= r <= 1.05)
        oldrow("CPU per delivered line (throughput)", key, "server_cpu_ns_per_line", fns, n,
               lambda r: 0.95 <= r <= 1.05)
    oldrow("RSS per idle client", f"idle-{idle_n}", "server_rss_per_client_bytes",
           lambda v: fnum(v, " B", 0), int(idle_n), lambda r: r <= 1.0)
    md.append("")

# ------------------------------------------------------------------- rooms
def ratio_row(what, a, b, f, target, ok):
    r = ratio(a, b)
    met = "–" if r is None or ok is None else ("yes" if ok(r) else "**no**")
    md.append(f"| {what} | {f(a)} | {f(b)} | {fx(r)} | {target} | {met} |")


rk, ik = "rooms-throughput-1000", f"idle-{idle_n}"
rik = f"rooms-idle-{idle_n}"
if "natter" in servers and (("natter", rk) in results or ("natter", rik) in results):
    md.append("## Rooms (natter)\n")
    md.append("Only natter has rooms; these rows run on it alone. With `--rooms R` client i joins "
              "`#r(i mod R)` and counts as connected at the server's `*** <n> here:` answer; sender j "
              "is client j, so the 200 senders are two to a room, and the first non-sender of each "
              "room acknowledges its room's lines (a window per sender, as in one room). A line is "
              "expected at every member of its room. The one-room figures are the plain rows of the "
              "same run (1,000 clients, 8 senders, all in the default room). Delivered lines/s and "
              "CPU per delivered line should match the one-room figure within 10%.\n")
    md.append("| row | rooms | one room | rooms / one room | target | met |")
    md.append("|---|---:|---:|---:|---|---|")
    gbn = " *(generator-bound)*" if gb("natter", rk) else ""
    ratio_row("1,000 clients in 100 rooms of 10: delivered lines/s" + gbn,
              med("natter", rk, "delivered_lines_per_sec"), tp("natter", 1000), fmlines,
              "≥ 0.90×", lambda r: r >= 0.9 or gb("natter", rk))
    ratio_row("1,000 clients in 100 rooms of 10: CPU per delivered line",
              med("natter", rk, "server_cpu_ns_per_line"),
              med("natter", "throughput-1000", "server_cpu_ns_per_line"), fns, "≤ 1.10×",
              lambda r: r <= 1.1)
    ratio_row("…the same against one room of 10 (the N = 10 row): CPU per delivered line",
              med("natter", rk, "server_cpu_ns_per_line"),
              med("natter", "throughput-10", "server_cpu_ns_per_line"), fns, "–", None)
    ratio_row("1,000 clients in 100 rooms of 10: server core busy",
              med("natter", rk, "server_core_busy"), med("natter", "throughput-1000", "server_core_busy"),
              lambda v: fnum(v, "", 2), "–", None)
    ratio_row(f"{int(idle_n):,} idle clients in {int(rooms_idle):,} rooms: RSS per client",
              med("natter", rik, "server_rss_per_client_bytes"), med("natter", ik, "server_rss_per_client_bytes"),
              lambda v: fnum(v, " B", 0), "–", None)
    md.append("")
    table("Rooms: throughput", [(rk, 1000)], tcols + [
        ("lines across rooms", lambda s, k: fnum(med(s, k, "cross_room_lines")))],
        "1,000 clients in 100 rooms of 10, 200 senders (2 per room), window 64, 64-byte lines.")
    table("Rooms: idle connections", [(rik, int(idle_n))], icols,
          f"{int(idle_n):,} clients spread over {int(rooms_idle):,} rooms (ten to a room), each counted "
          "once in its room; then as the one-room idle row.")

# --------------------------------------------------------------------- TLS
TLS_SERVERS = [s for s in servers if s in ("ncat-ssl", "natter-tls")]
if TLS_SERVERS:
    md.append("## TLS\n")
    md.append("TLS peers: `ncat --chat --ssl` (OpenSSL) and natter with `--tls-listen` (rustls with "
              "*ring*), both with the same ECDSA P-256 self-signed certificate made at run time by "
              "openssl; natter also listens in plain on another port, unused. Every generator client "
              "speaks TLS (`natter-bench --tls --tls-ca CERT`: rustls with *ring*, TLS 1.3 negotiated "
              "when the server offers it, no session resumption) and counts as connected after the "
              "handshake and the greeting. The scenarios are the plain ones; their CPU per delivered "
              "line includes the server's encryption.\n")
    if "natter-tls" not in servers:
        md.append("*natter-tls was not run (this natter has no `--tls-listen` yet): its cells are "
                  "empty and its targets unmet until it does.*\n")
    md.append("| target | result | met |\n|---|---|---|")
    for n in (100, 1000):
        k = f"tls-throughput-{n}"
        nt, nc = med("natter-tls", k, "delivered_lines_per_sec"), med("ncat-ssl", k, "delivered_lines_per_sec")
        ct, cc = med("natter-tls", k, "server_cpu_ns_per_line"), med("ncat-ssl", k, "server_cpu_ns_per_line")
        cp = med("natter", f"throughput-{n}", "server_cpu_ns_per_line")
        g = gb("natter-tls", k)
        ok = None if nt is None or ct is None or nc is None or cc is None else \
            ((nt >= 2 * nc or g) and ct <= cc / 2)
        md.append(f"| TLS throughput N={n:,}: ≥ 2× ncat --chat --ssl (or at the generator's ceiling), "
                  f"with at most half its CPU per delivered line | natter-tls {fnum(nt)} lines/s"
                  f"{' (generator-bound)' if g else ''}, {fns(ct)}/line; ncat-ssl {fnum(nc)} lines/s, "
                  f"{fns(cc)}/line ({fx(ratio(nt, nc))} lines/s, {fx(ratio(ct, cc))} CPU) | "
                  f"{'–' if ok is None else ('yes' if ok else '**no**')} |")
        ok = None if ct is None or cp is None else ct <= 2 * cp
        md.append(f"| TLS CPU per delivered line N={n:,}: ≤ 2× natter's plain figure in the same run "
                  f"| natter-tls {fns(ct)}, natter {fns(cp)} ({fx(ratio(ct, cp))}) | "
                  f"{'–' if ok is None else ('yes' if ok else '**no**')} |")
    per = med("natter-tls", f"tls-idle-{tls_idle_n}", "server_rss_per_client_bytes")
    md.append(f"| Idle TLS memory ≤ 4 KiB per client (at {int(tls_idle_n):,} clients) | "
              f"{fnum(per, ' bytes', 1)} | {'–' if per is None else ('yes' if per <= 4096 else '**no**')} |")
    md.append("")
    table("TLS throughput", [(f"tls-throughput-{n}", n) for n in (100, 1000)], tcols,
          "As the plain throughput rows (8 senders, window 64, 64-byte lines), every client over TLS.")
    table("TLS latency", [("tls-latency-100", 100), ("tls-latency-1000", 1000)], lcols,
          "As the plain latency rows, every client over TLS; a line arrives with the read that "
          "brought its record (kernel receive timestamp).")
    table("TLS idle connections", [(f"tls-idle-{tls_idle_n}", int(tls_idle_n))], icols,
          "As the plain idle row, every connection a TLS one (handshake done and greeted).")
    hcols = [
        ("handshakes/s", lambda s, k: fnum(med(s, k, "handshakes_per_sec"))
         + (" *generator-bound*" if gb(s, k) else "")),
        ("connect p50 / p99", lambda s, k: f"{fus(med(s, k, 'connect_us.p50'))} / {fus(med(s, k, 'connect_us.p99'))}"),
        ("server CPU util", lambda s, k: fnum(med(s, k, "server_cpu_util"), "", 2)),
        ("server core busy", lambda s, k: fnum(med(s, k, "server_core_busy"), "", 2)),
        ("server CPU/handshake", lambda s, k: fnum(med(s, k, "server_cpu_us_per_handshake"), " µs", 1)),
        ("notices/handshake", lambda s, k: fnum(ratio(med(s, k, "notice_lines"), med(s, k, "handshakes")), "", 1)),
        ("generator core busy", lambda s, k: fnum(med(s, k, "generator_core_busy"), "", 2)),
    ]
    table("TLS handshakes", [(f"tls-handshakes-{handshakes_n}", int(handshakes_n))], hcols,
          "`natter-bench handshakes --tls`: full handshakes (ECDSA P-256 certificate, no resumption), "
          "64 in flight, each connection hung up by the generator once greeted (close_notify, then "
          "FIN). Handshakes/s from the first connect to the last connection made; server CPU "
          "(its process, and its whole core) over the run; \"notices\" are the arrival and "
          "departure lines the server sent to the connections in flight.")
    bcols = [
        ("made", lambda s, k: f"{fnum(med(s, k, 'burst_connected'))} / {fnum(med(s, k, 'burst_clients'))}"),
        ("burst lasted", lambda s, k: fnum(med(s, k, "burst_duration_s"), " s", 3)),
        ("during: p50", lambda s, k: fus(med(s, k, "latency_burst_us.p50"))),
        ("p99", lambda s, k: fus(med(s, k, "latency_burst_us.p99"))),
        ("p99.9", lambda s, k: fus(med(s, k, "latency_burst_us.p999"))),
        ("lines", lambda s, k: fnum(med(s, k, "latency_burst_us.count"))),
        ("calm: p50", lambda s, k: fus(med(s, k, "latency_calm_us.p50"))),
        ("p99", lambda s, k: fus(med(s, k, "latency_calm_us.p99"))),
        ("lost", lambda s, k: fnum(med(s, k, "lost"))),
    ]
    table("TLS latency during a burst of 200 handshakes", [("tls-burst-100", 100)], bcols,
          "The TLS latency row at N = 100 and 2,000 lines/s; halfway through the measured interval "
          "200 more TLS clients connect at once and hang up once greeted. \"During\" is the latency "
          "of the lines sent from the burst's start until its last connection was made (deliveries "
          "to the 100 clients; \"lines\" counts them), \"calm\" that of all other measured lines.")

# ----------------------------------------------------------------- cluster
CL = "natter-cluster"
CLUSTER_KEYS = [("cluster-throughput-100", 100), ("cluster-throughput-1000", 1000),
                ("cluster-latency-100", 100)]
# The one-node row of the same run that each cluster row is set against.
ONE_NODE = {"cluster-throughput-100": "throughput-100", "cluster-throughput-1000": "throughput-1000",
            "cluster-latency-100": "latency-100"}


def per_run(server, key, f):
    """Median over the runs of f(run's JSON object); runs where f gives None are left out."""
    vals = []
    for d in results.get((server, key), []):
        try:
            v = f(d)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            v = None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals.append(v)
    return statistics.median(vals) if vals else None


def proc(d, label):
    """One server process's entry (server_pids) of a run, by its label."""
    for p in d.get("server_pids") or []:
        if p.get("label") == label:
            return p
    raise KeyError(label)


def pmed(key, label, field):
    return per_run(CL, key, lambda d: proc(d, label)[field])


def nodes_per_line(d):
    """Both nodes' CPU per delivered line (ns), one run."""
    return proc(d, "n1")["cpu_ns_per_line"] + proc(d, "n2")["cpu_ns_per_line"]


def redis_per_said(d):
    """Redis's CPU per line said (ns), by its own count (µs resolution) while the lines were sent,
    less what it spends with nothing to relay."""
    run = d["redis_run"]
    busy = run["cpu_s"] - d.get("redis_idle_cpu_util", 0) * run["seconds"]
    return max(busy, 0) * 1e9 / d["lines_sent"]


def publish_per_said(d):
    """PUBLISH messages per line said, over the generator's whole run."""
    return d["redis_run"]["publish_calls"] / d["lines_sent"]


def met(ok):
    return "–" if ok is None else ("yes" if ok else "**no**")


def cluster_targets():
    md.append("| target | result | met |\n|---|---|---|")
    for n in (100, 1000):
        ck, ok_ = f"cluster-throughput-{n}", f"throughput-{n}"
        two, one = med(CL, ck, "delivered_lines_per_sec"), med("natter", ok_, "delivered_lines_per_sec")
        r = ratio(two, one)
        g2 = " (generator-bound)" if gb(CL, ck) else ""
        g1 = " (generator-bound)" if gb("natter", ok_) else ""
        md.append(f"| Two nodes, N={n:,}: delivered lines/s ≥ 80% of one node's | two nodes {fnum(two)}{g2}, "
                  f"one node {fnum(one)}{g1}" + ("" if r is None else f" ({r:.0%})") +
                  f" | {met(None if r is None else r >= 0.8)} |")
    cross = med(CL, "cluster-latency-100", "latency_cross_addr_us.p99")
    one = med("natter", "latency-100", "latency_us.p99")
    diff = None if cross is None or one is None else cross - one
    md.append("| Latency at 2,000 lines/s, N=100: cross-node p99 ≤ one node's p99 + 1 ms | "
              f"cross-node {fus(cross)}, one node {fus(one)}"
              + ("" if diff is None else f" ({'+' if diff >= 0 else '−'}{fus(abs(diff))})")
              + f" | {met(None if diff is None else diff <= 1000)} |")
    md.append("")


def cluster_table():
    md.append("| row | N | delivered lines/s | lost | CPU/line n1 | n2 | Redis | total | core busy "
              "| latency p50 / p99 | cross-node p50 / p99 | status |")
    md.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for key, n in CLUSTER_KEYS:
        one = ONE_NODE[key]
        for s, k, what in ((CL, key, key), ("natter", one, f"{one} (one node)")):
            if (s, k) not in results:
                continue
            lat = f"{fus(med(s, k, 'latency_us.p50'))} / {fus(med(s, k, 'latency_us.p99'))}"
            if s == CL:
                cpu = [pmed(k, x, "cpu_ns_per_line") for x in ("n1", "n2", "redis")]
                cross = (f"{fus(med(s, k, 'latency_cross_addr_us.p50'))} / "
                         f"{fus(med(s, k, 'latency_cross_addr_us.p99'))}")
            else:
                cpu, cross = [med(s, k, "server_cpu_ns_per_line"), None, None], "–"
            total = med(s, k, "server_cpu_ns_per_line")
            md.append(f"| {what} | {n:,} | {c_tp(s, k)} | {fnum(med(s, k, 'lost'))} | "
                      + " | ".join(fnum(v, " ns", 1) for v in cpu)
                      + f" | {fnum(total, ' ns', 1)} | {fnum(med(s, k, 'server_core_busy'), '', 2)} | "
                      f"{lat} | {cross} | {statuses(s, k)} |")
    md.append("")


def redis_table():
    md.append("| row | lines said/s | lines per PUBLISH | Redis CPU per line said | per PUBLISH "
              "| Redis CPU util | idle CPU util | Redis bytes out per line said |")
    md.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, _ in CLUSTER_KEYS:
        if (CL, key) not in results:
            continue
        q = per_run(CL, key, publish_per_said)
        r = per_run(CL, key, redis_per_said)
        m = per_run(CL, key, lambda d: redis_per_said(d) / publish_per_said(d))
        out = per_run(CL, key, lambda d: d["redis_run"]["net_output_bytes"] / d["lines_sent"])
        md.append(f"| {key} | {fnum(med(CL, key, 'sent_lines_per_sec'))} | "
                  f"{fnum(None if not q else 1 / q, '', 1)} | {fnum(r, ' ns', 0)} | {fnum(m, ' ns', 0)} | "
                  f"{fnum(pmed(key, 'redis', 'cpu_util'), '', 3)} | "
                  f"{fnum(med(CL, key, 'redis_idle_cpu_util'), '', 4)} | {fnum(out, ' B', 0)} |")
    md.append("")


def fit_nodes():
    """d (ns per delivery by a node) and r (ns per line said, per node) from the two throughput
    rows: both nodes' CPU per delivered line is d + 2r/N at N clients, as every node handles
    every line said once and writes it to each of its own N/2 clients."""
    s100 = per_run(CL, "cluster-throughput-100", nodes_per_line)
    s1000 = per_run(CL, "cluster-throughput-1000", nodes_per_line)
    if s100 is None or s1000 is None:
        return None
    r = (s100 - s1000) / (2 / 100 - 2 / 1000)
    if r < 0:
        # Noise larger than the overhead: no per-line term to be seen.
        return s100, s1000, s1000, 0.0, False
    return s100, s1000, s1000 - 2 * r / 1000, r, True


def redis_at(key, nodes):
    """Redis's CPU per line said (ns) with `nodes` nodes, from the row `key` at two: its CPU
    per PUBLISH grows as one read plus one write per subscribed node, (1 + nodes) / 3, and
    each node's turns carry 2/nodes of the lines they did, so PUBLISHes per line said grow
    as nodes / 2 (at most one per line). Returns (per PUBLISH at 2, lines per PUBLISH at 2,
    per line said at `nodes`)."""
    r2 = per_run(CL, key, redis_per_said)
    q2 = per_run(CL, key, publish_per_said)
    if r2 is None or not q2:
        return None
    m2 = r2 / q2
    return m2, 1 / q2, m2 * (1 + nodes) / 3 * min(1.0, q2 * nodes / 2)


def charged_share(key):
    """The share of the busy server core that the cluster's three processes were charged for."""
    return per_run(CL, key, lambda d: sum(p["cpu_util"] for p in d["server_pids"]) / d["server_core_busy"])


def projection(nodes=8, clients=1000):
    key = "cluster-throughput-1000"
    fit, red = fit_nodes(), redis_at(key, nodes)
    if fit is None or red is None:
        return None
    s100, s1000, d, r, fitted = fit
    m2, lpp, r8 = red
    if d <= 0 or r8 <= 0:
        return None
    l_nodes, l_redis = 1e9 / (clients / nodes * d + r), 1e9 / r8
    lim = "Redis limits" if l_redis < l_nodes else "the nodes limit"
    cross = nodes * (r8 - r) / d if d > 0 and r8 > r else 0
    one = med("natter", "throughput-1000", "server_cpu_ns_per_line")
    share = charged_share(key)
    p = [f"**Projection to {nodes} nodes on {nodes} cores.** The model: a node's CPU per second is "
         "*d* × (deliveries to its own clients per second) + *r* × (lines said in the whole cluster "
         "per second), since every node handles every line said once, from its client or from "
         "Redis, and writes it to each of its clients. Both nodes' CPU per delivered line is then "
         f"*d* + 2*r*/N: {fns(s100)} at N = 100 and {fns(s1000)} at N = 1,000, so "
         + (f"*d* = {fnum(d, ' ns', 1)} per delivery and *r* = {fns(r)} per line said"
            if fitted else f"no per-line overhead shows above the noise: *r* = 0, *d* = {fnum(d, ' ns', 1)}")
         + (f" (one node alone spent {fnum(one, ' ns', 1)} per delivered line at N = 1,000: sharing "
            "a core, the nodes' turns are shorter and carry fewer lines per write, so this *d* errs "
            "high for nodes with a core each)" if one else "")
         + ". Redis, one thread, reads each PUBLISH once and writes it to every subscribed node: "
         f"at two nodes it spent {fns(m2)} per PUBLISH, with {lpp:,.1f} lines said per PUBLISH "
         f"(natter publishes once per room per turn). At {nodes} nodes a PUBLISH costs "
         f"(1 + {nodes}) / 3 as much (one read, {nodes} writes), and each node's turns carry "
         f"2/{nodes} of the lines, so there are {nodes / 2:g}× as many PUBLISHes per line (at most "
         f"one per line): {fns(r8)} per line said. Redis's one core is then full at "
         f"{fnum(l_redis)} lines said/s, however many clients listen.",
         f"With a core per node and one more for Redis (on exactly {nodes} cores, Redis's share "
         f"comes out of one node's), {clients:,} clients ({clients // nodes:,} per node): the "
         f"nodes' CPU allows {fnum(l_nodes)} lines said/s ({fmlines(l_nodes * clients)} delivered "
         f"lines/s), Redis's {fnum(l_redis)} ({fmlines(l_redis * clients)}): **{lim} first, at "
         f"about {fmlines(min(l_nodes, l_redis) * clients)} delivered lines/s**. Redis is the "
         f"limit while fewer than about {fnum(cross)} clients receive each line; with more, the "
         f"nodes are, each at {fmlines(1e9 / d) if d > 0 else '–'} deliveries/s."
         + (f" In this run the three processes were charged for {min(share, 1):.0%} of their busy "
            "core; the rest is the kernel's softirq work on loopback, switching between them, and "
            "whatever else ran there. If all of it is theirs, every limit here is "
            f"{min(share, 1):.0%} of what it says." if share else "")]
    p.append(clients_at_rate(nodes, d, r))
    p.append("A real network adds costs of its own; memory (the idle rows' RSS per client) and the "
             "load generator are left out; and a noisy machine moves these costs by tens of percent.")
    return "\n\n".join(x for x in p if x) + "\n"


def clients_at_rate(nodes, d, r):
    """How many clients `nodes` nodes hold at the latency row's rate."""
    key = "cluster-latency-100"
    n2 = pmed(key, "n2", "cpu_ns_per_line")
    rate = med(CL, key, "rate_lines_per_sec")
    share = per_run(CL, key, lambda d_: (d_["clients"] - d_["senders"]) / d_["clients"])
    red = redis_at(key, nodes)
    if n2 is None or not rate or not share or red is None:
        return None
    # n2's clients got `share` of the deliveries: its CPU per delivery of its own.
    d_low = n2 / share
    c_low = nodes * 1e9 / (rate * d_low)
    c_high = nodes * (1e9 / rate - r) / d if d > 0 else None
    return (f"Clients: at {fnum(rate)} lines said/s, as in the latency row, the receiving node spent "
            f"{fnum(d_low, ' ns', 0)} per delivery (its reading from Redis included), one write per "
            f"line per client at that load; {nodes} cores at that cost hold about {fnum(c_low)} clients "
            f"({fnum(c_low / nodes)} per node), with Redis at {rate * red[2] / 1e9:.1%} of its core. "
            "Under heavier load natter's turns carry several lines per write and the cost per delivery "
            f"falls towards the full-speed *d*, which would allow up to about {fnum(c_high)} clients at "
            "that rate: the truth for a given load lies between the two.")


def cluster_section():
    md.append("## Cluster: two nodes through Redis\n")
    md.append("Per run a fresh `redis-server` (persistence off) on a free loopback port and two natter "
              "nodes joined through it (`--cluster redis://127.0.0.1:$REDIS_PORT --node-name n1` and "
              "`n2`, `--rate 0`), all three pinned to the one server core "
              f"(CPU {server_cpu}) that a single natter gets in the other rows, and the generator to "
              f"CPU {gen_cpu}: the rows show what joining two nodes costs, not what more cores give. "
              "Throughput rows: client i connects to node i mod 2, so 4 senders and the observer are "
              "on n1, 4 senders on n2, and half of each line's deliveries cross Redis. Latency row: "
              "the 8 senders on n1 and the 92 other clients on n2, so every delivery but the senders' "
              "copies crosses Redis; *cross-node* is the latency of those alone. The one-node figures "
              "are natter's plain rows of the same run. CPU per delivered line is each process's "
              "utime+stime over the measured interval divided by every line delivered (so the "
              "columns add up to *total*); *core busy* is the shared server core's.\n")
    if "natter" not in servers:
        md.append("*natter was not run alone: the one-node figures, and so the targets, are "
                  "empty until it is (`SERVERS` with `natter`).*\n")
    cluster_targets()
    cluster_table()
    md.append("What Redis did, by its own counters (`INFO`) from the start of the warm-up to the "
              "end of the drain, divided by the lines sent meanwhile: PUBLISH calls, CPU time "
              "(getrusage, in µs; /proc's 10 ms ticks, which the table above divides, are too "
              "coarse for the few milliseconds a second Redis uses in a short run), less what it "
              "spent with nothing to relay (*idle CPU util*, its housekeeping and the nodes' "
              "pings, read over one second before the generator starts), and bytes sent. "
              "*Redis CPU util* is /proc's, over the measured interval.\n")
    redis_table()
    text = projection()
    if text:
        md.append(text)


if CL in servers and any((CL, k) in results for k, _ in CLUSTER_KEYS):
    cluster_section()

# ------------------------------------------------------------------- chart
colors = {"natter": "#1b9e77", "floor": "#999999", "ref": "#d95f02", "ncat": "#7570b3",
          "natter-old": "#66a61e"}
# The chart shows the plain throughput rows: the servers that run them.
chart_servers = [s for s in servers if s in colors]
panels = [
    ("Delivered lines/s", "throughput", "delivered_lines_per_sec", lambda v: f"{v / 1e6:.2f}M", False),
    ("Delivered lines/s, --quickack", "throughput-quickack", "delivered_lines_per_sec", lambda v: f"{v / 1e6:.2f}M", False),
    ("Server CPU ns per delivered line (log scale)", "throughput", "server_cpu_ns_per_line", lambda v: f"{v:,.0f}", True),
]
import math
ns = (10, 100, 1000)
pw, ph, top, left, gap = 300, 220, 60, 50, 40
W = left + len(panels) * (pw + gap)
H = top + ph + 80
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
       'font-family="sans-serif" font-size="11">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">'
       f'{html.escape(" vs. ".join(NAMES[s] for s in chart_servers))}: throughput scenario '
       '(8 senders, window 64, 64-byte lines)</text>']
for pi, (title, prefix, field, fmt, logscale) in enumerate(panels):
    x0 = left + pi * (pw + gap)
    vals = {(s, n): med(s, f"{prefix}-{n}", field) for s in chart_servers for n in ns}
    vmax = max([v for v in vals.values() if v], default=1) * 1.15
    lo = 1.0

    def height(v):
        if not logscale:
            return ph * v / vmax
        return ph * max(0.0, math.log10(max(v, lo) / lo)) / max(1e-9, math.log10(vmax / lo))
    svg.append(f'<text x="{x0 + pw / 2}" y="{top - 12}" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>')
    svg.append(f'<line x1="{x0}" y1="{top + ph}" x2="{x0 + pw}" y2="{top + ph}" stroke="#333"/>')
    svg.append(f'<line x1="{x0}" y1="{top}" x2="{x0}" y2="{top + ph}" stroke="#333"/>')
    gw = pw / len(ns)
    bw = (gw - 16) / max(1, len(chart_servers))
    for ni, n in enumerate(ns):
        gx = x0 + ni * gw + 8
        svg.append(f'<text x="{x0 + ni * gw + gw / 2}" y="{top + ph + 16}" text-anchor="middle">N={n:,}</text>')
        for si, s in enumerate(chart_servers):
            v = vals[(s, n)]
            bx = gx + si * bw
            if v is None:
                svg.append(f'<text x="{bx + bw / 2}" y="{top + ph - 4}" text-anchor="middle" font-size="9">n/a</text>')
                continue
            h = height(v)
            svg.append(f'<rect x="{bx:.1f}" y="{top + ph - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" fill="{colors[s]}"/>')
            svg.append(f'<text x="{bx + bw / 2:.1f}" y="{top + ph - h - 3:.1f}" text-anchor="middle" font-size="8">{fmt(v)}</text>')
            if field == "delivered_lines_per_sec" and gb(s, f"{prefix}-{n}"):
                svg.append(f'<text x="{bx + bw / 2:.1f}" y="{top + ph - h + 10:.1f}" text-anchor="middle" font-size="8" fill="white">gen</text>')
for si, s in enumerate(chart_servers):
    lx = left + si * 160
    svg.append(f'<rect x="{lx}" y="{H - 30}" width="12" height="12" fill="{colors[s]}"/>')
    svg.append(f'<text x="{lx + 16}" y="{H - 20}">{html.escape(NAMES[s])}</text>')
svg.append(f'<text x="{W - 10}" y="{H - 20}" text-anchor="end" font-size="9">medians of {runs} run(s); '
           '"gen": generator-bound</text>')
svg.append("</svg>")
open(out_svg, "w").write("\n".join(svg) + "\n")

md.append(f"![throughput chart]({os.path.relpath(out_svg, os.path.dirname(out_md))})\n")

# ------------------------------------------------------------- analysis
# Written by hand (it explains measurements, it is not one), kept beside
# the script so a re-run keeps it.
analysis = os.environ.get("NATTER_ANALYSIS", "")
if analysis and os.path.exists(analysis):
    md.append(open(analysis).read().rstrip() + "\n")

# ------------------------------------------------------------- commands
md.append("## Commands\n")
md.append("Run everything again with `bench/compare.sh` (`QUICK=1` for one short run of each "
          "scenario, `SERVERS=\"natter floor ref ncat ncat-ssl natter-tls natter-cluster\"` to choose servers, `REF_SRC` for the Go "
          "reference: the ch8/chat folder of https://github.com/adonovan/gopl.io, "
          "`OLD_NATTER=FILE` to add a second natter binary). Per run, on a free port "
          "`$PORT`, with the server's PID `$PID`"
          + ("; a cluster's on free ports `$REDIS_PORT`, `$PORT1` and `$PORT2`, with PIDs "
             "`$REDIS_PID`, `$PID1` and `$PID2`" if CL in servers else "") + ":\n")
md.append("```sh")
md.append("cargo build --release --locked            # natter")
md.append("cargo build --release --locked -p natter-bench")
if "ref" in servers:
    md.append("(cd $REF_SRC && go build -o $TMP/gopl-chat *.go)    # REF_SRC: gopl.io/ch8/chat")
for line in open(server_cmds):
    name, cmd = line.rstrip("\n").split("\t", 1)
    md.append(f"{cmd}    # {NAMES[name]}")
md.append("```\n")
md.append("```sh")
for line in open(commands):
    key, cmd = line.rstrip("\n").split("\t", 1)
    md.append(f"{cmd}")
md.append("```\n")
md.append("## Machine\n")
md.append("```")
md.append(open(machine).read().rstrip())
md.append("```\n")
md.append("Raw per-run JSON objects are kept in the temporary folder that `bench/compare.sh` "
          "prints at the end; `natter-bench --help` documents every field.\n")
open(out_md, "w").write("\n".join(md))
print(f"wrote {out_md} and {out_svg}", file=sys.stderr)
PYEOF

log "done in ${ELAPSED}s"
