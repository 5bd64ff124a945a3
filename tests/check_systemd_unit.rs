//! The systemd unit: what the daemon relies on is there, and its exposure is at most 2.0.

use std::path::Path;
use std::process::Command;

fn unit() -> (std::path::PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/intercom.service");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

#[test]
fn unit_has_what_the_daemon_relies_on() {
    let (_, text) = unit();
    for line in [
        "Type=notify",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "SupplementaryGroups=video audio gpio",
        "StateDirectory=intercom",
        "ConfigurationDirectory=intercom",
        "RuntimeDirectory=intercom",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "DevicePolicy=closed",
        "LogRateLimitIntervalSec=30s",
        "LogRateLimitBurst=10000",
    ] {
        assert!(text.lines().any(|l| l.trim() == line), "missing {line}");
    }
    assert!(text.lines().any(|l| l.starts_with("WatchdogSec=")));
    // The control socket the daemon listens on by default sits in the runtime directory.
    assert!(text.contains("RuntimeDirectory=intercom"));
    let default_socket = "/run/intercom/control.sock";
    let config =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/intercom.toml"))
            .unwrap();
    assert!(config.contains(default_socket));
}

/// `intercom check` before the daemon kept the door dead whenever anything it checks was
/// missing (the homeserver, DNS, the camera), and a broken configuration found there restarted
/// forever (RestartPreventExitStatus applies to the main process only). The daemon starts with
/// whatever works, and validates its configuration itself.
#[test]
fn the_daemon_starts_without_a_check_before_it() {
    let (_, text) = unit();
    let directives: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert!(
        !directives.iter().any(|l| l.starts_with("ExecStartPre")),
        "the unit runs something before the daemon"
    );
    let start: Vec<&&str> = directives
        .iter()
        .filter(|l| l.starts_with("ExecStart="))
        .collect();
    assert_eq!(start.len(), 1, "{start:?}");
    assert!(start[0].contains("intercom run"), "{}", start[0]);
}

#[test]
fn exposure_is_at_most_two() {
    let (path, _) = unit();
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package) is needed: run tests/setup");
    let text = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for intercom.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure in:\n{text}"));
    println!("intercom.service exposure: {exposure}");
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0:\n{text}");
}

/// The mode postinst gives a directory, from its `chmod MODE DIR` line.
fn postinst_mode(dir: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("cross/deb/postinst");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .find_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words.len() == 3 && words[0] == "chmod" && words[2] == dir)
                .then(|| words[1].to_owned())
        })
        .unwrap_or_else(|| panic!("postinst sets no mode on {dir}"))
}

#[test]
fn configuration_directory_mode_agrees_with_postinst() {
    // systemd warns at every start when the directory's mode is not the unit's (default 0755).
    let (_, text) = unit();
    let unit_mode = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("ConfigurationDirectoryMode="))
        .unwrap_or("0755 (the default)");
    assert_eq!(unit_mode, postinst_mode("/etc/intercom"));
}
