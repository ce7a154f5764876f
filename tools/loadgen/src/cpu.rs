//! CPU time used by a process (the server under test, or loadgen itself), read from
//! `/proc/PID/stat` as utime + stime. Linux only: elsewhere the numbers are absent, not wrong.
//! Clock ticks per second come from `getconf CLK_TCK` once, or 100 (the Linux value on every
//! common architecture) if that cannot run.

use std::sync::OnceLock;

const ASSUMED_CLOCK_TICKS_PER_S: u64 = 100;

/// Which process to measure.
#[derive(Clone, Copy, Debug)]
pub enum Process {
    Current,
    Pid(u32),
}

/// CPU seconds of the server and of loadgen at one moment; two of them bound a window.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    pub server_s: Option<f64>,
    pub own_s: Option<f64>,
}

impl Snapshot {
    pub fn take(server_pid: Option<u32>) -> Snapshot {
        Snapshot {
            server_s: server_pid.and_then(|pid| cpu_s(Process::Pid(pid))),
            own_s: cpu_s(Process::Current),
        }
    }

    /// (server, own) CPU seconds used from `earlier` to `self`.
    pub fn since(&self, earlier: &Snapshot) -> (Option<f64>, Option<f64>) {
        let delta = |now: Option<f64>, then: Option<f64>| Some(now? - then?);
        (delta(self.server_s, earlier.server_s), delta(self.own_s, earlier.own_s))
    }
}

/// User plus system CPU seconds the process has used since it started, all threads included.
pub fn cpu_s(process: Process) -> Option<f64> {
    let path = match process {
        Process::Current => "/proc/self/stat".to_string(),
        Process::Pid(pid) => format!("/proc/{pid}/stat"),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    let ticks = cpu_ticks(&stat)?;
    Some(ticks as f64 / clock_ticks_per_s() as f64)
}

/// utime + stime from a `/proc/PID/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // Field 3 (state) is the first after the name; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_s() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(ASSUMED_CLOCK_TICKS_PER_S)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime_past_an_odd_name() {
        let stat = "1234 (we (ird) name) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 \
                    3 0 100 1000000 200 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn own_cpu_time_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            let used_s = cpu_s(Process::Current).expect("/proc/self/stat is readable");
            assert!(used_s >= 0.0);
        }
    }
}
