//! Network isolation: each network test runs in a fresh network namespace with only `lo`.
//!
//! `isolated(name)` returns false inside the namespace (run the test body) and true in the
//! outer process, after it has re-run exactly that test inside a new namespace and checked that
//! it passed. Root uses `unshare --net`; other users get a user namespace as well.

use std::process::Command;
use std::sync::Mutex;

const INSIDE: &str = "INTERCOM_TEST_NETNS";

/// Heavy tests (browsers, Synapse) take turns: the machine has two cores.
static HEAVY: Mutex<()> = Mutex::new(());

/// See the module. `test` is the test function's full name, e.g. `browser_call::plain_room`
/// minus the crate: pass `module_path!()`-relative names as `cargo test -- --exact` expects.
pub fn isolated(test: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        // /proc/net/dev is per namespace (/sys/class/net would show the host's).
        let ifaces: Vec<String> = std::fs::read_to_string("/proc/net/dev")
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_owned()))
            .collect();
        assert_eq!(ifaces, ["lo"], "the test namespace must have only lo");
        return false;
    }
    let _turn = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().unwrap();
    let root = is_root();
    let mut cmd = Command::new("unshare");
    cmd.arg("--net");
    if !root {
        cmd.arg("--map-root-user");
    }
    cmd.args(["--", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        // An ignored test (the demo) was asked for by name: ask for it again inside.
        .args(std::env::args().filter(|a| a == "--ignored" || a == "--include-ignored"))
        .env(INSIDE, "1");
    // The inner run's output is passed through, but not its own summary lines: the outer
    // test's result is the one that counts.
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `unshare` (util-linux) to isolate the network test: {e}")
        });
    let stdout = child.stdout.take().unwrap();
    let mut ran = None;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
        let t = line.trim();
        // libtest's own line, "running 1 test" (the test's output may say "running" too).
        let count = t
            .strip_prefix("running ")
            .and_then(|r| r.strip_suffix(" tests").or_else(|| r.strip_suffix(" test")))
            .and_then(|n| n.parse::<u32>().ok());
        if count.is_some() {
            ran = count;
        } else if !(t.starts_with("test result:") || t.is_empty()) {
            println!("{line}");
        }
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "{test} failed inside its network namespace ({status})"
    );
    // A name that matches no test (a typo, a renamed function) would run nothing and pass.
    assert_eq!(
        ran,
        Some(1),
        "the re-run inside the network namespace must run exactly one test, `{test}`: is that \
         the test function's name?"
    );
    true
}

fn is_root() -> bool {
    // The effective uid, without libc: /proc/self/status has "Uid: real effective ...".
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}
