//! What the footprint benchmarks read of a running process (a `/proc/<pid>/<file>` field, its RSS by mapping), and
//! how they start it.

/// The number after `key` (e.g. `VmRSS:`, in KiB) in `/proc/<pid>/<file>`.
pub fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

/// Where the resident memory of `pid` is, from `/proc/<pid>/smaps`: KiB per kind of mapping (the executable's
/// code, its read-only data and relocated pointers, its writable data; the heap and the other anonymous mappings,
/// which hold malloc's arenas and the threads' stacks; shared libraries), largest first.
#[allow(dead_code)]
pub fn rss_by_mapping(pid: u32) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let exe = exe.to_string_lossy().trim_end_matches(" (deleted)").to_owned();
    let mut sums: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut kind = String::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A mapping's header: address range, permissions, offset, device, inode, path.
        if fields.first().is_some_and(|f| f.contains('-') && f.chars().all(|c| c.is_ascii_hexdigit() || c == '-')) {
            let perms = fields.get(1).copied().unwrap_or("");
            let path = fields.get(5).copied().unwrap_or("");
            kind = match path {
                p if !exe.is_empty() && p == exe => match perms {
                    p if p.contains('x') => "binary: code".into(),
                    p if p.contains('w') => "binary: writable data".into(),
                    _ => "binary: read-only data and relocated pointers".into(),
                },
                "[heap]" => "heap (brk: main arena)".into(),
                "[stack]" => "main thread stack".into(),
                "" => "anonymous (malloc arenas, thread stacks)".into(),
                p if p.starts_with('[') => "kernel ([vdso], [vvar])".into(),
                _ => "shared libraries".into(),
            };
        } else if fields.first() == Some(&"Rss:") {
            *sums.entry(kind.clone()).or_default() += fields.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    let mut out: Vec<(String, u64)> = sums.into_iter().collect();
    out.sort_by_key(|k| std::cmp::Reverse(k.1));
    out
}

/// The program `exe` with `args` and nothing of this process's environment but `env` (and `RUST_LOG=warn`), its
/// output dropped, killed when dropped: the process a footprint is measured of.
#[allow(dead_code)]
pub fn quiet_daemon(exe: &str, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(exe);
    command.args(args).env_clear().env("RUST_LOG", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).kill_on_drop(true).spawn().unwrap()
}
