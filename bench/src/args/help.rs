//! The text of `--help`: every scenario, option and output field, kept
//! apart from the parser so that both stay short enough to read.

pub const HELP: &str = "\
natter-bench: load generator for line-based TCP chat servers

USAGE:
    natter-bench <SCENARIO> --addr 127.0.0.1:PORT [OPTIONS]
    natter-bench <SCENARIO> --addrs 127.0.0.1:P1,127.0.0.1:P2 [OPTIONS]
    natter-bench floor-server --listen 127.0.0.1:PORT

SCENARIOS:
    throughput   N clients, S of them send as fast as a window of W
                 unacknowledged lines allows (a dedicated observer client
                 acknowledges); reports delivered lines/s over all receiving
                 clients, loss, duplicates, order violations, malformed lines,
                 latency percentiles, server CPU per delivered line, peak RSS
    latency      N clients, S senders, a fixed total rate (--rate) scheduled by
                 the clock (no coordinated omission); latency is measured from
                 each line's intended send time at every receiving client
    idle         open N connections, let them settle (read every socket until
                 quiet), report the server's RSS per connection
    slow-reader  throughput plus one extra client that never reads (small
                 SO_RCVBUF); reports healthy receivers' delivered lines/s, peak
                 RSS and whether the slow client was disconnected
    handshakes   open N connections (with --tls: full TLS handshakes) as
                 fast as --connect-parallel in flight allow (default 64 here),
                 each closed by the generator once greeted; reports
                 handshakes/s, the time each took, and the server's CPU busy
                 fraction and CPU per handshake over the run

FLOOR SERVER:
    floor-server the smallest fan-out server on natter's loop design (one
                 mio::Poll, edge-triggered sockets, one write per client per
                 turn, no framing, names or limits), to run any scenario
                 against in the same run as natter; see
                 `natter-bench floor-server --help`

OPTIONS:
    --addr ADDR              server address; loopback only (127.0.0.0/8, ::1),
                             numeric IP:PORT. Repeat it for the nodes of a
                             cluster: client i connects to address i mod k
                             (k addresses), so the clients, the senders and
                             the observers are spread evenly
    --addrs A,B,...          the same as --addr A --addr B ...
    --sender-addr ADDR       every sender connects to ADDR, every other
                             client to the --addr addresses (e.g. senders on
                             one node, receivers on another: cross-node
                             latency). Loopback only; not for idle and
                             handshakes, which have no senders
    --server-pid [LABEL=]PID server process for CPU (/proc/PID/stat) and RSS
                             (/proc/PID/status) readings; without it those
                             fields are null. Repeat it for every process of
                             a cluster (each node, and Redis): server_cpu_*
                             fields are then sums over all of them, RSS is
                             the first one's, and server_pids lists each
                             (LABEL, e.g. n1 or redis, is copied there)
    --clients N              connected clients, senders and observer included
                             (default 100; idle: 10000; handshakes: 1000)
    --senders S              sending clients (default 8)
    --window W               unacknowledged lines per sender (default 64)
    --rooms R                spread the clients over R rooms (default 1: all
                             stay in the server's default room). Client i
                             sends `/join #rK`, K = i mod R, once greeted and
                             counts as connected at the server's
                             `*** <n> here:` answer; sender j is client j, so
                             each room has S/R senders (rounded down or up;
                             needs S >= R) and its first non-sender observes
                             for it. Idle clients are spread the same way.
                             For servers with rooms (natter) only
    --line-bytes B           bytes per line including the newline (default 64,
                             min 29, max 16384)
    --duration SECS          measured interval (default 5)
    --warmup SECS            sending before the measured interval (default 1)
    --drain SECS             after the interval: stop sending and wait at most
                             this long for every receiver to get every line
                             (default 30; ends early when all arrived or after
                             2 s without a byte from the server)
    --rate LPS               latency: total lines/s over all senders
                             (default 2000)
    --burst N                latency: N more clients (TLS ones with --tls)
                             connect all at once during the measured interval;
                             the latency of the lines sent from then until the
                             last of them is connected is reported apart
                             (latency_burst_us, the rest latency_calm_us)
    --burst-at SECS          when the burst starts, in seconds into the
                             measured interval (default: half of --duration)
    --settle SECS            after connecting, read until no byte arrived for
                             this long (default 1.5)
    --settle-max SECS        give up settling after this long (default 120)
    --connect-timeout SECS   give up connecting after this long (default 120)
    --connect-parallel K     connects in flight at once (default 8;
                             handshakes: 64), each
                             until the server has greeted it; refused or
                             reset connects are retried after a backoff.
                             Keep it below the server's accept backlog
                             (ncat's is 10): see bench/README.md
    --quickack               set TCP_QUICKACK on the generator's sockets after
                             every read (separates delayed-ACK stalls of
                             servers without TCP_NODELAY from their speed)
    --name-first             every client first sends a name line
                             (`bench<i>`), for servers that ask for one
    --tls                    every client speaks TLS (rustls with ring, TLS 1.2
                             and 1.3, no session resumption: every handshake
                             is a full one); a client counts as connected
                             after the handshake and the server's greeting.
                             Needs --tls-ca or --tls-insecure
    --tls-ca FILE            PEM certificates to trust: one the server
                             presents is accepted as it is (pinned, e.g. a
                             self-signed test certificate), else they are
                             trust anchors for the chain and --tls-name
    --tls-insecure           accept any certificate and handshake signature
    --tls-name NAME          server name sent (SNI) and checked
                             (default localhost)
    --slow-rcvbuf BYTES      slow-reader: SO_RCVBUF of the slow client
                             (default 4096)
    --sample-ms MS           RSS sampling period (default 50)
    --label TEXT             copied into the JSON object (e.g. server name)
    -h, --help               this text

OUTPUT:
    One JSON object on stdout; progress and diagnostics on stderr. Times in
    the JSON are seconds (`_s`), microseconds (`_us`) or nanoseconds (`_ns`);
    memory in bytes. `generator_bound` is true when the generator used at
    least 90% of a CPU over the measured interval, or spent less than 5% of
    it waiting for events (`generator_idle_fraction`): then the number
    measures the generator, not the server. `server_core_busy` and
    `generator_core_busy` (when each is pinned to its own core, e.g. with
    taskset) are from /proc/stat and include softirq time and anything else
    running on that core.

    With several addresses (or --sender-addr), `addrs` lists them (`addr` is
    the first, `sender_addr` the senders'), and the latency of each delivery
    is also split by where the receiver is: latency_same_addr_us (connected
    to the address its line's sender is on) and latency_cross_addr_us
    (another address: in a cluster, the line crossed Redis). With several
    --server-pid, server_pids (traffic scenarios and handshakes) is an array
    of objects, one per process: pid, label, cpu_s, cpu_util (its busy
    fraction of one core over the interval), cpu_ns_per_line (traffic
    scenarios) or cpu_us_per_handshake (handshakes), core and core_busy (the
    core it is pinned to, when that is not the generator's), peak_rss_bytes
    (its VmHWM at the end).

Every run ends by itself: each phase has a time bound.
";
