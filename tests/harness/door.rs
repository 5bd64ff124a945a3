//! The door daemon as a user runs it: `intercom login` once, then `intercom run` with a
//! configuration written here (synthetic camera and microphone), pressed through
//! `intercom ring`, observed through its sd_notify messages and its log.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::client::Client;
use super::synapse::{Synapse, User};

/// How long the door may take to be ready, or to join a room.
const START: Duration = Duration::from_secs(30);

/// What the door's configuration says beyond the homeserver and its account.
pub struct DoorSettings {
    pub rooms: Vec<String>,
    pub allow: Vec<String>,
    /// "auto-answer", "ring" or "reject".
    pub incoming: &'static str,
    pub ring_timeout: &'static str,
    pub max_length: &'static str,
    /// `[call] press_during_call`: "ignore" or "hangup".
    pub press_during_call: &'static str,
    /// `[camera] device`: "test-pattern", or a path.
    pub camera_device: &'static str,
    /// The synthetic camera's frame size.
    pub camera: (u32, u32),
    /// Extra keys of the `[camera]` section (e.g. `max_bitrate = "200kbit"`).
    pub camera_extra: String,
    /// `[audio] capture`: "test-tone" or "test-bursts".
    pub capture: &'static str,
    /// Extra TOML appended to the file (e.g. a `[turn]` section).
    pub extra: String,
    /// Extra keys of the `[call]` section (e.g. `snapshot = false`).
    pub call_extra: String,
    /// The homeserver's URL, when it is not Synapse's own (a proxy in front of it).
    pub homeserver: Option<String>,
}

impl Default for DoorSettings {
    fn default() -> Self {
        DoorSettings {
            rooms: Vec::new(),
            allow: Vec::new(),
            incoming: "auto-answer",
            ring_timeout: "30s",
            max_length: "5m",
            press_during_call: "ignore",
            camera_device: "test-pattern",
            camera: (320, 240),
            camera_extra: String::new(),
            capture: "test-tone",
            extra: String::new(),
            call_extra: String::new(),
            homeserver: None,
        }
    }
}

/// A configured door: its directory (state, config, sockets) outlives restarts of the daemon.
pub struct DoorHome {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub user: User,
}

impl DoorHome {
    /// Writes the configuration and logs the door's account in once, as an installer would.
    pub fn new(synapse: &Synapse, user: User, settings: &DoorSettings) -> DoorHome {
        let dir = tempfile::Builder::new().prefix("door-").tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let home = DoorHome { dir, config, user };
        home.write_config(synapse, settings);
        let password = home.dir.path().join("password");
        std::fs::write(&password, &home.user.password).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_intercom"))
            .args(["login", "--config"])
            .arg(&home.config)
            .arg("--password-file")
            .arg(&password)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "intercom login failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(&password).unwrap();
        home
    }

    /// Rewrites the configuration (the state directory stays).
    pub fn write_config(&self, synapse: &Synapse, s: &DoorSettings) {
        let d = self.dir.path();
        let list = |v: &[String]| format!("{v:?}");
        std::fs::write(
            &self.config,
            format!(
                r#"[matrix]
homeserver = "{hs}"
user = "{user}"
rooms = {rooms}
allow = {allow}
state_dir = "{state}"
device_name = "door under test"

[call]
incoming = "{incoming}"
ring_timeout = "{ring}"
max_length = "{max}"
press_during_call = "{press}"
{call_extra}

[camera]
device = "{device}"
width = {width}
height = {height}
fps = 15
{camera_extra}

[audio]
capture = "{capture}"
playback = "null"

[control]
socket = "{socket}"

[log]
filter = "info,intercom=debug"
{extra}
"#,
                hs = s.homeserver.clone().unwrap_or_else(|| synapse.url()),
                user = self.user.user_id,
                rooms = list(&s.rooms),
                allow = list(&s.allow),
                state = d.join("state").display(),
                incoming = s.incoming,
                ring = s.ring_timeout,
                max = s.max_length,
                press = s.press_during_call,
                device = s.camera_device,
                width = s.camera.0,
                height = s.camera.1,
                capture = s.capture,
                socket = d.join("control.sock").display(),
                extra = s.extra,
                call_extra = s.call_extra,
                camera_extra = s.camera_extra,
            ),
        )
        .unwrap();
        std::fs::create_dir_all(d.join("state")).unwrap();
    }

    /// Starts the daemon.
    pub fn start(&self) -> Door {
        self.start_with_env(&[])
    }

    /// Starts the daemon and waits for READY=1.
    pub fn start_ready(&self) -> Door {
        let mut door = self.start();
        door.wait_ready();
        door
    }

    /// Starts the daemon, waits for READY=1 and until each room's client sees the door joined
    /// to it (the door accepts the invites of users on its allow list).
    pub fn start_joined(&self, rooms: &[(&Client, &str)]) -> Door {
        let door = self.start_ready();
        for (client, room) in rooms {
            self.wait_joined(client, room);
        }
        door
    }

    /// Waits until `client` sees the door joined to `room`.
    pub fn wait_joined(&self, client: &Client, room: &str) {
        super::poll("the door to join its room", START, || {
            client
                .joined_members(room)
                .contains(&self.user.user_id)
                .then_some(())
        });
    }

    /// Starts the daemon with more environment (`ALSA_CONFIG_PATH`, a test hook).
    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Door {
        let socket = self.dir.path().join("notify.sock");
        let _ = std::fs::remove_file(&socket);
        let notify_socket = UnixDatagram::bind(&socket).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_intercom"))
            .args(["run", "--config"])
            .arg(&self.config)
            .env("NOTIFY_SOCKET", &socket)
            .env("WATCHDOG_USEC", "2000000")
            .env_remove("WATCHDOG_PID")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The notify socket is read all the time, as systemd does: its queue is short.
        let (notify_tx, notify) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = notify_socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                if notify_tx.send(message).is_err() {
                    break;
                }
            }
        });
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Door {
            child,
            notify,
            notes: Vec::new(),
            log,
            lines: Vec::new(),
            control: self.dir.path().join("control.sock"),
            config: self.config.clone(),
        }
    }
}

/// A running door daemon.
pub struct Door {
    child: Child,
    notify: Receiver<String>,
    /// sd_notify messages so far.
    pub notes: Vec<String>,
    log: Receiver<String>,
    /// Log lines so far.
    pub lines: Vec<String>,
    control: PathBuf,
    config: PathBuf,
}

impl Door {
    /// Waits for READY=1: the daemon has its session, its devices and its control socket.
    pub fn wait_ready(&mut self) {
        self.wait_notify("READY=1", START, |l| l == "READY=1");
    }

    /// Waits for an sd_notify line (`READY=1`, `STATUS=…`) for which `matches` holds, among
    /// those not cleared by `clear_notes`.
    pub fn wait_notify(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self
                .notes
                .iter()
                .flat_map(|m| m.lines())
                .find(|l| matches(l))
            {
                return found.to_owned();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {what} from the door; got {:?}\n{}",
                self.notes,
                self.log_text()
            );
            if let Ok(message) = self.notify.recv_timeout(left) {
                self.notes.push(message);
            }
        }
    }

    /// Forgets the sd_notify messages seen so far.
    pub fn clear_notes(&mut self) {
        self.notes.clear();
    }

    /// Waits for a log line containing `needle` (after those already consumed) and returns it.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_log_any(&[needle], timeout)
    }

    /// Waits at most `timeout` for a log line with any of `needles`; that line.
    pub fn wait_log_any(&mut self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.lines.push(line.clone());
                    if needles.iter().any(|n| line.contains(n)) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no log line with any of {needles:?} from the door:\n{}",
                        self.log_text()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "the door exited while waiting for any of {needles:?}:\n{}",
                        self.log_text()
                    )
                }
            }
        }
    }

    /// Every log line that came since the last call (without waiting), also kept in `lines`.
    pub fn drain_log(&mut self) -> Vec<String> {
        let new: Vec<String> = self.log.try_iter().collect();
        self.lines.extend(new.iter().cloned());
        new
    }

    /// The daemon's process id (for /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the daemon and waits for it, keeping its log for a failure report.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        let mut lines = self.lines.clone();
        lines.extend(self.log.try_iter());
        let from = lines.len().saturating_sub(150);
        lines[from..].join("\n")
    }

    /// Presses the button through `intercom ring`.
    pub fn ring(&self) {
        let out = Command::new(env!("CARGO_BIN_EXE_intercom"))
            .args(["ring", "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "intercom ring: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Asks the control socket for the status, as `intercom ring` asks it to ring; the answer
    /// without its `ok `. Waits at most `timeout` for it.
    /// What `intercom status` prints for this door (it must succeed).
    pub fn status_report(&self) -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_intercom"))
            .arg("status")
            .arg("--socket")
            .arg(&self.control)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "intercom status: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub fn status(&self, timeout: Duration) -> String {
        use std::io::Write;
        let stream = std::os::unix::net::UnixStream::connect(&self.control).unwrap();
        stream.set_read_timeout(Some(timeout)).unwrap();
        (&stream).write_all(b"status\n").unwrap();
        let mut answer = String::new();
        BufReader::new(&stream)
            .read_line(&mut answer)
            .unwrap_or_else(|e| panic!("no answer to `status` within {timeout:?}: {e}"));
        answer
            .trim_end()
            .strip_prefix("ok ")
            .unwrap_or_else(|| panic!("status answered {answer:?}"))
            .to_owned()
    }

    /// Whether the daemon is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().map(|s| s.is_none()).unwrap_or(false)
    }

    /// Waits at most `timeout` for the daemon to end by itself; how it ended.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = &mut self.child;
        super::poll("the daemon to end", timeout, || {
            child.try_wait().ok().flatten()
        })
    }

    pub fn control_socket(&self) -> &Path {
        &self.control
    }

    /// SIGTERM, then waits; returns whether it exited 0.
    pub fn stop(mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// SIGTERM, then waits; returns whether it exited 0, and every line it logged.
    pub fn stop_with_log(mut self) -> (bool, Vec<String>) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let ok = self.child.wait().map(|s| s.success()).unwrap_or(false);
        // The reader ends at the end of stderr, which the exit closed (bounded all the same).
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Ok(line) = self
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.lines.push(line);
        }
        (ok, std::mem::take(&mut self.lines))
    }
}

impl Drop for Door {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("=== door log ===\n{}", self.log_text());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
