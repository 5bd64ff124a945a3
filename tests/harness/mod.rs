//! The test harness: real components, started by the tests themselves, on loopback.
//!
//! - [`synapse::Synapse`]: Synapse from PyPI (a pinned version in a venv the set-up script
//!   makes), SQLite, a generated config, users registered through the shared-secret admin API.
//! - [`coturn::Coturn`]: Debian's coturn, wired into Synapse with `turn_uris` and
//!   `turn_shared_secret`.
//! - [`browser::Browser`]: matrix-js-sdk (the engine of Element Web) in Debian's headless
//!   Chromium, driven by `web/peer.mjs` over JSON lines.
//! - [`netns::isolated`]: every network test re-runs itself in a network namespace that has only
//!   `lo`, so that every ICE candidate is loopback and nothing leaves the machine.
//!
//! - [`virtual_time`]: the `virtual_*` tests' harness (the core and the panel on a clock the
//!   test moves), loaded on its own by them with `#[path]`.
//!
//! Each component has its own temp dir and ports, kills exactly the processes it started, and
//! prints its log (Synapse's, the browser's console) when the test fails.

#![allow(dead_code)]

pub mod browser;
pub mod call_events;
pub mod client;
pub mod coturn;
pub mod door;
pub mod garbage;
pub mod netns;
pub mod procfs;
pub mod proxy;
pub mod rng;
pub mod synapse;
pub mod virtual_time;
pub mod world;

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A TCP port that was free a moment ago, on 127.0.0.1.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port free for both UDP and TCP (TURN listens on both).
pub fn free_udp_tcp_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Calls `f` until it returns `Some`, or panics with `what` after `timeout`. For readiness that
/// no event announces (a server's port); never for things that send an event.
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Random bytes from the kernel, for secrets and keys.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    buf
}

/// A random alphanumeric string.
pub fn random_string(n: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    random_bytes(n)
        .into_iter()
        .map(|b| CHARS[b as usize % CHARS.len()] as char)
        .collect()
}

/// Unpadded standard base64, as Synapse's signing keys are written.
pub fn base64_unpadded(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | b as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The last `n` lines of a file, for failure reports.
pub fn tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
