//! The daemon as systemd runs it: sd_notify readiness, status, watchdog and stopping, the
//! control socket, and the exit codes — through the real binary and a real notify socket.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    notify: UnixDatagram,
    messages: Vec<String>,
}

fn write_config(dir: &Path) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[matrix]
homeserver = "http://127.0.0.1:1"
user = "@door:localhost"
rooms = ["!hall:localhost"]
state_dir = {state:?}
[camera]
device = "test-pattern"
[audio]
capture = "test-tone"
playback = "null"
[control]
socket = {socket:?}
"#,
            state = dir,
            socket = dir.join("control.sock"),
        ),
    )
    .unwrap();
    config
}

fn intercom(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_intercom"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

impl Daemon {
    fn start(dir: &Path, config: &Path) -> Daemon {
        let socket = dir.join("notify.sock");
        let _ = std::fs::remove_file(&socket);
        let notify = UnixDatagram::bind(&socket).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_intercom"))
            .args(["run", "--config"])
            .arg(config)
            .env("NOTIFY_SOCKET", &socket)
            .env("WATCHDOG_USEC", "200000")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Daemon {
            child,
            notify,
            messages: Vec::new(),
        }
    }

    /// Waits for a notify message containing `line` (as one of its lines).
    fn expect(&mut self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        loop {
            if self.messages.iter().any(|m| m.lines().any(|l| l == line)) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {line:?} from the daemon; got {:?}",
                self.messages
            );
            self.notify.set_read_timeout(Some(left)).unwrap();
            if let Ok(n) = self.notify.recv(&mut buf) {
                self.messages
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        self.expect("STOPPING=1");
        (
            self.child.wait().unwrap(),
            std::mem::take(&mut self.messages),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ready_watchdog_ring_status_and_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut daemon = Daemon::start(dir.path(), &config);
    daemon.expect("READY=1");
    daemon.expect("STATUS=Idle");
    daemon.expect("WATCHDOG=1");

    let out = intercom(&["ring"], &config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok pressed");
    daemon.expect("STATUS=Calling 1 room(s)");

    let (status, messages) = daemon.terminate();
    assert!(status.success(), "exit {status:?}");
    // The call was hung up before the daemon said it was stopping.
    let idle_again = messages
        .iter()
        .rposition(|m| m.contains("STATUS=Idle"))
        .unwrap();
    let stopping = messages
        .iter()
        .position(|m| m.contains("STOPPING=1"))
        .unwrap();
    assert!(idle_again < stopping, "{messages:?}");
    assert!(
        !dir.path().join("control.sock").exists(),
        "the socket is removed"
    );
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut first = Daemon::start(dir.path(), &config);
    first.expect("READY=1");
    let second = intercom(&["run"], &config);
    assert_eq!(second.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another intercom daemon"));
    let (status, _) = first.terminate();
    assert!(status.success());
}

#[test]
fn ring_without_a_daemon_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let out = intercom(&["ring"], &config);
    assert_eq!(out.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the intercom daemon at"),
        "{stderr}"
    );
}
