//! What a process costs, from /proc: CPU time, resident memory, open file descriptors.

use std::path::Path;
use std::time::Duration;

/// Clock ticks per second of /proc's times (`getconf CLK_TCK`, 100 on Linux).
fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// utime + stime of a `stat` file (a process's or a thread's).
fn stat_cpu(path: &Path) -> Duration {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &text[text.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / ticks_per_second() as f64)
}

/// CPU time (user + system) the process `pid` has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    stat_cpu(Path::new(&format!("/proc/{pid}/stat")))
}

/// CPU time the calling thread has used so far.
pub fn thread_cpu_time() -> Duration {
    stat_cpu(Path::new("/proc/thread-self/stat"))
}

/// A field of /proc/<pid>/status in kB (`VmRSS`, `VmHWM`).
pub fn status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Resident memory of `pid`, in kB.
pub fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS")
}

/// How many file descriptors `pid` has open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The CPU model and the number of logical CPUs, from /proc/cpuinfo.
pub fn cpu_model() -> (String, usize) {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = text
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|x| x.1))
        .unwrap_or("unknown CPU")
        .trim()
        .to_owned();
    let cores = text.lines().filter(|l| l.starts_with("processor")).count();
    (model, cores)
}

/// Whether a described descriptor (see [`open_fds_described`]) is one of the Matrix SQLite
/// stores' files: their connections are pooled, opened as reads overlap, up to a bound.
pub fn is_store_file(described: &str) -> bool {
    described.contains(".sqlite3")
}

/// How many file descriptors `pid` has open, but its TCP connections to `port` (a client's
/// connection pool grows and shrinks on its own terms).
pub fn open_fds_except_connections_to(pid: u32, port: u16) -> usize {
    open_fds_described(pid, port).len()
}

/// What each file descriptor of `pid` is open on (sockets with their protocol, addresses and
/// state from /proc/<pid>/net), but its TCP connections to `port`: to name what leaked.
pub fn open_fds_described(pid: u32, port: u16) -> Vec<String> {
    // inode → (table, local, remote, state), and the inodes of connections to `port`.
    let mut sockets = std::collections::HashMap::new();
    let mut pooled = std::collections::HashSet::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(state), Some(inode)) =
                (f.get(1), f.get(2), f.get(3), f.get(9))
            else {
                continue;
            };
            let remote_port = remote
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let target = format!("socket:[{inode}]");
            if table.starts_with("tcp") && remote_port == Some(port) {
                pooled.insert(target.clone());
            }
            sockets.insert(target, format!("{table} {local} -> {remote} state {state}"));
        }
    }
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let target = std::fs::read_link(e.path())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "(gone)".into());
            if pooled.contains(&target) {
                return None;
            }
            let what = sockets.get(&target).map(String::as_str).unwrap_or("");
            Some(format!(
                "{}: {target} {what}",
                e.file_name().to_string_lossy()
            ))
        })
        .collect();
    fds.sort();
    fds
}
