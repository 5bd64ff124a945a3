//! What a careless install does to the door, through the real binary: files that are devices or
//! far too large where the configuration names a file, a control socket path that holds another
//! file, a login over a store of keys, a login as root into the service's directory.
//!
//! No homeserver is needed: where the daemon must run, its homeserver (`127.0.0.1:1`) refuses
//! every connection and the session is one written here, as `intercom login` writes it. The
//! daemon starts and serves its control socket all the same, as it does while a homeserver is
//! down.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// The most address space a command here may take: enough for the daemon, and a read without a
/// bound (of `/dev/zero`) fails within a second instead of taking the machine's memory.
const ADDRESS_SPACE: u64 = 2 << 30;

/// `intercom ARGS`, with its address space bounded.
fn intercom(args: &[&str]) -> Command {
    intercom_at(Path::new(env!("CARGO_BIN_EXE_intercom")), args)
}

/// `intercom ARGS` run as `uid`: the binary is linked (or copied) into `home` first, since the
/// build's directory may be one that only its owner can enter (root's home, when root builds).
fn intercom_as(home: &Home, uid: u32, args: &[&str]) -> Command {
    let binary = home.path("intercom");
    if !binary.exists() && std::fs::hard_link(env!("CARGO_BIN_EXE_intercom"), &binary).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_intercom"), &binary).unwrap();
    }
    let mut command = intercom_at(&binary, args);
    command.uid(uid).gid(uid);
    command
}

fn intercom_at(binary: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary);
    command.args(args).stdin(Stdio::null());
    let limit = libc::rlimit {
        rlim_cur: ADDRESS_SPACE,
        rlim_max: ADDRESS_SPACE,
    };
    // SAFETY: setrlimit is async-signal-safe and touches nothing of the parent's.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    command
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A door's directory: a configuration (`extra` appended), a state directory, and (`session`)
/// a session file as `intercom login` leaves it.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new(extra: &str, session: bool) -> Home {
        let dir = tempfile::Builder::new()
            .prefix("careless-")
            .tempdir()
            .unwrap();
        let home = Home { dir };
        std::fs::create_dir(home.state()).unwrap();
        home.write_config(extra);
        if session {
            std::fs::write(
                home.state().join("session.json"),
                r#"{"homeserver": "http://127.0.0.1:1", "user_id": "@door:localhost", "device_id": "DOORDEVICE", "access_token": "syt_not_a_real_token"}"#,
            )
            .unwrap();
        }
        home
    }

    fn write_config(&self, extra: &str) {
        std::fs::write(
            self.config(),
            format!(
                "[matrix]\nhomeserver = \"http://127.0.0.1:1\"\nuser = \"@door:localhost\"\nrooms = [\"!hall:localhost\"]\nstate_dir = {:?}\n\n[camera]\ndevice = \"test-pattern\"\n\n[audio]\ncapture = \"null\"\nplayback = \"null\"\n\n[control]\nsocket = {:?}\n{extra}\n",
                self.state(),
                self.socket(),
            ),
        )
        .unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn config(&self) -> PathBuf {
        self.path("config.toml")
    }
    fn state(&self) -> PathBuf {
        self.path("state")
    }
    fn socket(&self) -> PathBuf {
        self.path("control.sock")
    }

    /// `intercom ARGS --config <this config>`.
    fn run(&self, args: &[&str]) -> Output {
        intercom(args)
            .arg("--config")
            .arg(self.config())
            .output()
            .unwrap()
    }
}

/// A sparse file of `len` bytes: as large as a limit needs, without writing it.
fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// A running daemon and its log.
struct Daemon {
    child: std::process::Child,
    log: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn start(home: &Home) -> Daemon {
        let mut child = intercom(&["run", "--config"])
            .arg(home.config())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, log) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            log,
            seen: Vec::new(),
        }
    }

    /// The next line of the log that contains `needle`; panics with the log when the daemon
    /// ends first or `WAIT` passes.
    fn wait_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self
                .log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => self.seen.push(line),
                Err(e) => panic!(
                    "no log line with {needle:?} ({e}):\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the daemon to exit by itself; returns its exit code and log. Panics with the
    /// log when it still runs after `WAIT`.
    fn wait_exit(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + WAIT;
        // Its standard error closes when it exits.
        loop {
            match self
                .log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.seen.push(line),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("the daemon still runs ({e}):\n{}", self.seen.join("\n")),
            }
        }
        // Then the process is gone or going: reaped within the same deadline.
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the daemon closed its standard error but does not exit:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let log = std::mem::take(&mut self.seen).join("\n");
        (code, log)
    }

    /// SIGTERM; waits (at most `WAIT`) for the exit; returns its exit code and log.
    fn stop(self) -> (Option<i32>, String) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: a signal to the child this test started and has not yet waited for.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        self.wait_exit()
    }

    /// The number of descriptors the daemon has open.
    fn descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the daemon until a line of its log contains `needle`; returns that line.
fn run_until_log(home: &Home, needle: &str) -> String {
    Daemon::start(home).wait_log(needle)
}

// ---------------------------------------------------------------------------------------------
// The control socket's path.

#[test]
fn a_file_where_the_control_socket_goes_is_left_alone() {
    let home = Home::new("", true);
    // The path of the socket holds an installer's file (here, a copy of the session).
    std::fs::write(home.socket(), "precious").unwrap();
    let out = home.run(&["check"]);
    let (run_code, run_log) = Daemon::start(&home).wait_exit();
    for (command, code, stderr) in [
        (
            "check",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr),
        ),
        ("run", run_code, run_log.into()),
    ] {
        assert_eq!(code, Some(78), "{command}: {stderr}");
        assert!(
            stderr.contains("control.socket")
                && stderr.contains(&home.socket().display().to_string())
                && stderr.contains("a regular file, not a socket"),
            "{command}: {stderr}"
        );
    }
    assert_eq!(std::fs::read_to_string(home.socket()).unwrap(), "precious");
}

#[test]
fn the_daemon_replaces_a_stale_socket_and_removes_only_its_own() {
    let home = Home::new("", true);
    // A socket left by a daemon that died: bound, never removed, nobody listening.
    drop(std::os::unix::net::UnixListener::bind(home.socket()).unwrap());
    let mut daemon = Daemon::start(&home);
    daemon.wait_log("ready as");
    let out = home.run(&["ring"]);
    assert!(out.status.success(), "{}", text(&out));
    // While it runs, another file takes the socket's path.
    let other = home.path("other");
    std::fs::write(&other, "not the daemon's").unwrap();
    std::fs::rename(&other, home.socket()).unwrap();
    let (code, log) = daemon.stop();
    assert_eq!(code, Some(0), "SIGTERM ends the daemon with exit 0:\n{log}");
    assert_eq!(
        std::fs::read_to_string(home.socket()).unwrap(),
        "not the daemon's"
    );
    assert!(
        log.contains("is no longer the control socket this daemon made: left alone"),
        "{log}"
    );
}

/// Clients that connect to the control socket and send nothing get at most
/// `control::MAX_CONNECTIONS` of the daemon's descriptors, each for at most
/// `control::CLIENT_TIMEOUT`; the others are told it is busy at once; then the socket serves
/// again. (Before, 1,100 idle clients took 1,100 descriptors for as long as they liked.)
#[test]
fn idle_clients_of_the_control_socket_are_bounded_and_timed_out() {
    use intercom::control::{CLIENT_TIMEOUT, MAX_CONNECTIONS};
    const CLIENTS: usize = 200;
    let home = Home::new("", true);
    let mut daemon = Daemon::start(&home);
    daemon.wait_log("ready as");
    let before = daemon.descriptors();
    let (tx, answers) = std::sync::mpsc::channel();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let stream = std::os::unix::net::UnixStream::connect(home.socket()).unwrap();
            stream.set_read_timeout(Some(WAIT)).unwrap();
            let tx = tx.clone();
            let reader = stream.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut line = String::new();
                let answer = BufReader::new(reader)
                    .read_line(&mut line)
                    .map(|_| line)
                    .map_err(|e| e.to_string());
                let _ = tx.send(answer);
            });
            stream
        })
        .collect();
    drop(tx);
    let next = || match answers.recv_timeout(WAIT) {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => panic!("a client had no answer: {e} (the daemon keeps idle clients)"),
        Err(e) => panic!("no answer ({e})"),
    };
    // Those past the bound are told at once.
    let busy = CLIENTS - MAX_CONNECTIONS;
    for _ in 0..busy {
        let line = next();
        assert!(line.starts_with("error busy"), "{line:?}");
    }
    // Meanwhile the others hold no more than their share.
    let held = daemon.descriptors();
    assert!(
        held <= before + MAX_CONNECTIONS + 4,
        "{held} descriptors with {CLIENTS} idle clients, {before} before"
    );
    // The idle ones are let go after the timeout, told why.
    for _ in 0..MAX_CONNECTIONS {
        let line = next();
        assert_eq!(
            line.trim_end(),
            format!("error no command within {}s", CLIENT_TIMEOUT.as_secs())
        );
    }
    drop(clients);
    let out = home.run(&["ring"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok pressed");
    let after = daemon.descriptors();
    assert!(
        after <= before + 4,
        "{after} descriptors after, {before} before"
    );
    let (code, log) = daemon.stop();
    assert_eq!(code, Some(0), "{log}");
}

// ---------------------------------------------------------------------------------------------
// `intercom status`.

/// `intercom status` as `uid` (`None`: as this test).
fn status(home: &Home, uid: Option<u32>) -> Output {
    let mut command = match uid {
        Some(uid) => intercom_as(home, uid, &["status", "--socket"]),
        None => intercom(&["status", "--socket"]),
    };
    command.arg(home.socket());
    command.output().unwrap()
}

#[test]
fn intercom_status_shows_the_door_or_says_why_it_cannot() {
    let home = Home::new("\n[call]\nring_timeout = \"1s\"\n", true);
    let socket = home.socket().display().to_string();
    // No daemon: nothing at the socket's path.
    let out = status(&home, None);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{socket}: no such socket"))
            && stderr.contains("the intercom daemon is not running"),
        "{}",
        text(&out)
    );
    // A stopped daemon's socket.
    drop(std::os::unix::net::UnixListener::bind(home.socket()).unwrap());
    let out = status(&home, None);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "{socket}: nobody listens on it: the intercom daemon is not running"
        )),
        "{}",
        text(&out)
    );

    let mut daemon = Daemon::start(&home);
    daemon.wait_log("ready as");
    daemon.wait_log("homeserver unreachable");
    let out = status(&home, None);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "state: Idle",
        "homeserver: unreachable (",
        "rooms: !hall:localhost",
        "last call: none since the daemon started",
        "missing: the homeserver",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(line)),
            "no line {line:?}:\n{stdout}"
        );
    }
    // A call that nobody answers (the homeserver is down), then the last call says so.
    let out = home.run(&["ring"]);
    assert!(out.status.success(), "{}", text(&out));
    let ended = daemon.wait_log("call ended: NoAnswer");
    let out = status(&home, None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("intercom status after a call:\n{stdout}");
    let last = stdout
        .lines()
        .find(|l| l.starts_with("last call: "))
        .unwrap_or_else(|| panic!("no last call:\n{stdout}"));
    assert!(
        last.contains(": no answer (last state: Calling 1 room(s)); ended ")
            && last.ends_with("s ago"),
        "{last}\n{ended}"
    );

    // Someone who may not use the socket is told so (the socket is the service's user's and
    // group's, mode 0660: here root's).
    if unsafe { libc::geteuid() } == 0 {
        use std::os::unix::fs::PermissionsExt;
        let open = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(home.dir.path(), open).unwrap();
        let out = status(&home, Some(65534));
        assert_eq!(out.status.code(), Some(69), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!(
                "{socket}: permission denied: this user may not use the control socket"
            )),
            "{}",
            text(&out)
        );
    } else {
        println!("not root: the permission case needs another user and is left out");
    }
    let (code, log) = daemon.stop();
    assert_eq!(code, Some(0), "{log}");
}

// ---------------------------------------------------------------------------------------------
// Logins over what an earlier one left, and as the wrong user.

#[test]
fn login_keeps_an_earlier_store_unless_told_to_discard_it() {
    let home = Home::new("", false);
    let store = home.state().join("store");
    std::fs::create_dir(&store).unwrap();
    let keys = store.join("matrix-sdk-crypto.sqlite3");
    std::fs::write(&keys, "an earlier device's keys").unwrap();
    let password = home.path("password");
    std::fs::write(&password, "secret\n").unwrap();
    let password = password.to_str().unwrap();
    // Refused, named, and left alone.
    let out = home.run(&["login", "--password-file", password]);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{} holds the stores of an earlier login",
            store.display()
        )) && stderr.contains("intercom login --discard-store"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&keys).unwrap(),
        "an earlier device's keys"
    );
    // Asked for: discarded, then the login is tried (the homeserver is down here).
    let out = home.run(&["login", "--password-file", password, "--discard-store"]);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("removing {} (--discard-store)", store.display()))
            && stderr.contains("cannot log @door:localhost in on http://127.0.0.1:1"),
        "{}",
        text(&out)
    );
    // A login that fails leaves no stores behind: the next one is not refused for them.
    assert!(!store.exists(), "the failed login left {}", store.display());
    let out = home.run(&["login", "--password-file", password]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot log @door:localhost in"),
        "{}",
        text(&out)
    );
    assert!(!store.exists());
}

#[test]
fn login_into_another_user_s_state_directory_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("not root: giving the state directory to another user needs root; left out");
        return;
    }
    const NOBODY: u32 = 65534;
    let home = Home::new("", false);
    std::os::unix::fs::chown(home.state(), Some(NOBODY), Some(NOBODY)).unwrap();
    // `sudo intercom login`: refused before a password is asked, nothing made.
    let out = home.run(&["login"]);
    assert_eq!(out.status.code(), Some(69), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{} belongs to nobody (uid 65534), but this runs as root (uid 0)",
            home.state().display()
        )) && stderr.contains("`sudo -u nobody intercom login`")
            && !stderr.contains("password"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_dir(home.state()).unwrap().count(), 0);
    // As its owner, the login goes on (to the homeserver, down here).
    let readable = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(home.dir.path(), readable).unwrap();
    let readable = std::fs::Permissions::from_mode(0o644);
    std::fs::set_permissions(home.config(), readable.clone()).unwrap();
    let password = home.path("password");
    std::fs::write(&password, "secret\n").unwrap();
    std::fs::set_permissions(&password, readable).unwrap();
    let out = intercom_as(&home, NOBODY, &["login", "--password-file"])
        .arg(&password)
        .arg("--config")
        .arg(home.config())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot log @door:localhost in"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_dir(home.state()).unwrap().count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Every file read has a bound.

#[test]
fn a_device_as_ringtone_is_a_config_error_not_a_read_of_for_ever() {
    let home = Home::new("", false);
    for (setting, why) in [
        ("/dev/zero", "not a regular file"),
        ("/dev/null", "not a regular file"),
    ] {
        let config = std::fs::read_to_string(home.config()).unwrap().replace(
            "playback = \"null\"",
            &format!("playback = \"null\"\nringtone = {setting:?}"),
        );
        std::fs::write(home.config(), config).unwrap();
        let out = home.run(&["check"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{}", text(&out));
        assert!(
            stderr.contains("audio.ringtone") && stderr.contains(setting) && stderr.contains(why),
            "{}",
            text(&out)
        );
        assert!(
            stderr.contains("4 MiB"),
            "the limit is named: {}",
            text(&out)
        );
        home.write_config("");
    }
    // A WAV file past the limit.
    let big = home.path("ring.wav");
    sparse(&big, (4 << 20) + 1);
    let config = std::fs::read_to_string(home.config()).unwrap().replace(
        "playback = \"null\"",
        &format!("playback = \"null\"\nringback = {big:?}"),
    );
    std::fs::write(home.config(), config).unwrap();
    let out = home.run(&["check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        stderr.contains("audio.ringback") && stderr.contains("more than 4 MiB"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_oversized_or_device_configuration_is_refused() {
    let home = Home::new("", false);
    // Valid TOML past the limit: a comment of a mebibyte.
    let mut config = std::fs::read_to_string(home.config()).unwrap();
    config.push_str(&format!("# {}\n", "x".repeat(1 << 20)));
    std::fs::write(home.config(), config).unwrap();
    let out = home.run(&["check"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&home.config().display().to_string()) && stderr.contains("more than 1 MiB"),
        "{}",
        text(&out)
    );
    let out = intercom(&["check", "--config", "/dev/zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "/dev/zero: cannot read the configuration: a character device, not a regular file"
        ),
        "{}",
        text(&out)
    );
}

#[test]
fn password_files_and_standard_input_are_bounded() {
    let home = Home::new("", false);
    let out = home.run(&["login", "--password-file", "/dev/zero"]);
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("password file /dev/zero") && stderr.contains("not a regular file"),
        "{}",
        text(&out)
    );
    // A password on standard input is one line of at most 4 KiB.
    let out = intercom(&["login", "--config"])
        .arg(home.config())
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("standard input") && stderr.contains("4 KiB"),
        "{}",
        text(&out)
    );
    // Nothing was tried: no store was made for a password never read.
    assert!(!home.state().join("store").exists());
}

#[test]
fn an_oversized_session_file_is_named_with_its_limit() {
    let home = Home::new("", false);
    let session = home.state().join("session.json");
    sparse(&session, (64 << 10) + 1);
    let (code, stderr) = Daemon::start(&home).wait_exit();
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&session.display().to_string()) && stderr.contains("more than 64 KiB"),
        "{stderr}"
    );
}

#[test]
fn a_device_as_turn_credential_file_is_named_with_its_limit() {
    let home = Home::new(
        "[turn]\nuris = [\"turn:127.0.0.1:3478\"]\nusername = \"door\"\ncredential_file = \"/dev/zero\"\n",
        true,
    );
    let line = run_until_log(&home, "/dev/zero");
    assert!(
        line.contains("TURN credential file /dev/zero")
            && line.contains("not a regular file")
            && line.contains("4 KiB"),
        "{line}"
    );
}
