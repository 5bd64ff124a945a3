//! The configuration's unit tests: parsing, locating errors, defaults, the shipped example.

use std::path::Path;
use std::time::Duration;

use super::values::{check_homeserver, is_room_alias, is_room_id};
use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("t.toml"), text)
}

const MINIMAL: &str = "[matrix]\nhomeserver = \"https://hs.example\"\nuser = \"@door:hs.example\"\nrooms = [\"!r:hs.example\"]\n";

#[test]
fn minimal_config_takes_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.call.incoming, IncomingPolicy::Ring);
    assert_eq!(c.call.ring_timeout, Duration::from_secs(45));
    assert_eq!(c.camera.device, CameraDevice::Path("/dev/video0".into()));
    assert!(c.button.is_none());
    assert_eq!(c.matrix.homeserver.0, "https://hs.example");
}

#[test]
fn durations() {
    assert_eq!(duration::parse("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(duration::parse("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(duration::parse("5m"), Ok(Duration::from_secs(300)));
    assert!(duration::parse("5").is_err());
    assert!(duration::parse("five s").is_err());
    assert!(duration::parse("3 fortnights").is_err());
}

#[test]
fn camera_bitrate_and_command() {
    assert_eq!(bitrate::parse("1500kbit"), Ok(1_500_000));
    assert_eq!(bitrate::parse("1.5Mbit"), Ok(1_500_000));
    assert_eq!(bitrate::parse("800000"), Ok(800_000));
    assert!(bitrate::parse("fast").is_err());
    assert!(bitrate::parse("3 fortnights").is_err());
    let c = parse(&format!("{MINIMAL}[camera]\nmax_bitrate = 900000\n")).unwrap();
    assert_eq!(c.camera.max_bitrate, 900_000);
    assert_eq!(parse(MINIMAL).unwrap().camera.max_bitrate, 2_000_000);
    let e = parse(&format!("{MINIMAL}[camera]\nmax_bitrate = \"10kbit\"\n")).unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (6, "camera.max_bitrate"), "{e}");

    let c = parse(&format!(
        "{MINIMAL}[camera]\ndevice = \"exec\"\ncommand = [\"rpicam-vid\", \"-o\", \"-\"]\n"
    ))
    .unwrap();
    assert_eq!(c.camera.device, CameraDevice::Exec);
    assert_eq!(c.camera.command, ["rpicam-vid", "-o", "-"]);
    let e = parse(&format!("{MINIMAL}[camera]\ndevice = \"exec\"\n")).unwrap_err();
    assert_eq!(e.key, "camera.command", "{e}");
    assert!(e.message.contains("rpicam-vid"), "{e}");
    let e = parse(&format!("{MINIMAL}[camera]\ncommand = [\"x\"]\n")).unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (6, "camera.command"), "{e}");
}

#[test]
fn nested_unknown_key_is_located() {
    let e = parse(&format!("{MINIMAL}[call]\nring_timout = \"3s\"\n")).unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (6, "call.ring_timout"), "{e}");
    assert!(e.message.starts_with("unknown key; expected"), "{e}");
}

#[test]
fn secrets_are_refused_without_their_value() {
    let e = parse(&format!("{MINIMAL}password = \"hunter2\"\n")).unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (5, "matrix.password"));
    assert!(!e.to_string().contains("hunter2"));
}

#[test]
fn rooms_and_homeservers_check_accepts_run_can_use() {
    use matrix_sdk::reqwest::Url;
    use matrix_sdk::ruma::{RoomAliasId, RoomId};
    let v12 = format!("!{}", "aB3-_".repeat(8) + "xyz");
    for id in [
        "!abc:example.org",
        "!abc:example.org:8448",
        "!a:127.0.0.1",
        "!a:[::1]:8008",
        v12.as_str(),
    ] {
        assert!(is_room_id(id), "{id}");
        assert!(RoomId::parse(id).is_ok(), "{id}");
    }
    for id in [
        "!",
        "!r",
        "!:x",
        "!a:",
        "!a:a b",
        "!a :x",
        "!a:x:0",
        "!a:[nope]",
        &v12[..43],
    ] {
        assert!(!is_room_id(id), "{id}");
    }
    for alias in [
        "#hall:example.org",
        "#haus-tür:example.org:8448",
        "#a:[::1]",
    ] {
        assert!(is_room_alias(alias), "{alias}");
        assert!(RoomAliasId::parse(alias).is_ok(), "{alias}");
    }
    for alias in [
        "#:x",
        "#hall",
        "#hall:",
        "#a b:x",
        "#a:-x",
        "#a:x..y",
        "#a:x:99999",
    ] {
        assert!(!is_room_alias(alias), "{alias}");
    }
    for url in [
        "https://matrix.example.org",
        "http://127.0.0.1:8008/",
        "https://[::1]:8448/prefix",
    ] {
        assert_eq!(check_homeserver(url), Ok(()), "{url}");
        assert!(Url::parse(url).unwrap().host().is_some(), "{url}");
    }
    for (url, why) in [
        ("https://a b/c", "blanks"),
        ("https://", "no host"),
        ("https:///x", "no host"),
        ("https://a_b", "no valid host"),
        ("https://x:0", "no valid host"),
        ("https://x:port", "no valid host"),
        ("https://x/?y", "query"),
        ("ftp://x", "https://"),
    ] {
        let e = check_homeserver(url).unwrap_err();
        assert!(e.contains(why), "{url}: {e}");
    }
    let e = check_homeserver("https://door:hunter2@x").unwrap_err();
    assert!(e.contains("password") && !e.contains("hunter2"), "{e}");
    let e = parse(&MINIMAL.replace("@door:hs.example", "@door:hs example")).unwrap_err();
    assert_eq!(e.key, "matrix.user", "{e}");
}

/// The keys serde accepts in `section` ("" for the top level), read from its own
/// unknown-key message, so that this list can never fall behind the types.
fn accepted_keys(section: &str) -> Vec<String> {
    let text = if section.is_empty() {
        format!("{MINIMAL}[zz_probe]\n")
    } else if section == "matrix" {
        format!("{MINIMAL}zz_probe = 1\n")
    } else {
        format!("{MINIMAL}[{section}]\nzz_probe = 1\n")
    };
    let e = parse(&text).unwrap_err();
    let list = e.message.split_once("expected ").expect(&e.message).1;
    list.trim_start_matches("one of ")
        .split(", ")
        .map(|k| k.trim_matches('`').to_owned())
        .collect()
}

#[test]
fn every_key_is_documented_in_the_shipped_example() {
    let example = include_str!("../../config/intercom.toml");
    // Sections and keys as written, active or commented out: "[call]", "# [door]", "# pulse = …".
    let mut section = String::new();
    let mut documented = Vec::new();
    for line in example.lines() {
        let bare = line.trim_start_matches('#').trim();
        if let Some(name) = bare.strip_prefix('[').and_then(|b| b.strip_suffix(']')) {
            section = name.to_owned();
            documented.push(section.clone());
        } else if let Some((key, _)) = bare.split_once(" = ") {
            documented.push(format!("{section}.{}", key.trim()));
        }
    }
    let sections = accepted_keys("");
    assert!(sections.len() >= 9, "{sections:?}");
    for s in &sections {
        assert!(
            documented.contains(s),
            "[{s}] is not in config/intercom.toml"
        );
        for k in accepted_keys(s) {
            let key = format!("{s}.{k}");
            assert!(
                documented.contains(&key),
                "{key} is not in config/intercom.toml"
            );
        }
    }
}

/// The keys whose messages name no default, and why. Every other key has one in
/// [`defaults::written`].
const NO_DEFAULT_IN_MESSAGES: &[(&str, &str)] = &[
    ("matrix.homeserver", "required"),
    ("matrix.user", "required"),
    ("matrix.rooms", "required"),
    ("button.line", "required in [button]"),
    ("led.line", "required in [led]"),
    ("door.line", "required in [door]"),
    ("turn.uris", "required in [turn]"),
    ("turn.username", "optional, nothing in its place"),
    ("turn.credential_file", "optional, nothing in its place"),
    (
        "camera.command",
        "empty unless device = \"exec\"; its messages say what to write instead",
    ),
];

#[test]
fn every_default_a_message_names_reads_back_as_the_one_serde_uses() {
    // What a section needs to be there at all.
    let required = |section: &str| match section {
        "button" => "line = 17\n",
        "led" => "line = 27\n",
        "door" => "line = 22\n",
        "turn" => "uris = [\"turn:turn.example\"]\n",
        _ => "",
    };
    let with = |section: &str, lines: &str| {
        if section == "matrix" {
            format!("{MINIMAL}{lines}")
        } else if lines.is_empty() {
            // Left out: the section's `Default`, which must agree key by key.
            MINIMAL.to_owned()
        } else {
            format!("{MINIMAL}[{section}]\n{lines}")
        }
    };
    let mut checked = 0;
    for section in accepted_keys("") {
        for key in accepted_keys(&section) {
            let dotted = format!("{section}.{key}");
            let Some(text) = defaults::written(&dotted) else {
                assert!(
                    NO_DEFAULT_IN_MESSAGES.iter().any(|(k, _)| *k == dotted),
                    "{dotted}: give it a default in config/defaults.rs or say why it has none"
                );
                continue;
            };
            let left_out = parse(&with(&section, required(&section)))
                .unwrap_or_else(|e| panic!("{dotted} left out: {e}"));
            let written = with(&section, &format!("{}{key} = {text}\n", required(&section)));
            let written = parse(&written).unwrap_or_else(|e| panic!("{dotted} = {text}: {e}"));
            assert_eq!(
                format!("{written:?}"),
                format!("{left_out:?}"),
                "{dotted} = {text}, the default its messages name, is not the default serde uses"
            );
            checked += 1;
        }
    }
    assert!(checked >= 38, "only {checked} defaults checked");
    for (key, _) in NO_DEFAULT_IN_MESSAGES {
        assert_eq!(defaults::written(key), None, "{key}");
        let (section, name) = key.split_once('.').unwrap();
        assert!(
            accepted_keys(section).iter().any(|k| k == name),
            "{key} is no key"
        );
    }
}

#[test]
fn a_message_names_the_keys_default() {
    let e = parse(&format!("{MINIMAL}[door]\nline = 22\npulse = \"1ms\"\n")).unwrap_err();
    assert_eq!(e.key, "door.pulse", "{e}");
    assert!(e.message.ends_with(" (default: \"2s\")"), "{e}");
    assert_eq!(defaults::pulse(), crate::call::DEFAULT_PULSE);
    let e = parse(&format!("{MINIMAL}[camera]\nmax_bitrate = \"10kbit\"\n")).unwrap_err();
    assert!(e.message.ends_with(" (default: \"2000kbit\")"), "{e}");
}
