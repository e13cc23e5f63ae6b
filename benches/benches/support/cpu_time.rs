//! A criterion measurement of the CPU time this process's threads spend, read from
//! `/proc/self/task/*/schedstat` (Linux). On a machine shared with other builds,
//! wall-clock time also counts the waits for a core; CPU time does not, so numbers taken
//! under load stay comparable.
//!
//! Precision: the kernel updates a thread's total when it is switched out, so `read`
//! yields first (the reading thread's own total is then current); the other threads of a
//! bench pinned to one core (`taskset -c 1`) are not running while this one is.

use criterion::{
    Throughput,
    measurement::{Measurement, ValueFormatter},
};

/// CPU nanoseconds of all threads of the process.
pub struct CpuTime;

fn read() -> u64 {
    std::thread::yield_now();
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task (Linux)");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        read()
    }

    fn end(&self, start: u64) -> u64 {
        read().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanos
    }
}

/// Formats CPU nanoseconds like criterion's wall-time formatter (`cpu` marks the unit).
struct Nanos;

impl ValueFormatter for Nanos {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match typical {
            t if t < 1e3 => (1.0, "ns cpu"),
            t if t < 1e6 => (1e-3, "µs cpu"),
            t if t < 1e9 => (1e-6, "ms cpu"),
            _ => (1e-9, "s cpu"),
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(&self, typical: f64, throughput: &Throughput, values: &mut [f64]) -> &'static str {
        let count = match *throughput {
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => n as f64,
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => n as f64,
            Throughput::Bits(n) => n as f64,
        };
        let per_second = count * 1e9 / typical;
        let (factor, unit) = match per_second {
            p if p < 1e3 => (1.0, "elem/s cpu"),
            p if p < 1e6 => (1e-3, "Kelem/s cpu"),
            p if p < 1e9 => (1e-6, "Melem/s cpu"),
            _ => (1e-9, "Gelem/s cpu"),
        };
        values.iter_mut().for_each(|v| *v = count * 1e9 / *v * factor);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
