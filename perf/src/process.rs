//! CPU time and peak memory of a process, from `/proc`.

use std::{fs, path::Path};

/// CPU seconds (user + system) and peak resident set of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// User plus system CPU seconds so far.
    pub cpu_seconds: f64,
    /// Peak resident set (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Resident set now (VmRSS), MiB.
    pub rss_mib: f64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`; `None` once the process is gone.
pub fn usage(pid: u32) -> Option<Usage> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Usage {
        cpu_seconds: cpu_ticks(&stat)? as f64 / *CLOCK_TICKS as f64,
        peak_rss_mib: status_kib(&status, "VmHWM:")? as f64 / 1024.0,
        rss_mib: status_kib(&status, "VmRSS:")? as f64 / 1024.0,
    })
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so count from its closing parenthesis.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, i.e. index 11.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The `field` line of `/proc/PID/status` (`VmHWM:`, `VmRSS:`), in KiB.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Clock ticks per second, asked once: every usage read needs it.
static CLOCK_TICKS: std::sync::LazyLock<u64> = std::sync::LazyLock::new(clock_ticks);

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we run on).
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// The pid in a kwokctl pid file.
pub fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_should_survive_spaces_and_parens_in_the_name() {
        let stat = "42 (kw (o) k) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0";
        assert_eq!(cpu_ticks(stat), Some(300));
    }

    #[test]
    fn own_process_should_have_usage() {
        let u = usage(std::process::id()).unwrap();
        assert!(u.peak_rss_mib > 0.0 && u.cpu_seconds >= 0.0, "{u:?}");
        assert!(u.rss_mib > 0.0 && u.rss_mib <= u.peak_rss_mib, "{u:?}");
        let status = "Name: x\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(2048));
        assert_eq!(status_kib(status, "VmRSS:"), Some(1024));
    }
}
