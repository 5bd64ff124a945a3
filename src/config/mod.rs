//! The configuration file: one TOML document, typed with serde.
//!
//! Every option is documented in `config/intercom.toml`, which a test keeps in step with this
//! module. Loading never half-succeeds: either every key is known, well-typed and valid, or the
//! first problem comes back as a [`ConfigError`] that names the file, the line, the key, what was
//! expected and the default. Unknown keys are errors, so a typo never passes silently. No secret
//! is ever read from this file, and none appears in an error.
//!
//! This module knows the file and nothing of the components: it imports no adapter
//! (`crate::media`, `crate::rtc`, ...). [`crate::settings`] turns a loaded [`Config`] into each
//! component's settings. Here:
//! - `mod.rs`: the types, section by section, and loading;
//! - [`defaults`]: every default, written once, for serde and for the messages;
//! - `values.rs`: the syntax of the value types (user ids, rooms, devices, GPIO lines);
//! - [`duration`], [`bitrate`]: values with a unit;
//! - `validate.rs`: the rules across keys that serde cannot express;
//! - `errors.rs`: [`ConfigError`] and locating a key in the text.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod bitrate;
pub mod defaults;
pub mod duration;
mod errors;
mod validate;
mod values;

#[cfg(test)]
mod tests;

pub use errors::ConfigError;
use errors::Doc;

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
    /// The text it was read from, to locate a key in errors found later
    /// ([`Config::error_at`]).
    #[serde(skip)]
    source: Source,
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
    #[serde(default = "defaults::state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "defaults::device_name")]
    pub device_name: String,
    #[serde(default = "defaults::yes")]
    pub accept_invites: bool,
}

/// What the door does with an incoming call from an allow-listed user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PressDuringCall {
    Ignore,
    Hangup,
}

/// `[call]`: policy and time limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallConfig {
    #[serde(default = "defaults::incoming")]
    pub incoming: IncomingPolicy,
    #[serde(default = "defaults::ring_timeout", with = "duration")]
    pub ring_timeout: Duration,
    #[serde(default = "defaults::max_length", with = "duration")]
    pub max_length: Duration,
    #[serde(default = "defaults::yes")]
    pub video: bool,
    #[serde(default = "defaults::press_during_call")]
    pub press_during_call: PressDuringCall,
    /// Post a picture of the camera, mentioning the people to ring, into each rung room.
    #[serde(default = "defaults::yes")]
    pub snapshot: bool,
}

impl Default for CallConfig {
    fn default() -> Self {
        defaults::section()
    }
}

/// `[camera]`: a V4L2 device, or the built-in moving test pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    #[serde(default = "defaults::camera_device")]
    pub device: CameraDevice,
    #[serde(default = "defaults::width")]
    pub width: u32,
    #[serde(default = "defaults::height")]
    pub height: u32,
    #[serde(default = "defaults::fps")]
    pub fps: u32,
    /// With `device = "exec"`: the program and its arguments, writing H.264 to stdout.
    #[serde(default)]
    pub command: Vec<String>,
    /// The most the door's video may take, in bits a second.
    #[serde(default = "defaults::max_bitrate", with = "bitrate")]
    pub max_bitrate: u32,
}

impl Default for CameraConfig {
    fn default() -> Self {
        defaults::section()
    }
}

/// `[camera] device`: `test-pattern`, a device path, or `exec` (a program writing H.264, named
/// by `[camera] command`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraDevice {
    TestPattern,
    Path(PathBuf),
    Exec,
}

/// `[audio]`: ALSA PCM names, or the built-in sources and sinks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioConfig {
    #[serde(default = "defaults::pcm")]
    pub capture: AudioEndpoint,
    #[serde(default = "defaults::pcm")]
    pub playback: AudioEndpoint,
    #[serde(default = "defaults::yes")]
    pub echo_cancellation: bool,
    #[serde(default = "defaults::yes")]
    pub noise_suppression: bool,
    #[serde(default = "defaults::yes")]
    pub gain_control: bool,
    #[serde(default = "defaults::tone")]
    pub ringtone: ToneSetting,
    #[serde(default = "defaults::tone")]
    pub ringback: ToneSetting,
}

impl Default for AudioConfig {
    fn default() -> Self {
        defaults::section()
    }
}

/// `[audio] ringtone` / `ringback`: the built-in tone, a WAV file, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToneSetting {
    Builtin,
    Off,
    Wav(PathBuf),
}

/// `[audio] capture` / `playback`: an ALSA PCM, a synthetic tone (capture only) or nothing.
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
    #[serde(default = "defaults::chip")]
    pub chip: String,
    pub line: GpioLine,
    #[serde(default = "defaults::yes")]
    pub active_low: bool,
    #[serde(default = "defaults::debounce", with = "duration")]
    pub debounce: Duration,
    #[serde(default)]
    pub bias: Bias,
    #[serde(default = "defaults::long_press", with = "duration")]
    pub long_press: Duration,
    #[serde(default = "defaults::long_press_action")]
    pub long_press_action: LongPressAction,
}

/// The button line's bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
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
    #[serde(default = "defaults::chip")]
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
    #[serde(default = "defaults::chip")]
    pub chip: String,
    pub line: GpioLine,
    #[serde(default)]
    pub active_low: bool,
    #[serde(default = "defaults::pulse", with = "duration")]
    pub pulse: Duration,
    #[serde(default = "defaults::yes")]
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
    #[serde(default = "defaults::socket")]
    pub socket: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        defaults::section()
    }
}

/// `[log]`: the log filter, `RUST_LOG` syntax; the `RUST_LOG` variable wins over it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default = "defaults::log_filter")]
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        defaults::section()
    }
}

/// A homeserver base URL (`https://…` or `http://…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeserverUrl(pub String);

/// A Matrix user id, `@localpart:server`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
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

/// Where a configuration was read from: its path and text.
#[derive(Clone, Default)]
struct Source {
    path: PathBuf,
    text: Arc<str>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Source({})", self.path.display())
    }
}

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
        config.source = Source {
            path: path.to_owned(),
            text: text.into(),
        };
        Ok(config)
    }

    /// An error about `key` found after loading (a file the configuration names that cannot be
    /// used), located and worded like those found while loading.
    pub fn error_at(&self, key: &str, message: &str) -> ConfigError {
        Doc {
            path: &self.source.path,
            text: &self.source.text,
        }
        .at(key, message)
    }
}
