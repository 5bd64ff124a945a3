//! The syntax of the configuration's value types: homeserver URLs, user ids, rooms, devices,
//! tones and GPIO lines. Each reads a string (or a number) and says in its error what a valid
//! one looks like. The devices and tones also write themselves back the way they are read
//! (`Display`, and `Serialize` through it), which is how [`super::defaults`] names them.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::{AudioEndpoint, CameraDevice, GpioLine, HomeserverUrl, RoomRef, ToneSetting, UserId};

impl<'de> Deserialize<'de> for HomeserverUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_homeserver(&s).map_err(de::Error::custom)?;
        Ok(HomeserverUrl(s.trim_end_matches('/').to_owned()))
    }
}

/// Why `s` is not a homeserver base URL, `http(s)://host[:port][/path]`: what `check` accepts,
/// `run` must be able to connect to. A user name or password in it is refused without echoing it.
pub(super) fn check_homeserver(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("expected a URL starting with https:// or http://, found {s:?}"))?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err("has a user name or password in it; no secret belongs in this file".to_owned());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{s:?} is not a valid URL: blanks and control characters are not allowed"
        ));
    }
    if authority.is_empty() {
        return Err(format!("{s:?} has no host"));
    }
    if !is_server_name(authority) {
        return Err(format!(
            "{s:?} has no valid host: expected a host name, an IP address or [IPv6], and :port if any"
        ));
    }
    if rest.contains(['?', '#']) {
        return Err(format!(
            "{s:?} is not a base URL: a query or fragment is not allowed"
        ));
    }
    Ok(())
}

/// Whether `s` is a Matrix server name (`host[:port]`): a DNS name, an IPv4 address or a
/// bracketed IPv6 address, and a port from 1 to 65535 if any. The spec's grammar; ruma checks
/// less (it lets `#:x`, `a b` or `a..b` through to the homeserver, which refuses them at run).
fn is_server_name(s: &str) -> bool {
    let (host, port) = match s.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, port)) => {
                if addr.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (None, port)
            }
            None => return false,
        },
        None => match s.find(':') {
            Some(at) => (Some(&s[..at]), &s[at..]),
            None => (Some(s), ""),
        },
    };
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.len() <= 255
            && h.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    });
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .and_then(|p| p.parse::<u16>().ok())
            .is_some_and(|p| p > 0 && !port.starts_with(":+"));
    host_ok && port_ok
}

/// Whether `s` is a room id: `!opaque:server`, or (room version 12, MSC4291) `!` and the
/// 43 characters of the create event's hash in URL-safe base64, with no server.
pub(super) fn is_room_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('!') else {
        return false;
    };
    if s.len() > 255 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    match rest.split_once(':') {
        Some((opaque, server)) => !opaque.is_empty() && is_server_name(server),
        None => {
            rest.len() == 43
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
    }
}

/// Whether `s` is a room alias, `#name:server`: a name without blanks or colons.
pub(super) fn is_room_alias(s: &str) -> bool {
    let Some((name, server)) = s.strip_prefix('#').and_then(|r| r.split_once(':')) else {
        return false;
    };
    s.len() <= 255
        && !name.is_empty()
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
        && is_server_name(server)
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = s.len() <= 255
            && s.strip_prefix('@')
                .and_then(|r| r.split_once(':'))
                .is_some_and(|(local, server)| !local.is_empty() && is_server_name(server));
        if !ok {
            return Err(de::Error::custom(format!(
                "expected a Matrix user id like \"@alice:example.org\", found {s:?}"
            )));
        }
        Ok(UserId(s))
    }
}

impl<'de> Deserialize<'de> for RoomRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let wrong = match s.chars().next() {
            Some('!') if !is_room_id(&s) => Some(
                "expected a room id like \"!abc:example.org\" (from room version 12: \"!\" and 43 letters, digits, - or _)",
            ),
            Some('#') if !is_room_alias(&s) => Some(
                "expected a room alias like \"#hall:example.org\" (a name, a colon, the server)",
            ),
            Some('!' | '#') => None,
            _ => Some("expected a room id (\"!…\") or alias (\"#room:example.org\")"),
        };
        if let Some(expected) = wrong {
            return Err(de::Error::custom(format!("{expected}, found {s:?}")));
        }
        Ok(RoomRef(s))
    }
}

impl<'de> Deserialize<'de> for CameraDevice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "test-pattern" => Ok(CameraDevice::TestPattern),
            // The command is `[camera] command`.
            "exec" => Ok(CameraDevice::Exec),
            p if p.starts_with('/') => Ok(CameraDevice::Path(PathBuf::from(p))),
            _ => Err(de::Error::custom(format!(
                "expected \"test-pattern\", \"exec\" or a device path like \"/dev/video0\", found {s:?}"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for AudioEndpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "test-tone" => Ok(AudioEndpoint::TestTone),
            "test-bursts" => Ok(AudioEndpoint::TestBursts),
            "null" => Ok(AudioEndpoint::Null),
            "" => Err(de::Error::custom(
                "expected an ALSA PCM name (\"default\", \"plughw:1,0\"), \"test-tone\" or \"null\", found an empty string",
            )),
            p => Ok(AudioEndpoint::Pcm(p.to_owned())),
        }
    }
}

impl<'de> Deserialize<'de> for ToneSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "builtin" => Ok(ToneSetting::Builtin),
            "off" => Ok(ToneSetting::Off),
            "" => Err(de::Error::custom(
                "expected \"builtin\", \"off\" or the path of a 16-bit PCM WAV file, found an empty string",
            )),
            p => Ok(ToneSetting::Wav(PathBuf::from(p))),
        }
    }
}

impl fmt::Display for CameraDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CameraDevice::TestPattern => f.write_str("test-pattern"),
            CameraDevice::Path(p) => write!(f, "{}", p.display()),
            CameraDevice::Exec => f.write_str("exec"),
        }
    }
}

impl fmt::Display for AudioEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioEndpoint::Pcm(name) => f.write_str(name),
            AudioEndpoint::TestTone => f.write_str("test-tone"),
            AudioEndpoint::TestBursts => f.write_str("test-bursts"),
            AudioEndpoint::Null => f.write_str("null"),
        }
    }
}

impl fmt::Display for ToneSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToneSetting::Builtin => f.write_str("builtin"),
            ToneSetting::Off => f.write_str("off"),
            ToneSetting::Wav(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Writes a value as the string it is read from.
macro_rules! serialize_as_written {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}
serialize_as_written!(CameraDevice, AudioEndpoint, ToneSetting);

impl<'de> Deserialize<'de> for GpioLine {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = GpioLine;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a line offset (0 to 511) or a line name like \"GPIO17\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GpioLine, E> {
                match u32::try_from(v) {
                    Ok(n) if n < 512 => Ok(GpioLine::Offset(n)),
                    _ => Err(E::custom(format!(
                        "expected a line offset from 0 to 511 or a line name like \"GPIO17\", found {v}"
                    ))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GpioLine, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GpioLine, E> {
                if v.trim().is_empty() {
                    return Err(E::custom(
                        "expected a line offset (0 to 511) or a line name like \"GPIO17\", found an empty string",
                    ));
                }
                Ok(GpioLine::Name(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for GpioLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpioLine::Offset(n) => write!(f, "{n}"),
            GpioLine::Name(s) => write!(f, "{s:?}"),
        }
    }
}
