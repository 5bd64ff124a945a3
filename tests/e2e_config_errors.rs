//! `intercom check` on broken configurations: each file under tests/configs/ says on its first
//! line what the error must be (`# expect: LINE: key: message`); the binary must print exactly
//! that location and exit 78 (EX_CONFIG).

use std::path::Path;
use std::process::Command;

fn check(config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_intercom"))
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("running intercom check")
}

#[test]
fn every_broken_config_is_located_and_exits_78() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no '# expect:' line", path.display()));
        let out = check(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let wanted = format!("{}:{expect}", path.display());
        assert!(
            stderr.contains(&wanted),
            "{}:\n  wanted: {wanted}\n  stderr: {stderr}",
            path.display()
        );
        assert_eq!(out.status.code(), Some(78), "{}: {stderr}", path.display());
        cases += 1;
    }
    assert!(cases >= 10, "only {cases} broken configs found");
}

/// The daemon validates its configuration itself (the unit runs no `check` before it): every
/// broken configuration makes `intercom run` exit 78, which the unit does not restart, with the
/// same located error, before it needs a session or a homeserver.
#[test]
fn every_broken_config_makes_run_exit_78() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_intercom"))
            .args(["run", "--config"])
            .arg(&path)
            .env_remove("NOTIFY_SOCKET")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let wanted = format!("{}:{expect}", path.display());
        assert!(
            stderr.contains(&wanted),
            "{}:\n  wanted: {wanted}\n  stderr: {stderr}",
            path.display()
        );
        assert_eq!(out.status.code(), Some(78), "{}: {stderr}", path.display());
        cases += 1;
    }
    assert!(cases >= 10, "only {cases} broken configs found");
}

#[test]
fn secrets_never_reach_the_output() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/password.toml");
    let out = check(&path);
    let all = [out.stdout, out.stderr].concat();
    assert!(!String::from_utf8_lossy(&all).contains("correct horse"));
}

#[test]
fn shipped_example_is_valid_and_check_names_what_is_missing() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/intercom.toml");
    let dir = tempfile::tempdir().unwrap();
    // Point the state directory at a real, empty directory: then exactly the session, the
    // camera and the hardware lines are missing on a machine without a Pi's devices.
    let text = std::fs::read_to_string(&example)
        .unwrap()
        .replace("\"/var/lib/intercom\"", &format!("{:?}", dir.path()));
    let config = dir.path().join("config.toml");
    std::fs::write(&config, text).unwrap();
    let out = check(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok      configuration"), "{stdout}");
    assert!(stdout.contains("ok      state directory"), "{stdout}");
    assert!(
        stdout.contains("MISSING Matrix session") && stdout.contains("run `intercom login`"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}");
}
