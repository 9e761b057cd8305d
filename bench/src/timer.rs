//! The clock that paces the latency schedule: a timerfd armed at absolute
//! CLOCK_MONOTONIC times. epoll's own timeout has millisecond resolution;
//! the timer wakes the loop on time, and the epoll timeout is a backstop.

use std::io;
use std::num::NonZeroU64;
use std::os::fd::{AsRawFd, OwnedFd};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};

pub struct Timer {
    fd: OwnedFd,
    /// The time it is armed for (0: not armed).
    armed: u64,
}

impl Timer {
    pub fn new() -> io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // Precise wake-ups for the latency schedule (best effort: the
        // default 50 µs of slack only blurs them).
        let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(1));
        Ok(Timer { fd, armed: 0 })
    }

    /// Register with mio like any other source. `SourceFd` (mio's `os-ext`
    /// feature, which the daemon's mio already has through signal-hook-mio)
    /// adds the descriptor to the poller, edge-triggered.
    pub fn register(&self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(
            &mut SourceFd(&self.fd.as_raw_fd()),
            token,
            Interest::READABLE,
        )
    }

    /// Arm at an absolute CLOCK_MONOTONIC time.
    pub fn arm(&mut self, at_ns: u64) {
        if self.armed == at_ns {
            return;
        }
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: (at_ns / 1_000_000_000) as i64,
                tv_nsec: (at_ns % 1_000_000_000) as i64,
            },
        };
        let _ = timerfd_settime(&self.fd, TimerfdTimerFlags::ABSTIME, &spec);
        self.armed = at_ns;
    }

    /// It fired: consume the expiry count.
    pub fn clear(&mut self) {
        let mut b = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut b);
        self.armed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procstat::now_ns;
    use mio::{Events, Poll};
    use std::time::Duration;

    #[test]
    fn wakes_the_poll_at_the_armed_time() {
        let mut poll = Poll::new().unwrap();
        let mut timer = Timer::new().unwrap();
        timer.register(poll.registry(), Token(7)).unwrap();
        let mut events = Events::with_capacity(4);
        let at = now_ns() + 3_000_000;
        timer.arm(at);
        poll.poll(&mut events, Some(Duration::from_secs(2)))
            .unwrap();
        assert!(now_ns() >= at);
        assert_eq!(
            events.iter().map(|e| e.token()).collect::<Vec<_>>(),
            [Token(7)]
        );
        timer.clear();
        // Cleared and edge-triggered: nothing more until armed again.
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .unwrap();
        assert!(events.is_empty());
    }
}
