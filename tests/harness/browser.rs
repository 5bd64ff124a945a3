//! A matrix-js-sdk peer in headless Chromium, driven by `web/peer.mjs` over JSON lines:
//! commands `{"id":N,"cmd":...}` in, one reply `{"id":N,"ok":...}` each, and events
//! `{"event":...}` whenever the page observes something.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::root;

pub struct Browser {
    pub name: String,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Value>,
    events: VecDeque<Value>,
    next_id: u64,
    console: Arc<Mutex<Vec<String>>>,
}

/// How long one command may take (a login with crypto set-up is the slowest).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

impl Browser {
    /// Starts Chromium with the page; returns once the page is loaded.
    pub fn start(name: &str, relay_only: bool) -> Browser {
        let web = root().join("tests/harness/web");
        assert!(
            web.join("dist/index.html").exists() && web.join("node_modules").exists(),
            "the browser peer is not built: run tests/setup first"
        );
        let mut cmd = Command::new("node");
        cmd.arg(web.join("peer.mjs")).args(["--name", name]);
        if relay_only {
            cmd.arg("--relay-only");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node for the browser peer: {e}"));
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let who = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("[{who}] stray stdout: {line}"),
                }
            }
        });
        let console = Arc::new(Mutex::new(Vec::new()));
        let sink = console.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut browser = Browser {
            name: name.to_owned(),
            child,
            stdin,
            lines,
            events: VecDeque::new(),
            next_id: 1,
            console,
        };
        browser.wait_event("the page to load", Duration::from_secs(60), |e| {
            e["event"] == "ready"
        });
        browser
    }

    /// Sends a command and returns its reply, or the page's error message.
    pub fn try_call(&mut self, mut command: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        command["id"] = id.into();
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if v["id"] == id => {
                    return if v["ok"] == true {
                        Ok(v)
                    } else {
                        Err(v["error"].as_str().unwrap_or("unknown error").to_owned())
                    };
                }
                Ok(v) if v.get("event").is_some() => self.events.push_back(v),
                Ok(v) => panic!("[{}] unexpected line {v}", self.name),
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "[{}] no reply to {command} within {COMMAND_TIMEOUT:?}",
                        self.name
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("[{}] the browser peer exited during {command}", self.name)
                }
            }
        }
    }

    /// Sends a command; a failure fails the test.
    pub fn call(&mut self, command: Value) -> Value {
        let what = command.to_string();
        self.try_call(command)
            .unwrap_or_else(|e| panic!("[{}] {what} failed: {e}", self.name))
    }

    /// Waits for the first event (seen or to come) that `matches`, and removes it.
    pub fn wait_event(
        &mut self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(i) = self.events.iter().position(&matches) {
            return self.events.remove(i).unwrap();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if matches(&v) => return v,
                Ok(v) => self.events.push_back(v),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "[{}] no event for {what} within {timeout:?}; events so far: {:?}",
                    self.name, self.events
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "[{}] the browser peer exited while waiting for {what}",
                        self.name
                    )
                }
            }
        }
    }

    /// Polls `stats` until `pred` holds: getStats() has no event to await.
    pub fn wait_stats(
        &mut self,
        call_id: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.call(serde_json::json!({"cmd": "stats", "call_id": call_id}));
            if pred(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "[{}] {what}: not within {timeout:?}; last stats {stats}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Forgets the events received so far (read or not).
    pub fn clear_events(&mut self) {
        self.events.clear();
        while let Ok(v) = self.lines.try_recv() {
            if v.get("event").is_none() {
                panic!("[{}] unexpected line {v}", self.name);
            }
        }
    }

    /// The browser console and driver log so far.
    pub fn console(&self) -> String {
        self.console.lock().unwrap().join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let console = self.console.lock().unwrap();
            let from = console.len().saturating_sub(120);
            eprintln!(
                "=== browser {} console ===\n{}",
                self.name,
                console[from..].join("\n")
            );
        }
        let _ = writeln!(
            self.stdin,
            "{}",
            serde_json::json!({"id": 0, "cmd": "quit"})
        );
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
