//! The poller: one `mio::Poll` for every socket and the timer, waits
//! bounded by the clock, and the time spent waiting (the generator's idle
//! time).

use std::io::{self, ErrorKind};
use std::time::Duration;

use mio::{Events, Poll, Registry, Token};

use crate::procstat::now_ns;
use crate::timer::Timer;

/// The timer's token; clients' tokens are their indices, far below.
pub const TIMER: Token = Token(usize::MAX - 1);
/// While connecting and settling, turns of the loop are at least this long,
/// so that the servers' notices pile up and are read many to a syscall: on
/// loopback every read of a socket with fresh data also sends an ACK through
/// the whole stack, and reading each notice line on its own makes the
/// generator, not the server, the bottleneck (N² notices for N clients).
const COALESCE: u64 = 2_000_000;
/// Waits shorter than this are timed by the timerfd (epoll's timeout has
/// millisecond resolution).
const FINE_WAIT: u64 = 20_000_000;

pub struct Reactor {
    poll: Poll,
    events: Option<Events>,
    timer: Timer,
    last_turn: u64,
    /// Time spent inside poll while counting: the generator's idle time (a
    /// generator that always finds work waiting is the limit).
    pub poll_wait: u64,
}

impl Reactor {
    pub fn new() -> io::Result<Self> {
        let poll = Poll::new()?;
        let timer = Timer::new()?;
        timer.register(poll.registry(), TIMER)?;
        Ok(Reactor {
            poll,
            events: Some(Events::with_capacity(4096)),
            timer,
            last_turn: 0,
            poll_wait: 0,
        })
    }

    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// Make this turn start at least `COALESCE` after the last one.
    pub fn coalesce(&mut self) {
        let since = now_ns() - self.last_turn;
        if since < COALESCE {
            std::thread::sleep(Duration::from_nanos(COALESCE - since));
        }
        self.last_turn = now_ns();
    }

    /// Wait for events from `now` until `next` at the latest; `count`: add
    /// the wait to `poll_wait`. `None` when interrupted by a signal. Hand
    /// the events back with `done`.
    pub fn wait(&mut self, now: u64, next: u64, count: bool) -> io::Result<Option<Events>> {
        let timeout = if next <= now {
            Duration::ZERO
        } else {
            let wait = next - now;
            if wait < FINE_WAIT {
                self.timer.arm(next);
            }
            // The timer wakes us on time; the epoll timeout is a backstop.
            Duration::from_nanos(wait + 1_000_000)
        };
        let mut events = self.events.take().expect("events");
        let res = self.poll.poll(&mut events, Some(timeout));
        if count {
            self.poll_wait += now_ns() - now;
        }
        match res {
            Ok(()) => Ok(Some(events)),
            Err(e) => {
                self.events = Some(events);
                if e.kind() == ErrorKind::Interrupted {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    pub fn done(&mut self, events: Events) {
        self.events = Some(events);
    }

    /// The timer fired.
    pub fn timer_fired(&mut self) {
        self.timer.clear();
    }
}
