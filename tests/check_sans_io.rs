//! The invariant of ARCHITECTURE.md: `src/call/` is sans-IO. It imports no runtime, Matrix,
//! WebRTC or device crate, never reads the clock, never sleeps, spawns or touches files,
//! sockets or processes. This test reads the sources and fails on any line that reaches out.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "matrix_sdk",
    "ruma",
    "webrtc",
    "rtc::",
    "alsa",
    "v4l",
    "v4l2r",
    "gpiocdev",
    "opus",
    "openh264",
    "sd_notify",
    "log::",
    "tracing",
    "Instant::now",
    "SystemTime::now",
    "std::thread",
    "thread::spawn",
    "thread::sleep",
    "std::fs",
    "std::net",
    "std::process",
    "std::io",
    "std::env",
    "rand::",
    "crate::daemon",
    "crate::matrix",
    "crate::rtc",
    "crate::media",
    "crate::gpio",
    "crate::control",
];

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn call_core_reaches_for_nothing_outside() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/call");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() >= 3, "src/call has {} files", files.len());
    // The door panel's logic (button, LED, relay) is held to the same rules.
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/panel.rs"));
    let mut offences = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    offences.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "src/call and src/panel.rs are sans-IO, but:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_check_itself_catches_an_offence() {
    // Guard against a check that can never fail: the same scan finds the clock in daemon.rs.
    let daemon =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/daemon.rs"))
            .unwrap();
    assert!(FORBIDDEN.iter().any(|w| daemon.contains(w)));
}
