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
    // The door panel's logic (button, LED, relay) and the station that holds the core, the
    // panel and the status are held to the same rules.
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/panel.rs"));
    let station = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/station");
    let before = files.len();
    sources(&station, &mut files);
    assert!(files.len() >= before + 2, "src/station has too few files");
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
        "src/call, src/panel.rs and src/station are sans-IO, but:\n{}",
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

// ---------------------------------------------------------------------------------------------
// Imports between the configuration and the components run one way: `config` <- `settings` ->
// `media`, `rtc` (ARCHITECTURE.md). Neither side may name the other, so the cycle that once
// joined them cannot come back.

/// The modules of this crate that `code` names through `crate::`: `crate::config::X` and
/// `use crate::{call, config::X}` both name `config`. Comments are left out.
fn crate_modules_named(code: &str) -> Vec<String> {
    let code: String = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut named = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                // The items of the group at its top level.
                let (mut depth, mut item) = (0, String::new());
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            named.push(ident(&item));
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 0 {
                        item.push(c);
                    }
                }
                named.push(ident(&item));
            }
            None => named.push(ident(rest)),
        }
    }
    named.retain(|m| !m.is_empty());
    named
}

/// Where the `.rs` files under `dirs` (or the files themselves) name one of `modules`.
fn naming(dirs: &[&str], modules: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in dirs {
        let path = root.join(dir);
        if path.is_dir() {
            sources(&path, &mut files);
        } else {
            files.push(path);
        }
    }
    assert!(!files.is_empty(), "no sources under {dirs:?}");
    let mut offences = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for m in crate_modules_named(&text) {
            if modules.contains(&m.as_str()) {
                offences.push(format!("{} names crate::{m}", file.display()));
            }
        }
    }
    offences
}

#[test]
fn media_and_rtc_never_name_the_configuration() {
    let offences = naming(&["src/media", "src/rtc"], &["config", "settings"]);
    assert!(
        offences.is_empty(),
        "the components take their settings from crate::settings, which makes them from the \
         configuration:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_configuration_never_names_a_component() {
    let offences = naming(
        &["src/config"],
        &[
            "media", "rtc", "gpio", "matrix", "settings", "daemon", "cli",
        ],
    );
    assert!(
        offences.is_empty(),
        "crate::config knows the file only; crate::settings makes each component's settings \
         from it:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_import_check_catches_an_import() {
    // Guard against a scan that can never fail: each way of naming a module is found.
    for code in [
        "use crate::config::VideoDevice;",
        "use crate::{call::RoomId, config::Config};",
        "use crate::{\n    call,\n    config::{self, Config},\n};",
        "fn f(c: &crate::config::Config) {}",
    ] {
        assert!(
            crate_modules_named(code).contains(&"config".to_owned()),
            "{code:?}: {:?}",
            crate_modules_named(code)
        );
    }
    assert!(
        crate_modules_named("// use crate::config::X;\nuse crate::media::Y;")
            .iter()
            .all(|m| m == "media")
    );
    // And the scan reads real files: settings.rs, which makes the settings, names both sides.
    let settings = naming(&["src/settings.rs"], &["config", "media"]);
    assert!(settings.len() >= 2, "{settings:?}");
}

/// ARCHITECTURE.md's absences: the driver has no allow list, no status and sleeps only until the
/// station's deadline (its one interval is the watchdog's); the Matrix adapter has no allow list
/// and no notion of the daemon's start.
#[test]
fn the_driver_and_the_matrix_adapter_hold_no_policy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("src/daemon.rs")];
    sources(&root.join("src/matrix"), &mut files);
    let mut offences = Vec::new();
    for file in &files {
        let daemon = file.ends_with("daemon.rs");
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let words: &[&str] = if daemon {
                &[
                    ".allow",
                    "may_call",
                    "struct Status",
                    "tokio::time::sleep(",
                    "CallEventBody",
                ]
            } else {
                &[".allow", "may_call", "accept_invites", "SystemTime::now"]
            };
            for word in words {
                if code.contains(word) {
                    offences.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "policy outside the station:\n{}",
        offences.join("\n")
    );
}
