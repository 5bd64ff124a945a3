//! The configuration file: one TOML document, typed with serde.
//!
//! Every option is documented in `config/intercom.toml`, which a test keeps in step with this
//! module. Loading never half-succeeds: either every key is known, well-typed and valid, or the
//! first problem comes back as a [`ConfigError`] that names the file, the line, the key, what was
//! expected and the default. Unknown keys are errors, so a typo never passes silently. No secret
//! is ever read from this file, and none appears in an error.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// Where `intercom` looks for its configuration when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/intercom/config.toml";

/// The largest configuration file read: the documented example, every option explained, is
/// 10 kB.
pub const MAX_SIZE: u64 = 1 << 20;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub matrix: MatrixConfig,
    #[serde(default)]
    pub call: CallConfig,
    #[serde(default)]
    pub camera: CameraConfig,
    #[serde(default)]
    pub audio: AudioConfig,
    #[serde(default)]
    pub button: Option<ButtonConfig>,
    #[serde(default)]
    pub led: Option<LedConfig>,
    #[serde(default)]
    pub door: Option<DoorConfig>,
    #[serde(default)]
    pub turn: Option<TurnConfig>,
    #[serde(default)]
    pub control: ControlConfig,
    #[serde(default)]
    pub log: LogConfig,
}

/// `[matrix]`: the account of the door, the rooms it rings and who may call it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixConfig {
    pub homeserver: HomeserverUrl,
    pub user: UserId,
    pub rooms: Vec<RoomRef>,
    #[serde(default)]
    pub allow: Vec<UserId>,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_device_name")]
    pub device_name: String,
    #[serde(default = "default_true")]
    pub accept_invites: bool,
}

/// What the door does with an incoming call from an allow-listed user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IncomingPolicy {
    /// Answer at once: look at the door.
    AutoAnswer,
    /// Ring the door's speaker; answer when the button is pressed within the ring timeout.
    Ring,
    /// Reject every incoming call.
    Reject,
}

/// What a press of the button does while a call is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PressDuringCall {
    Ignore,
    Hangup,
}

/// `[call]`: policy and time limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallConfig {
    #[serde(default = "default_incoming")]
    pub incoming: IncomingPolicy,
    #[serde(default = "default_ring_timeout", with = "duration")]
    pub ring_timeout: Duration,
    #[serde(default = "default_max_length", with = "duration")]
    pub max_length: Duration,
    #[serde(default = "default_true")]
    pub video: bool,
    #[serde(default = "default_press_during_call")]
    pub press_during_call: PressDuringCall,
    /// Post a picture of the camera, mentioning the people to ring, into each rung room.
    #[serde(default = "default_true")]
    pub snapshot: bool,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            incoming: default_incoming(),
            ring_timeout: default_ring_timeout(),
            max_length: default_max_length(),
            video: true,
            press_during_call: default_press_during_call(),
            snapshot: true,
        }
    }
}

/// `[camera]`: a V4L2 device, or the built-in moving test pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    #[serde(default = "default_camera_device")]
    pub device: VideoDevice,
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// With `device = "exec"`: the program and its arguments, writing H.264 to stdout.
    #[serde(default)]
    pub command: Vec<String>,
    /// The most the door's video may take, in bits a second.
    #[serde(default = "default_max_bitrate", with = "bitrate")]
    pub max_bitrate: u32,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            device: default_camera_device(),
            width: default_width(),
            height: default_height(),
            fps: default_fps(),
            command: Vec::new(),
            max_bitrate: default_max_bitrate(),
        }
    }
}

/// A camera: `test-pattern`, a device path, or a program writing H.264 (`exec`, with
/// `[camera] command`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoDevice {
    TestPattern,
    Path(PathBuf),
    Exec(Vec<String>),
}

/// `[audio]`: ALSA PCM names, or the built-in sources and sinks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioConfig {
    #[serde(default = "default_pcm")]
    pub capture: AudioEndpoint,
    #[serde(default = "default_pcm")]
    pub playback: AudioEndpoint,
    #[serde(default = "default_true")]
    pub echo_cancellation: bool,
    #[serde(default = "default_true")]
    pub noise_suppression: bool,
    #[serde(default = "default_true")]
    pub gain_control: bool,
    #[serde(default = "default_tone")]
    pub ringtone: ToneSetting,
    #[serde(default = "default_tone")]
    pub ringback: ToneSetting,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            capture: default_pcm(),
            playback: default_pcm(),
            echo_cancellation: true,
            noise_suppression: true,
            gain_control: true,
            ringtone: default_tone(),
            ringback: default_tone(),
        }
    }
}

pub use crate::media::tones::ToneSetting;

/// An audio endpoint: an ALSA PCM, a synthetic tone (capture only) or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioEndpoint {
    Pcm(String),
    TestTone,
    /// `test-bursts`: 100 ms tone bursts at the wall clock's whole seconds (the benchmark's
    /// audio latency source).
    TestBursts,
    Null,
}

/// A GPIO line: its offset on the chip, or its name (`"GPIO17"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpioLine {
    Offset(u32),
    Name(String),
}

/// `[button]`: the door's push button.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonConfig {
    #[serde(default = "default_chip")]
    pub chip: String,
    pub line: GpioLine,
    #[serde(default = "default_true")]
    pub active_low: bool,
    #[serde(default = "default_debounce", with = "duration")]
    pub debounce: Duration,
    #[serde(default)]
    pub bias: Bias,
    #[serde(default = "default_long_press", with = "duration")]
    pub long_press: Duration,
    #[serde(default = "default_long_press_action")]
    pub long_press_action: LongPressAction,
}

/// The button line's bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bias {
    /// Pull-up for an active-low button, pull-down otherwise.
    #[default]
    Auto,
    PullUp,
    PullDown,
    /// No bias (an external resistor).
    Disabled,
    /// Leave the line's bias as it is.
    AsIs,
}

/// What holding the button for `long_press` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LongPressAction {
    None,
    Hangup,
    OpenDoor,
}

/// `[led]`: the button's light.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedConfig {
    #[serde(default = "default_chip")]
    pub chip: String,
    pub line: GpioLine,
    #[serde(default)]
    pub active_low: bool,
}

/// The chip name that stands for no hardware: lines on it are synthetic (logged, never driven).
pub const SYNTHETIC_CHIP: &str = "synthetic";

/// `[door]`: an optional relay that opens the door.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoorConfig {
    #[serde(default = "default_chip")]
    pub chip: String,
    pub line: GpioLine,
    #[serde(default)]
    pub active_low: bool,
    #[serde(default = "default_pulse", with = "duration")]
    pub pulse: Duration,
    #[serde(default = "default_true")]
    pub call_command: bool,
    #[serde(default)]
    pub room_command: bool,
    /// The keypad (DTMF) code that opens the door during a call; empty: off.
    #[serde(default)]
    pub dtmf_code: String,
}

/// `[turn]`: TURN servers that override the homeserver's `/voip/turnServer`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnConfig {
    pub uris: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the credential; the credential itself never sits in this file.
    #[serde(default)]
    pub credential_file: Option<PathBuf>,
}

/// `[control]`: the local control socket (`intercom ring`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: default_socket(),
        }
    }
}

/// `[log]`: the log filter, `RUST_LOG` syntax; the `RUST_LOG` variable wins over it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default = "default_log_filter")]
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            filter: default_log_filter(),
        }
    }
}

/// A homeserver base URL (`https://…` or `http://…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeserverUrl(pub String);

/// A Matrix user id, `@localpart:server`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(pub String);

/// A room id (`!…`) or alias (`#…:server`). Room ids are opaque: never parse them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRef(pub String);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RoomRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Defaults. Each is also quoted in error messages through `default_of`.

const DEFAULT_STATE_DIR: &str = "/var/lib/intercom";
const DEFAULT_SOCKET: &str = "/run/intercom/control.sock";

fn default_true() -> bool {
    true
}
fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}
fn default_device_name() -> String {
    "intercom".to_owned()
}
fn default_incoming() -> IncomingPolicy {
    IncomingPolicy::Ring
}
fn default_ring_timeout() -> Duration {
    Duration::from_secs(45)
}
fn default_max_length() -> Duration {
    Duration::from_secs(300)
}
fn default_press_during_call() -> PressDuringCall {
    PressDuringCall::Ignore
}
fn default_camera_device() -> VideoDevice {
    VideoDevice::Path(PathBuf::from("/dev/video0"))
}
fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    480
}
fn default_fps() -> u32 {
    15
}
fn default_max_bitrate() -> u32 {
    crate::media::DEFAULT_MAX_BITRATE
}
fn default_pcm() -> AudioEndpoint {
    AudioEndpoint::Pcm("default".to_owned())
}
fn default_tone() -> ToneSetting {
    ToneSetting::Builtin
}
fn default_chip() -> String {
    "gpiochip0".to_owned()
}
fn default_debounce() -> Duration {
    Duration::from_millis(50)
}
fn default_long_press() -> Duration {
    Duration::from_secs(3)
}
fn default_long_press_action() -> LongPressAction {
    LongPressAction::None
}
fn default_pulse() -> Duration {
    Duration::from_secs(2)
}
fn default_socket() -> PathBuf {
    PathBuf::from(DEFAULT_SOCKET)
}
fn default_log_filter() -> String {
    "info".to_owned()
}

/// The default of a key, as it would be written in the file, for error messages.
fn default_of(key: &str) -> Option<&'static str> {
    Some(match key {
        "matrix.allow" => "[]",
        "matrix.state_dir" => "\"/var/lib/intercom\"",
        "matrix.device_name" => "\"intercom\"",
        "matrix.accept_invites" => "true",
        "call.incoming" => "\"ring\"",
        "call.ring_timeout" => "\"45s\"",
        "call.max_length" => "\"5m\"",
        "call.video" => "true",
        "call.press_during_call" => "\"ignore\"",
        "call.snapshot" => "true",
        "camera.device" => "\"/dev/video0\"",
        "camera.width" => "640",
        "camera.height" => "480",
        "camera.fps" => "15",
        "camera.max_bitrate" => "\"2000kbit\"",
        "audio.capture" | "audio.playback" => "\"default\"",
        "audio.echo_cancellation" | "audio.noise_suppression" | "audio.gain_control" => "true",
        "audio.ringtone" | "audio.ringback" => "\"builtin\"",
        "button.chip" | "door.chip" | "led.chip" => "\"gpiochip0\"",
        "button.bias" => "\"auto\"",
        "button.long_press" => "\"3s\"",
        "button.long_press_action" => "\"none\"",
        "led.active_low" => "false",
        "door.call_command" => "true",
        "door.room_command" => "false",
        "door.dtmf_code" => "\"\"",
        "button.active_low" => "true",
        "button.debounce" => "\"50ms\"",
        "door.active_low" => "false",
        "door.pulse" => "\"2s\"",
        "control.socket" => "\"/run/intercom/control.sock\"",
        "log.filter" => "\"info\"",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Value types with their own syntax.

impl<'de> Deserialize<'de> for HomeserverUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_homeserver(&s).map_err(de::Error::custom)?;
        Ok(HomeserverUrl(s.trim_end_matches('/').to_owned()))
    }
}

/// Why `s` is not a homeserver base URL, `http(s)://host[:port][/path]`: what `check` accepts,
/// `run` must be able to connect to. A user name or password in it is refused without echoing it.
fn check_homeserver(s: &str) -> Result<(), String> {
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
fn is_room_id(s: &str) -> bool {
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
fn is_room_alias(s: &str) -> bool {
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

impl<'de> Deserialize<'de> for VideoDevice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "test-pattern" => Ok(VideoDevice::TestPattern),
            // The command comes from `[camera] command`, filled in after validation.
            "exec" => Ok(VideoDevice::Exec(Vec::new())),
            p if p.starts_with('/') => Ok(VideoDevice::Path(PathBuf::from(p))),
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

/// Bitrates: a number of bits a second, or a string with a unit: `"1500kbit"`, `"1.5Mbit"`.
pub mod bitrate {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = u32;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a bitrate, like \"1500kbit\" or 1500000")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
                parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
                u32::try_from(v).map_err(|_| {
                    E::custom(format!("expected a bitrate in bits a second, found {v}"))
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
                u32::try_from(v).map_err(|_| {
                    E::custom(format!("expected a bitrate in bits a second, found {v}"))
                })
            }
        }
        d.deserialize_any(V)
    }

    /// Parses `"800000"`, `"800kbit"`, `"1.5Mbit"` (also `kbps`, `Mbps`, `k`, `M`).
    pub fn parse(s: &str) -> Result<u32, String> {
        let bad = || format!("expected a bitrate like \"1500kbit\" or \"2Mbit\", found {s:?}");
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let scale = match unit.trim() {
            "" | "bit" | "bps" => 1.0,
            "k" | "kbit" | "kbps" => 1e3,
            "M" | "Mbit" | "Mbps" => 1e6,
            _ => return Err(bad()),
        };
        let bits = n * scale;
        if !(0.0..=f64::from(u32::MAX)).contains(&bits) {
            return Err(bad());
        }
        Ok(bits.round() as u32)
    }
}

/// Durations are written with a unit: `"500ms"`, `"30s"`, `"5m"`, `"1h"`.
pub mod duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration with a unit, like \"30s\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "expected a duration with a unit, like \"30s\", found the number {v} (write \"{v}s\" for seconds)"
                )))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                self.visit_i64(v as i64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "expected a duration with a unit, like \"1.5s\", found the number {v}"
                )))
            }
        }
        d.deserialize_any(V)
    }

    /// Parses `"250ms"`, `"30s"`, `"1.5s"`, `"5m"`, `"2h"`.
    pub fn parse(s: &str) -> Result<Duration, String> {
        let bad = || {
            format!(
                "expected a duration with a unit, like \"500ms\", \"30s\", \"5m\" or \"1h\", found {s:?}"
            )
        };
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, unit) = t.split_at(split);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let secs = match unit.trim() {
            "ms" => n / 1000.0,
            "s" => n,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(bad()),
        };
        if !secs.is_finite() || secs > 365.0 * 86400.0 {
            return Err(bad());
        }
        Ok(Duration::from_secs_f64(secs))
    }
}

// ---------------------------------------------------------------------------------------------
// Loading and errors.

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

impl Config {
    /// Reads and validates the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = crate::files::read_to_string(path, MAX_SIZE).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: 0,
            key: String::new(),
            message: format!("cannot read the configuration: {e}"),
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates `text`, which came from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let doc = Doc { path, text };
        let spanned = toml::de::DeTable::parse(text).map_err(|e| doc.toml_error(&e, ""))?;
        doc.refuse_secrets(spanned.get_ref(), "")?;

        let de = toml::Deserializer::parse(text).map_err(|e| doc.toml_error(&e, ""))?;
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            doc.toml_error(e.inner(), if key == "." { "" } else { &key })
        })?;
        config.validate(&doc)?;
        if let VideoDevice::Exec(command) = &mut config.camera.device {
            command.clone_from(&config.camera.command);
        }
        Ok(config)
    }

    fn validate(&self, doc: &Doc) -> Result<(), ConfigError> {
        if self.matrix.rooms.is_empty() {
            return Err(doc.at(
                "matrix.rooms",
                "expected at least one room to ring, like [\"!abc:example.org\"]; found none",
            ));
        }
        for (i, room) in self.matrix.rooms.iter().enumerate() {
            if self.matrix.rooms[..i].contains(room) {
                return Err(doc.at("matrix.rooms", &format!("room {room} is listed twice")));
            }
        }
        if self.matrix.allow.contains(&self.matrix.user) {
            return Err(doc.at(
                "matrix.allow",
                "lists the door's own account; the door never calls itself",
            ));
        }
        if self.matrix.device_name.trim().is_empty() {
            return Err(doc.at("matrix.device_name", "must not be empty"));
        }
        if !self.matrix.state_dir.is_absolute() {
            return Err(doc.at("matrix.state_dir", "expected an absolute path"));
        }
        let c = &self.call;
        if c.ring_timeout < Duration::from_secs(1) {
            return Err(doc.at("call.ring_timeout", "must be at least \"1s\""));
        }
        if c.max_length < Duration::from_secs(5) {
            return Err(doc.at("call.max_length", "must be at least \"5s\""));
        }
        let cam = &self.camera;
        if !(16..=4096).contains(&cam.width) || !cam.width.is_multiple_of(2) {
            return Err(doc.at("camera.width", "expected an even number from 16 to 4096"));
        }
        if !(16..=4096).contains(&cam.height) || !cam.height.is_multiple_of(2) {
            return Err(doc.at("camera.height", "expected an even number from 16 to 4096"));
        }
        if !(1..=60).contains(&cam.fps) {
            return Err(doc.at("camera.fps", "expected a frame rate from 1 to 60"));
        }
        if !(50_000..=20_000_000).contains(&cam.max_bitrate) {
            return Err(doc.at(
                "camera.max_bitrate",
                "expected a bitrate from \"50kbit\" to \"20Mbit\"",
            ));
        }
        match (&cam.device, cam.command.is_empty()) {
            (VideoDevice::Exec(_), true) => {
                return Err(doc.at(
                    "camera.command",
                    "device = \"exec\" needs the program to run, like [\"rpicam-vid\", \"-t\", \"0\", \"--codec\", \"h264\", \"--inline\", \"-o\", \"-\"]",
                ))
            }
            (VideoDevice::Exec(_), false) | (_, true) => {}
            (_, false) => {
                return Err(doc.at(
                    "camera.command",
                    "is used only with device = \"exec\"",
                ))
            }
        }
        if let AudioEndpoint::TestTone | AudioEndpoint::TestBursts = self.audio.playback {
            return Err(doc.at(
                "audio.playback",
                "\"test-tone\" and \"test-bursts\" are capture sources; for playback use an ALSA PCM or \"null\"",
            ));
        }
        for (key, setting) in [
            ("audio.ringtone", &self.audio.ringtone),
            ("audio.ringback", &self.audio.ringback),
        ] {
            if let ToneSetting::Wav(path) = setting {
                if let Err(e) = crate::media::tones::Tone::from_wav(path) {
                    return Err(doc.at(
                        key,
                        &format!("{e} (expected \"builtin\", \"off\" or a 16-bit PCM WAV file)"),
                    ));
                }
            }
        }
        if let Some(b) = &self.button {
            if b.debounce > Duration::from_secs(1) {
                return Err(doc.at("button.debounce", "must be at most \"1s\""));
            }
            if b.long_press < Duration::from_millis(500) || b.long_press > Duration::from_secs(30) {
                return Err(doc.at("button.long_press", "expected from \"500ms\" to \"30s\""));
            }
            if b.long_press_action == LongPressAction::OpenDoor && self.door.is_none() {
                return Err(doc.at(
                    "button.long_press_action",
                    "\"open-door\" needs a [door] relay",
                ));
            }
        }
        if let Some(l) = &self.led {
            let taken = [
                self.button.as_ref().map(|b| (&b.chip, &b.line, "button")),
                self.door.as_ref().map(|d| (&d.chip, &d.line, "door relay")),
            ];
            for (chip, line, what) in taken.into_iter().flatten() {
                if *chip == l.chip && *line == l.line && l.chip != SYNTHETIC_CHIP {
                    return Err(doc.at(
                        "led.line",
                        &format!("line {line} of {chip} is already the {what}'s line"),
                    ));
                }
            }
        }
        if let (Some(b), Some(d)) = (&self.button, &self.door) {
            if b.chip == d.chip && b.line == d.line && b.chip != SYNTHETIC_CHIP {
                return Err(doc.at(
                    "door.line",
                    &format!("line {} of {} is already the button's line", d.line, d.chip),
                ));
            }
        }
        if let Some(d) = &self.door {
            if d.pulse < Duration::from_millis(100) || d.pulse > Duration::from_secs(30) {
                return Err(doc.at("door.pulse", "expected from \"100ms\" to \"30s\""));
            }
            if let Err(why) = crate::call::check_dtmf_code(&d.dtmf_code) {
                return Err(doc.at("door.dtmf_code", &why));
            }
        }
        if let Some(t) = &self.turn {
            if t.uris.is_empty() {
                return Err(doc.at("turn.uris", "expected at least one turn: or turns: URI"));
            }
            for u in &t.uris {
                if !(u.starts_with("turn:") || u.starts_with("turns:") || u.starts_with("stun:")) {
                    return Err(doc.at(
                        "turn.uris",
                        &format!("expected turn:, turns: or stun: URIs, found {u:?}"),
                    ));
                }
            }
        }
        self.validate_names(doc)?;
        if let Err(e) = env_filter::Builder::new().try_parse(&self.log.filter) {
            return Err(doc.at("log.filter", &format!("not a RUST_LOG filter: {e}")));
        }
        // A file left where the socket goes is the installer's, never replaced (it was once
        // the session file).
        if let Some(kind) = crate::control::not_a_socket(&self.control.socket) {
            return Err(doc.at(
                "control.socket",
                &format!(
                    "{} is {kind}, not a socket: the daemon would not replace it; remove it or choose another path",
                    self.control.socket.display()
                ),
            ));
        }
        Ok(())
    }
}

impl Config {
    /// Device and line names go to the kernel and to alsa-lib as C strings: a NUL byte would cut
    /// them short (and the crates that pass them on panic on one), and no device or line has a
    /// control character in its name (in a log line one would forge another).
    fn validate_names(&self, doc: &Doc) -> Result<(), ConfigError> {
        let camera = match &self.camera.device {
            VideoDevice::Path(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        };
        fn pcm(e: &AudioEndpoint) -> Option<String> {
            match e {
                AudioEndpoint::Pcm(name) => Some(name.clone()),
                _ => None,
            }
        }
        fn line(l: &GpioLine) -> Option<String> {
            match l {
                GpioLine::Name(name) => Some(name.clone()),
                GpioLine::Offset(_) => None,
            }
        }
        let chip = |c: &String| Some(c.clone());
        let mut names = vec![
            ("camera.device", camera),
            ("audio.capture", pcm(&self.audio.capture)),
            ("audio.playback", pcm(&self.audio.playback)),
        ];
        if let Some(b) = &self.button {
            names.push(("button.chip", chip(&b.chip)));
            names.push(("button.line", line(&b.line)));
        }
        if let Some(l) = &self.led {
            names.push(("led.chip", chip(&l.chip)));
            names.push(("led.line", line(&l.line)));
        }
        if let Some(d) = &self.door {
            names.push(("door.chip", chip(&d.chip)));
            names.push(("door.line", line(&d.line)));
        }
        for (key, name) in names {
            let Some(name) = name else { continue };
            if let Some(c) = name.chars().find(|c| c.is_control()) {
                return Err(doc.at(
                    key,
                    &format!(
                        "{name:?} holds the control character U+{:04X}; device and line names have none",
                        u32::from(c)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The text being loaded, for locating keys in it.
struct Doc<'a> {
    path: &'a Path,
    text: &'a str,
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

    fn at(&self, key: &str, message: &str) -> ConfigError {
        let line = self.span_of(key).map_or(1, |s| self.line_of(s.start));
        self.error(line, key, message.to_owned())
    }

    fn error(&self, line: usize, key: &str, mut message: String) -> ConfigError {
        if let Some(d) = default_of(key) {
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
    fn toml_error(&self, e: &toml::de::Error, key: &str) -> ConfigError {
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
    fn refuse_secrets(&self, table: &toml::de::DeTable, prefix: &str) -> Result<(), ConfigError> {
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

#[cfg(test)]
mod tests {
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
        assert_eq!(c.camera.device, VideoDevice::Path("/dev/video0".into()));
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
        assert_eq!(
            c.camera.device,
            VideoDevice::Exec(vec!["rpicam-vid".into(), "-o".into(), "-".into()])
        );
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
        let example = include_str!("../config/intercom.toml");
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
}
