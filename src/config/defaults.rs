//! Every default of the configuration file, written once.
//!
//! serde takes a key's default from the function its field names here
//! (`#[serde(default = "defaults::ring_timeout")]`), or from the type's `Default` for a bare
//! `#[serde(default)]` (an empty list, `false`, an empty string, `bias = "auto"`). A section
//! left out reads as an empty one ([`section`]), so it takes the same defaults key by key. The
//! messages that name a key's default take it from [`written`], which spells the value these
//! functions return the way the file would. The unit test
//! `every_default_a_message_names_reads_back_as_the_one_serde_uses` writes each printed default
//! into a file and checks that it loads exactly as leaving the key out does, for every key.

use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{
    bitrate, duration, AudioEndpoint, Bias, CameraDevice, IncomingPolicy, LongPressAction,
    PressDuringCall, ToneSetting, UserId,
};

pub fn yes() -> bool {
    true
}
pub fn state_dir() -> PathBuf {
    PathBuf::from("/var/lib/intercom")
}
pub fn device_name() -> String {
    "intercom".to_owned()
}
pub fn incoming() -> IncomingPolicy {
    IncomingPolicy::Ring
}
pub fn ring_timeout() -> Duration {
    Duration::from_secs(45)
}
pub fn max_length() -> Duration {
    Duration::from_secs(300)
}
pub fn press_during_call() -> PressDuringCall {
    PressDuringCall::Ignore
}
pub fn camera_device() -> CameraDevice {
    CameraDevice::Path(PathBuf::from("/dev/video0"))
}
pub fn width() -> u32 {
    640
}
pub fn height() -> u32 {
    480
}
pub fn fps() -> u32 {
    15
}
/// The software encoder's own ceiling, `media::DEFAULT_MAX_BITRATE`. This module imports no
/// component, so the number is written here too; a test in `crate::settings` holds the two
/// equal.
pub fn max_bitrate() -> u32 {
    2_000_000
}
pub fn pcm() -> AudioEndpoint {
    AudioEndpoint::Pcm("default".to_owned())
}
pub fn tone() -> ToneSetting {
    ToneSetting::Builtin
}
pub fn chip() -> String {
    "gpiochip0".to_owned()
}
pub fn debounce() -> Duration {
    Duration::from_millis(50)
}
pub fn long_press() -> Duration {
    Duration::from_secs(3)
}
pub fn long_press_action() -> LongPressAction {
    LongPressAction::None
}
/// The relay's pulse is the core's ([`crate::call::DEFAULT_PULSE`]): one number for the file,
/// the core and the panel.
pub fn pulse() -> Duration {
    crate::call::DEFAULT_PULSE
}
pub fn socket() -> PathBuf {
    PathBuf::from("/run/intercom/control.sock")
}
pub fn log_filter() -> String {
    "info".to_owned()
}

/// A section as it reads when left out: empty, every key at its default.
pub(super) fn section<T: DeserializeOwned>() -> T {
    toml::from_str("").expect("every key of a section that may be left out has a default")
}

/// The default of `key` (dotted), as the file would write it, for messages; `None` for a key
/// without one (a required key, or an optional one with nothing to show: see the test).
pub fn written(key: &str) -> Option<String> {
    Some(match key {
        "matrix.allow" => toml(&Vec::<UserId>::new()),
        "matrix.state_dir" => toml(&state_dir()),
        "matrix.device_name" => toml(&device_name()),
        "matrix.accept_invites" => toml(&yes()),
        "call.incoming" => toml(&incoming()),
        "call.ring_timeout" => duration::written(ring_timeout()),
        "call.max_length" => duration::written(max_length()),
        "call.video" | "call.snapshot" => toml(&yes()),
        "call.press_during_call" => toml(&press_during_call()),
        "camera.device" => toml(&camera_device()),
        "camera.width" => toml(&width()),
        "camera.height" => toml(&height()),
        "camera.fps" => toml(&fps()),
        "camera.max_bitrate" => bitrate::written(max_bitrate()),
        "audio.capture" | "audio.playback" => toml(&pcm()),
        "audio.echo_cancellation" | "audio.noise_suppression" | "audio.gain_control" => {
            toml(&yes())
        }
        "audio.ringtone" | "audio.ringback" => toml(&tone()),
        "button.chip" | "door.chip" | "led.chip" => toml(&chip()),
        "button.active_low" => toml(&yes()),
        "button.debounce" => duration::written(debounce()),
        "button.bias" => toml(&Bias::default()),
        "button.long_press" => duration::written(long_press()),
        "button.long_press_action" => toml(&long_press_action()),
        "led.active_low" | "door.active_low" | "door.room_command" => toml(&bool::default()),
        "door.pulse" => duration::written(pulse()),
        "door.call_command" => toml(&yes()),
        "door.dtmf_code" => toml(&String::default()),
        "control.socket" => toml(&socket()),
        "log.filter" => toml(&log_filter()),
        _ => return None,
    })
}

/// `value` as a TOML value: `true`, `640`, `"ring"`, `[]`.
fn toml<T: Serialize>(value: &T) -> String {
    toml::Value::try_from(value).map_or_else(|e| format!("({e})"), |v| v.to_string())
}
