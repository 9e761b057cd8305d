//! Server and generator resource readings from `/proc` and the clocks.

use std::fs;

use rustix::time::{ClockId, clock_gettime};

/// Nanoseconds per second.
pub const SEC: f64 = 1e9;

/// Seconds (from the command line) in nanoseconds.
pub fn secs_ns(s: f64) -> u64 {
    (s * SEC) as u64
}

/// Monotonic clock in nanoseconds (CLOCK_MONOTONIC, the clock timerfd uses).
#[inline]
pub fn now_ns() -> u64 {
    clock_ns(ClockId::Monotonic)
}

/// CPU time this process has used, in nanoseconds.
pub fn self_cpu_ns() -> u64 {
    clock_ns(ClockId::ProcessCPUTime)
}

/// Wall-clock time (CLOCK_REALTIME) in nanoseconds, the clock of the
/// kernel's receive timestamps.
pub fn realtime_ns() -> u64 {
    clock_ns(ClockId::Realtime)
}

#[inline]
fn clock_ns(clock: ClockId) -> u64 {
    let ts = clock_gettime(clock);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// utime + stime of a process (all its threads), in nanoseconds.
pub fn proc_cpu_ns(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu_ticks(&stat).map(|ticks| ticks * (1_000_000_000 / clock_ticks()))
}

fn clock_ticks() -> u64 {
    match rustix::param::clock_ticks_per_second() {
        0 => 100,
        t => t,
    }
}

/// utime + stime in clock ticks from the text of `/proc/PID/stat`. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last `)`.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After ")": state(3) ppid(4) … utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The one CPU a process is pinned to (`Cpus_allowed_list` of a single
/// number, as `taskset -c N` leaves it), if it is pinned to exactly one.
pub fn pinned_cpu(pid: Option<u32>) -> Option<usize> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_string(),
    };
    let status = fs::read_to_string(path).ok()?;
    parse_pinned(&status)
}

fn parse_pinned(status: &str) -> Option<usize> {
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    list.parse().ok()
}

/// (busy, total) jiffies of one CPU from `/proc/stat`; busy is everything
/// but idle and iowait, so it includes interrupt and softirq time (network
/// processing that the per-process figures may leave out) and any other
/// process on that CPU.
pub fn cpu_jiffies(cpu: usize) -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_jiffies(&stat, cpu)
}

fn parse_cpu_jiffies(stat: &str, cpu: usize) -> Option<(u64, u64)> {
    let name = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_ascii_whitespace().next() == Some(name.as_str()))?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = v.iter().sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

/// Busy fraction of one CPU between two `cpu_jiffies` readings.
pub fn busy_between(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<f64> {
    let ((b0, t0), (b1, t1)) = (a?, b?);
    (t1 > t0).then(|| (b1 - b0) as f64 / (t1 - t0) as f64)
}

/// Readings at the start of an interval: the server's CPU time and this
/// process's, and the busy jiffies of the cores each is pinned to. The
/// server may be several processes (a cluster's nodes and Redis): each is
/// read on its own.
pub struct Usage {
    pids: Vec<PidStart>,
    gen_core: Option<usize>,
    t0: u64,
    gen0: u64,
    gen_j0: Option<(u64, u64)>,
}

/// One server process at the start of an interval.
struct PidStart {
    pid: u32,
    core: Option<usize>,
    cpu0: Option<u64>,
    j0: Option<(u64, u64)>,
}

/// What one server process used over an interval. Its core is reported
/// only when it is not the generator's.
#[derive(Clone, Debug, Default)]
pub struct PidUsed {
    pub pid: u32,
    pub cpu: Option<u64>,
    pub core: Option<usize>,
    pub core_busy: Option<f64>,
}

/// What an interval used. `srv_cpu` is the sum over every server process
/// (unknown if any of them could not be read); `srv_core` and its busy
/// fraction are the first process's.
#[derive(Clone, Debug, Default)]
pub struct Used {
    pub t0: u64,
    pub t1: u64,
    pub srv_cpu: Option<u64>,
    pub gen_cpu: u64,
    pub srv_core: Option<usize>,
    pub srv_core_busy: Option<f64>,
    pub gen_core: Option<usize>,
    pub gen_core_busy: Option<f64>,
    /// Each server process, in the order given.
    pub pids: Vec<PidUsed>,
}

impl Usage {
    /// The interval starts now; `pids`: the server's processes.
    pub fn start(pids: impl IntoIterator<Item = u32>) -> Self {
        let pids = pids
            .into_iter()
            .map(|pid| {
                let core = pinned_cpu(Some(pid));
                PidStart {
                    pid,
                    core,
                    j0: core.and_then(cpu_jiffies),
                    cpu0: proc_cpu_ns(pid),
                }
            })
            .collect();
        let gen_core = pinned_cpu(None);
        let gen_j0 = gen_core.and_then(cpu_jiffies);
        Usage {
            pids,
            gen_core,
            t0: now_ns(),
            gen0: self_cpu_ns(),
            gen_j0,
        }
    }

    /// When the interval started.
    pub fn t0(&self) -> u64 {
        self.t0
    }

    /// The interval ends now.
    pub fn end(&self) -> Used {
        let t1 = now_ns();
        let pids: Vec<PidUsed> = self.pids.iter().map(|p| self.pid_end(p)).collect();
        let gen1 = self_cpu_ns();
        let gen_busy = busy_between(self.gen_j0, self.gen_core.and_then(cpu_jiffies));
        let srv_cpu = match pids.is_empty() {
            true => None,
            false => pids.iter().map(|p| p.cpu).sum(),
        };
        let first = pids.first().cloned().unwrap_or_default();
        Used {
            t0: self.t0,
            t1,
            srv_cpu,
            gen_cpu: gen1.saturating_sub(self.gen0),
            srv_core: first.core,
            srv_core_busy: first.core_busy,
            gen_core: self.gen_core,
            gen_core_busy: gen_busy,
            pids,
        }
    }

    fn pid_end(&self, p: &PidStart) -> PidUsed {
        let cpu1 = proc_cpu_ns(p.pid);
        let busy = busy_between(p.j0, p.core.and_then(cpu_jiffies));
        let own_core = p.core != self.gen_core;
        PidUsed {
            pid: p.pid,
            cpu: p.cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)),
            core: p.core.filter(|_| own_core),
            core_busy: busy.filter(|_| own_core),
        }
    }
}

/// Resident set size now and its high-water mark, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mem {
    pub rss: u64,
    pub hwm: u64,
}

pub fn proc_mem(pid: u32) -> Option<Mem> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_mem(&status)
}

fn parse_status_mem(status: &str) -> Option<Mem> {
    let mut rss = None;
    let mut hwm = None;
    for line in status.lines() {
        let kib = |rest: &str| -> Option<u64> {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        };
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            rss = kib(rest);
        } else if let Some(rest) = line.strip_prefix("VmHWM:") {
            hwm = kib(rest);
        }
    }
    Some(Mem {
        rss: rss? * 1024,
        hwm: hwm? * 1024,
    })
}

/// Periodic RSS sampling of the server, keeping the peak.
#[derive(Default)]
pub struct MemWatch {
    pub pid: Option<u32>,
    pub first: Option<Mem>,
    pub last: Option<Mem>,
    pub peak_rss: u64,
    pub samples: u64,
}

impl MemWatch {
    pub fn new(pid: Option<u32>) -> Self {
        MemWatch {
            pid,
            ..Default::default()
        }
    }

    pub fn sample(&mut self) -> Option<Mem> {
        let m = proc_mem(self.pid?)?;
        self.samples += 1;
        self.first.get_or_insert(m);
        self.last = Some(m);
        self.peak_rss = self.peak_rss.max(m.rss).max(m.hwm);
        Some(m)
    }

    /// Peak resident size: the larger of the sampled VmRSS maximum and the
    /// kernel's VmHWM (which also catches peaks between samples).
    pub fn peak(&self) -> Option<u64> {
        self.last.map(|_| self.peak_rss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_odd_command_names() {
        let stat = "1234 (we ird) name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 1 0 12345 1000000 200 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_memory_lines() {
        let s = "Name:\tnatter\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t1\n";
        assert_eq!(
            parse_status_mem(s),
            Some(Mem {
                rss: 1024 * 1024,
                hwm: 2048 * 1024
            })
        );
        assert_eq!(parse_status_mem("Name:\tx\n"), None);
    }

    #[test]
    fn pinned_and_cpu_lines() {
        assert_eq!(parse_pinned("Name:\tx\nCpus_allowed_list:\t1\n"), Some(1));
        assert_eq!(parse_pinned("Cpus_allowed_list:\t0-1\n"), None);
        let stat =
            "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 5 1 5 40 2 0 3 0 0 0\n";
        assert_eq!(parse_cpu_jiffies(stat, 0), Some((10, 50)));
        assert_eq!(parse_cpu_jiffies(stat, 1), Some((14, 56)));
        assert_eq!(parse_cpu_jiffies(stat, 2), None);
        assert_eq!(busy_between(Some((10, 50)), Some((30, 70))), Some(1.0));
        assert!(cpu_jiffies(0).is_some());
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(proc_cpu_ns(pid).is_some());
        let m = proc_mem(pid).unwrap();
        assert!(m.rss > 0 && m.hwm >= m.rss);
        assert!(self_cpu_ns() > 0);
        let a = now_ns();
        assert!(now_ns() >= a);
    }
}
