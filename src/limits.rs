//! Every limit that is not a flag, in one place, each with its reason.
//!
//! Flags and their defaults are in [`crate::config`]; these are the bounds a
//! user does not set but a reader should be able to find. `docs/architecture.md`
//! lists them too.

use std::time::Duration;

// ----- one turn of the loop ------------------------------------------------------

/// Events taken from the poller per turn: the rest wait for the next turn,
/// which keeps one turn's work bounded.
pub const EVENTS_PER_TURN: usize = 1024;
/// Bytes asked for in one read call: one client's typical burst, small
/// enough to stay on the stack's side of the allocator.
pub const READ_CHUNK: usize = 16 * 1024;
/// Bytes read from one client per turn at most, so one busy client cannot
/// monopolise a turn; it is read again next turn without waiting for an event.
pub const READ_BUDGET: usize = 32 * 1024;
/// Bytes written to one client per turn at most, so a client with a huge
/// backlog cannot hold the loop; it is flushed again next turn.
pub const WRITE_BUDGET: usize = 1024 * 1024;
/// Output queued for any one client per turn at most, from every source
/// (broadcasts, private lines, `/who`, notices). A sender whose next line
/// would pass it for some recipient waits for the next turn. It is lowered
/// to half of `--max-output` when that is smaller, so a client that keeps up
/// is never cut by what others send it, and it bounds the turn's arena.
pub const TURN_BUDGET: usize = 256 * 1024;
/// The turn budget is never lowered below this: room for a few long lines.
pub const MIN_TURN_BUDGET: usize = 4 * 1024;
/// Arena capacity the default room keeps between turns; anything grown
/// beyond is given back, so one busy turn does not pin memory.
pub const ARENA_KEEP: usize = 64 * 1024;
/// Arena capacity another room keeps between turns: a thousand quiet rooms
/// must not hold 64 KiB each.
pub const ROOM_ARENA_KEEP: usize = 4 * 1024;
/// TLS handshakes worked on per turn at most: each costs about 100 µs of
/// CPU (ECDSA), so a burst of 200 is spread over turns and chat goes on
/// between them.
pub const MAX_HANDSHAKES_PER_TURN: usize = 32;
/// What one arrival may add to everyone's share of a turn: the longest
/// address (`[ffff:…]:65535`) and ` has arrived`. Accepting stops for the
/// turn when this no longer fits.
pub const ARRIVAL_BYTES: usize = 64;

// ----- queues ---------------------------------------------------------------------

/// How many ranges one `writev` gathers at most: queues are usually one or
/// two entries long, and this keeps the `iovec` array on the stack.
pub const MAX_IOVECS: usize = 64;
/// A queue holding more entries than this at the end of a turn is compacted
/// (its private small entries are merged).
pub const COMPACT_AT: usize = 8;
/// Entries shorter than this are merged by compaction; a longer one already
/// costs little beside its bytes (at most a fifth more).
pub const SMALL_ENTRY: usize = 512;
/// What the allocator adds to each allocation (glibc: a 16-byte header and
/// 16-byte alignment), so that what is counted is what the heap holds.
pub const MALLOC_OVERHEAD: usize = 16;

// ----- time -----------------------------------------------------------------------

/// How long a leaving client's last output may take to flush before the
/// connection is closed anyway; also how long a pause of reading may last
/// before its biggest holders are closed whether they move or not.
pub const LINGER: Duration = Duration::from_secs(10);
/// While reading is paused for everyone, a client whose socket has taken no
/// byte for this long is closed as slow (the biggest first) until the total
/// is below half: it holds the room up and shows no sign of reading.
pub const PAUSE_STALL: Duration = Duration::from_secs(1);
/// Delay before accepting again after a resource error (`EMFILE` with no
/// reserve to shed with, or another accept failure): retrying at once would
/// spin.
pub const ACCEPT_RETRY_MS: u64 = 100;
/// Shortest gap between two sweeps of the client list for idle timeouts:
/// this, or a hundredth of the timeout if longer, so a sweep (which visits
/// every client) runs at most a hundred times per timeout period and an
/// idle client is closed at most 1% late.
pub const MIN_SWEEP_GAP_MS: u64 = 10;

// ----- connections ----------------------------------------------------------------

/// Connections the kernel completes before we accept them. The standard
/// library's 128 overflows in a connect storm while one turn serves
/// thousands of clients, and each overflow costs the client a one-second
/// SYN retry; Redis and nginx use 511, the kernel caps it at `somaxconn`.
pub const LISTEN_BACKLOG: i32 = 1024;
/// Descriptors kept back from `--max-clients`' default for the listener, the
/// poller, the signal pipe, metrics connections and the reserve descriptor.
pub const RESERVED_FDS: usize = 32;
/// Unread input read away before a leaving client's socket is closed, so the
/// close is a FIN and not a reset that would destroy output in flight;
/// bounded, so a client that keeps sending cannot hold the loop.
pub const DRAIN_BUDGET: usize = 4 * READ_BUDGET;

// ----- what a newcomer gets -------------------------------------------------------

/// Longest room name, in characters after the `#`.
pub const MAX_ROOM_NAME: usize = 32;
/// Longest topic, in bytes (cleaned).
pub const MAX_TOPIC_BYTES: usize = 200;

/// Longest name, in characters (after NFC).
pub const MAX_NAME_CHARS: usize = 24;
/// Most bytes of a `/who` answer (or the who line sent on joining): past it
/// the list ends with `(and N more)`. Bounded, because it is part of what a
/// newcomer may be sent at once.
pub const MAX_WHO_BYTES: usize = 32 * 1024;
/// Room left in a newcomer's share of `--max-output` for `You are <name>`
/// and the like, beside the motd, the who line and the history.
pub const GREETING_SLACK: usize = 256;

// ----- the metrics endpoint -------------------------------------------------------

/// Metrics connections open at once at most; more are closed on accept.
pub const MAX_METRICS_CONNS: usize = 16;
/// Metrics connections open at once from one source (IPv6: one /64), so a
/// slow client at one address cannot take every slot and a scraper elsewhere
/// always gets in.
pub const MAX_METRICS_PER_SOURCE: usize = 4;
/// How long a metrics connection may take to send its request head; a
/// scraper sends it at once, a slow-loris never finishes it.
pub const METRICS_HEAD_TIMEOUT_MS: u64 = 2_000;
/// How long one metrics connection may stay open in all.
pub const METRICS_CONN_TIMEOUT_MS: u64 = 5_000;
/// Largest request accepted; more is answered with 431 and closed.
pub const MAX_REQUEST: usize = 8 * 1024;

// ----- logs -----------------------------------------------------------------------

/// Connect and leave lines let through per second (the rest are counted).
pub const LOG_CONNECTS_PER_SEC: u32 = 20;
/// Warnings of one kind let through per second.
pub const LOG_WARNINGS_PER_SEC: u32 = 5;

// ----- the memory formula ---------------------------------------------------------

/// The memory formula (`docs/backpressure.md`): natter's resident memory
/// stays below `baseline + --max-total-output + clients × PER_CLIENT_BYTES +
/// SLACK_BYTES`. Measured: about 270 bytes per idle client and 500 per
/// client under the stalled-reader attack of `tests/attacks.rs`, which
/// checks the formula with 3,000 and 10,000 clients. A client in the middle
/// of a line holds up to twice `--max-line` more, until the line ends.
pub const PER_CLIENT_BYTES: usize = 1024;
/// The fixed part of the formula: the turn's arena and read buffer, the
/// motd, history and `/who` texts, and what the allocator keeps back.
pub const SLACK_BYTES: usize = 4 * 1024 * 1024;
