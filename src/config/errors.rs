//! [`ConfigError`], and putting a problem into the user's words at the line and key it is
//! about: located, with the key's default, never with a secret's value.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::defaults;

/// A problem with the configuration, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the file could not be read at all.
    pub line: usize,
    /// The dotted key (`call.ring_timeout`); empty when the problem is not with one key.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Keys that would hold a secret. They are refused wherever they appear, with their value left
/// out of the message.
const SECRET_KEYS: &[&str] = &[
    "password",
    "access_token",
    "token",
    "secret",
    "credential",
    "recovery_key",
];

/// The text being loaded, for locating keys in it.
pub(super) struct Doc<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

impl Doc<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text[..offset].bytes().filter(|&b| b == b'\n').count() + 1
    }

    /// The span of `key` (dotted) in the document: of its value when present, else of the
    /// nearest enclosing table that is.
    fn span_of(&self, key: &str) -> Option<Range<usize>> {
        let root = toml::de::DeTable::parse(self.text).ok()?;
        let mut table = root.get_ref();
        let mut found = None;
        for part in key.split('.') {
            let (k, v) = table.get_key_value(part)?;
            found = Some(k.span());
            match v.get_ref() {
                toml::de::DeValue::Table(t) => table = t,
                _ => break,
            }
        }
        found
    }

    pub(super) fn at(&self, key: &str, message: &str) -> ConfigError {
        let line = self.span_of(key).map_or(1, |s| self.line_of(s.start));
        self.error(line, key, message.to_owned())
    }

    fn error(&self, line: usize, key: &str, mut message: String) -> ConfigError {
        if let Some(d) = defaults::written(key) {
            message.push_str(&format!(" (default: {d})"));
        }
        ConfigError {
            file: self.path.to_owned(),
            line,
            key: key.to_owned(),
            message,
        }
    }

    /// Turns a parser or serde error into a located one, in our words.
    pub(super) fn toml_error(&self, e: &toml::de::Error, key: &str) -> ConfigError {
        let line = e.span().map_or(1, |s| self.line_of(s.start));
        let raw = e.message().trim().to_owned();
        let mut key = key.to_owned();
        let message = if let Some(field) = between(&raw, "missing field `", "`") {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(field);
            format!("is required but missing{}", example_of(&key))
        } else if let Some(field) = between(&raw, "unknown field `", "`") {
            if !key.ends_with(field) {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(field);
            }
            let expected = raw
                .split_once("expected ")
                .map(|(_, e)| format!("; expected {e}"))
                .unwrap_or_default();
            format!("unknown key{expected}")
        } else if let Some(v) = between(&raw, "unknown variant `", "`") {
            let expected = raw
                .split_once("expected ")
                .map(|(_, e)| e.to_owned())
                .unwrap_or_default();
            format!("expected {expected}, found {v:?}")
        } else if let Some(t) = raw.strip_prefix("invalid type: ") {
            match t.split_once(", expected ") {
                Some((found, expected)) => {
                    format!("expected {}, found {found}", plain_type(expected))
                }
                None => raw.clone(),
            }
        } else {
            raw.clone()
        };
        self.error(line, &key, message)
    }

    /// Refuses keys that would hold a secret, without echoing their value.
    pub(super) fn refuse_secrets(
        &self,
        table: &toml::de::DeTable,
        prefix: &str,
    ) -> Result<(), ConfigError> {
        for (k, v) in table {
            let name = k.get_ref().as_ref();
            let key = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            };
            if SECRET_KEYS.contains(&name) {
                let advice = if name == "password" && prefix == "matrix" {
                    "run `intercom login`, which asks for the password once and keeps only the session in the state directory"
                } else {
                    "keep it in a file readable only by the service and name that file instead"
                };
                return Err(self.error(
                    self.line_of(k.span().start),
                    &key,
                    format!("secrets do not belong in the configuration file: {advice}"),
                ));
            }
            if let toml::de::DeValue::Table(t) = v.get_ref() {
                self.refuse_secrets(t, &key)?;
            }
        }
        Ok(())
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &s[s.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// serde's names for Rust types, in words a user knows.
fn plain_type(expected: &str) -> &str {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number",
        "i8" | "i16" | "i32" | "i64" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" | "bool" => "true or false",
        "a sequence" => "a list, like [\"…\"]",
        other => other,
    }
}

fn example_of(key: &str) -> &'static str {
    match key {
        "matrix" => ": add a [matrix] section with homeserver, user and rooms",
        "matrix.homeserver" => ", like homeserver = \"https://matrix.example.org\"",
        "matrix.user" => ", like user = \"@door:example.org\"",
        "matrix.rooms" => ", like rooms = [\"!abc:example.org\"]",
        "button.line" | "door.line" | "led.line" => ", like line = 17 or line = \"GPIO17\"",
        "turn.uris" => ", like uris = [\"turn:turn.example.org:3478\"]",
        _ => "",
    }
}
