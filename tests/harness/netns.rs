//! Network isolation: each network test runs in a fresh network namespace with only `lo`.
//!
//! A network test begins with `if isolated!() { return; }`. `isolated!()` is false inside the
//! namespace (run the test body) and true in the outer process, after it has re-run exactly that
//! test inside a new namespace and checked that it passed and that it ran. The macro names the
//! test itself ([`test_name!`]): a name typed by hand could match no test, and a re-run of no
//! test would pass. Root uses `unshare --net`; other users get a user namespace as well.

use std::process::Command;
use std::sync::Mutex;

const INSIDE: &str = "INTERCOM_TEST_NETNS";

/// Heavy tests (browsers, Synapse) take turns: the machine has two cores.
static HEAVY: Mutex<()> = Mutex::new(());

/// The name of the test function it is written in, as libtest names it for `--exact`: the
/// function's path without the crate, e.g. `plain_room` or `raw::renegotiates`.
#[allow(unused_macros)] // by programs that are not tests (the calls bench)
macro_rules! test_name {
    () => {{
        fn here() {}
        $crate::harness::netns::test_name_of(::std::any::type_name_of_val(&here))
    }};
}
#[allow(unused_imports)]
pub(crate) use test_name;

/// See the module: `if isolated!() { return; }` at the top of a network test.
#[allow(unused_macros)]
macro_rules! isolated {
    () => {
        $crate::harness::netns::isolated_as($crate::harness::netns::test_name!())
    };
}
#[allow(unused_imports)]
pub(crate) use isolated;

/// The test's name from the type name of a function declared in its body
/// (`<crate>::<module path>::<test>::here`).
pub fn test_name_of(here: &'static str) -> &'static str {
    let name = here
        .strip_suffix("::here")
        .and_then(|path| path.split_once("::"))
        .map(|(_crate, name)| name)
        .unwrap_or_else(|| panic!("`{here}` is not a function inside a test"));
    assert!(
        !name.contains('{'),
        "`{name}`: call isolated!() in the test function's own body, not in a closure or an \
         async block"
    );
    name
}

/// See the module. `test` is the test function's name as `cargo test -- --exact` expects it;
/// tests call [`isolated!`], which passes their own.
pub fn isolated_as(test: &str) -> bool {
    if inside() {
        return false;
    }
    let ran = rerun(&[test, "--exact", "--nocapture", "--test-threads=1"]);
    // A name that matches no test (a renamed function, a wrong module) would run nothing and pass.
    assert_eq!(
        ran,
        Some(1),
        "the re-run inside the network namespace must run exactly one test, `{test}`: is that \
         the test function's name?"
    );
    true
}

/// [`isolated!`] for a program that is not a libtest test (a benchmark with `harness = false`):
/// re-runs the whole program inside the namespace, with its own arguments.
pub fn isolated_program() -> bool {
    if inside() {
        return false;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    rerun(&args.iter().map(String::as_str).collect::<Vec<_>>());
    true
}

/// Inside the test namespace (checked: only `lo`)?
fn inside() -> bool {
    if std::env::var_os(INSIDE).is_none() {
        return false;
    }
    // /proc/net/dev is per namespace (/sys/class/net would show the host's).
    let ifaces: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_owned()))
        .collect();
    assert_eq!(ifaces, ["lo"], "the test namespace must have only lo");
    true
}

/// Re-runs this executable with `args` in a new network namespace; panics unless it succeeds.
/// Returns how many tests libtest said it runs ("running 1 test"), if it said so.
fn rerun(args: &[&str]) -> Option<u32> {
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
        .args(args)
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
        "{} failed inside its network namespace ({status})",
        args.first().copied().unwrap_or("the program")
    );
    ran
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
