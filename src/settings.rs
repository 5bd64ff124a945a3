//! The one place where the configuration becomes each component's settings.
//!
//! Imports run one way: [`crate::config`] knows the file and no component; each component
//! (`call`, the panel, `media`, `rtc`, the output lines of `gpio`) takes settings of its own
//! types; this module knows both and translates. No module of `src/media/` or `src/rtc/`
//! imports `crate::config`, and `crate::config` imports nothing of `crate::media` or
//! `crate::rtc` (`tests/check_sans_io.rs` checks both).
//!
//! Making the settings reads each WAV file named as a tone, once: a tone the door could not play
//! is a configuration error at its key (exit 78), found by `intercom check` and by `intercom run`
//! before it starts anything.

use crate::call;
use crate::config::{self, Config, ConfigError};
use crate::gpio::OutputConfig;
use crate::media::tones::{Tone, ToneSetting};
use crate::media::{aec, AudioEndpoint, MediaSettings, VideoDevice, VideoSettings};
use crate::panel::PanelConfig;
use crate::rtc::RtcSettings;

/// What the daemon's components are made with, from one configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The core's policy: the rooms to ring, who may call, the time limits.
    pub policy: call::Policy,
    /// The core's rules for the door's relay.
    pub door: call::DoorPolicy,
    /// The panel's timing: debounce, long press (the relay's pulse is the core's: `door`).
    pub panel: PanelConfig,
    /// The camera's size and rate, whether or not calls send video (snapshots use it too).
    pub video: VideoSettings,
    /// The calls: their devices, and their video unless `[call] video = false`. No ICE servers:
    /// those come from the homeserver or `[turn]`.
    pub rtc: RtcSettings,
    /// With `[call] snapshot`: whom the picture posted as the door rings mentions.
    pub snapshot_mentions: Option<Vec<call::UserId>>,
    pub ringtone: ToneSetting,
    pub ringback: ToneSetting,
    /// The LED's output line, if one is configured.
    pub led: Option<OutputConfig>,
    /// The door relay's output line, if one is configured.
    pub relay: Option<OutputConfig>,
}

impl Settings {
    /// The settings `config` describes. Fails only on a tone file that cannot be played.
    pub fn from_config(config: &Config) -> Result<Settings, ConfigError> {
        let video = video(&config.camera);
        Ok(Settings {
            policy: policy(config),
            door: door_policy(config),
            panel: panel(config),
            video,
            rtc: RtcSettings {
                ice_servers: Vec::new(),
                video: config.call.video.then_some(video),
                media: media(config),
                receive_video: false,
            },
            snapshot_mentions: config.call.snapshot.then(|| users(&config.matrix.allow)),
            ringtone: tone(config, "audio.ringtone", &config.audio.ringtone)?,
            ringback: tone(config, "audio.ringback", &config.audio.ringback)?,
            led: config.led.as_ref().map(|l| OutputConfig {
                what: "led",
                chip: l.chip.clone(),
                line: l.line.clone(),
                active_low: l.active_low,
            }),
            relay: config.door.as_ref().map(|d| OutputConfig {
                what: "relay",
                chip: d.chip.clone(),
                line: d.line.clone(),
                active_low: d.active_low,
            }),
        })
    }
}

fn users(users: &[config::UserId]) -> Vec<call::UserId> {
    users.iter().map(|u| call::UserId(u.0.clone())).collect()
}

/// The core's policy, from `[matrix]` and `[call]`.
fn policy(config: &Config) -> call::Policy {
    call::Policy {
        rooms: config
            .matrix
            .rooms
            .iter()
            .map(|r| call::RoomId(r.0.clone()))
            .collect(),
        allow: users(&config.matrix.allow),
        incoming: match config.call.incoming {
            config::IncomingPolicy::AutoAnswer => call::Incoming::AutoAnswer,
            config::IncomingPolicy::Ring => call::Incoming::Ring,
            config::IncomingPolicy::Reject => call::Incoming::Reject,
        },
        ring_timeout: config.call.ring_timeout,
        max_length: config.call.max_length,
        video: config.call.video,
        press_during_call: match config.call.press_during_call {
            config::PressDuringCall::Ignore => call::PressDuringCall::Ignore,
            config::PressDuringCall::Hangup => call::PressDuringCall::Hangup,
        },
    }
}

/// The relay's rules for the core, from `[door]` and `[button]`.
fn door_policy(config: &Config) -> call::DoorPolicy {
    let long_press = match config.button.as_ref().map(|b| b.long_press_action) {
        None | Some(config::LongPressAction::None) => call::LongPress::None,
        Some(config::LongPressAction::Hangup) => call::LongPress::Hangup,
        Some(config::LongPressAction::OpenDoor) => call::LongPress::OpenDoor,
    };
    match &config.door {
        Some(d) => call::DoorPolicy {
            relay: true,
            pulse: d.pulse,
            call_command: d.call_command,
            room_command: d.room_command,
            long_press,
            dtmf_code: d.dtmf_code.clone(),
        },
        None => call::DoorPolicy {
            long_press,
            ..call::DoorPolicy::default()
        },
    }
}

/// The panel's timing, from `[button]`; without it, the file's defaults.
fn panel(config: &Config) -> PanelConfig {
    let button = config.button.as_ref();
    PanelConfig {
        debounce: button.map_or_else(config::defaults::debounce, |b| b.debounce),
        long_press: button
            .filter(|b| b.long_press_action != config::LongPressAction::None)
            .map(|b| b.long_press),
    }
}

/// `[camera]`'s size, rate and bitrate cap.
fn video(camera: &config::CameraConfig) -> VideoSettings {
    VideoSettings {
        width: camera.width,
        height: camera.height,
        fps: camera.fps,
        max_bitrate: camera.max_bitrate,
    }
}

/// `[camera] device` (with its `command`), `[audio] capture`, `playback` and the processing
/// switches.
fn media(config: &Config) -> MediaSettings {
    MediaSettings {
        camera: match &config.camera.device {
            config::CameraDevice::TestPattern => VideoDevice::TestPattern,
            config::CameraDevice::Path(p) => VideoDevice::Path(p.clone()),
            config::CameraDevice::Exec => VideoDevice::Exec(config.camera.command.clone()),
        },
        capture: endpoint(&config.audio.capture),
        playback: endpoint(&config.audio.playback),
        processing: aec::Processing {
            echo_cancellation: config.audio.echo_cancellation,
            noise_suppression: config.audio.noise_suppression,
            gain_control: config.audio.gain_control,
        },
    }
}

fn endpoint(endpoint: &config::AudioEndpoint) -> AudioEndpoint {
    match endpoint {
        config::AudioEndpoint::Pcm(name) => AudioEndpoint::Pcm(name.clone()),
        config::AudioEndpoint::TestTone => AudioEndpoint::TestTone,
        config::AudioEndpoint::TestBursts => AudioEndpoint::TestBursts,
        config::AudioEndpoint::Null => AudioEndpoint::Null,
    }
}

/// A tone; a WAV file is read here once, and one that cannot be played is an error at `key`.
fn tone(
    config: &Config,
    key: &str,
    setting: &config::ToneSetting,
) -> Result<ToneSetting, ConfigError> {
    Ok(match setting {
        config::ToneSetting::Builtin => ToneSetting::Builtin,
        config::ToneSetting::Off => ToneSetting::Off,
        config::ToneSetting::Wav(path) => {
            if let Err(e) = Tone::from_wav(path) {
                return Err(config.error_at(
                    key,
                    &format!("{e} (expected \"builtin\", \"off\" or a 16-bit PCM WAV file)"),
                ));
            }
            ToneSetting::Wav(path.clone())
        }
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    const MINIMAL: &str = "[matrix]\nhomeserver = \"https://hs.example\"\nuser = \"@door:hs.example\"\nrooms = [\"!r:hs.example\"]\n";

    fn settings(extra: &str) -> Result<Settings, ConfigError> {
        let config = Config::parse(Path::new("t.toml"), &format!("{MINIMAL}{extra}")).unwrap();
        Settings::from_config(&config)
    }

    #[test]
    fn the_default_bitrate_cap_is_the_software_encoders_ceiling() {
        assert_eq!(
            config::defaults::max_bitrate(),
            crate::media::DEFAULT_MAX_BITRATE
        );
        let s = settings("").unwrap();
        assert_eq!(s.video.max_bitrate, crate::media::DEFAULT_MAX_BITRATE);
        assert_eq!(s.rtc.video, Some(s.video));
    }

    #[test]
    fn one_relay_pulse_for_the_file_and_the_core() {
        let s = settings("").unwrap();
        assert_eq!(s.door.pulse, call::DEFAULT_PULSE);
        assert!(!s.door.relay && s.relay.is_none());
        let s = settings("[door]\nline = 22\n").unwrap();
        assert_eq!(s.door.pulse, call::DEFAULT_PULSE);
        let s = settings("[door]\nline = 22\npulse = \"5s\"\n").unwrap();
        assert_eq!(s.door.pulse, Duration::from_secs(5));
        assert!(s.door.relay && s.relay.is_some());
    }

    #[test]
    fn an_exec_camera_carries_its_command_and_no_video_means_none_sent() {
        let s = settings(
            "[call]\nvideo = false\nsnapshot = false\n[camera]\ndevice = \"exec\"\ncommand = [\"cam\", \"-o\", \"-\"]\n",
        )
        .unwrap();
        assert_eq!(
            s.rtc.media.camera,
            VideoDevice::Exec(vec!["cam".into(), "-o".into(), "-".into()])
        );
        assert_eq!(s.rtc.video, None);
        assert_eq!(s.snapshot_mentions, None);
        assert_eq!(s.rtc.media.capture, AudioEndpoint::Pcm("default".into()));
    }

    #[test]
    fn a_tone_that_cannot_be_played_is_an_error_at_its_key() {
        let dir = std::env::temp_dir().join(format!("intercom-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_wav = dir.join("ring.wav");
        std::fs::write(&not_wav, b"not a wav file").unwrap();
        let e = settings(&format!(
            "[audio]\nplayback = \"null\"\nringback = {:?}\n",
            not_wav.display().to_string()
        ))
        .unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((e.line, e.key.as_str()), (7, "audio.ringback"), "{e}");
        assert!(e.message.contains("ring.wav"), "{e}");
        assert!(e.message.contains("RIFF"), "{e}");
        assert!(e.message.ends_with("(default: \"builtin\")"), "{e}");
        assert_eq!(e.file, Path::new("t.toml"));
    }
}
