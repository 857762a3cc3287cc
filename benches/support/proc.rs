//! What the footprint benchmarks read of a running process: a `/proc/<pid>/<file>` field.

/// The number after `key` (e.g. `VmRSS:`, in KiB) in `/proc/<pid>/<file>`.
pub fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}
