//! The rules across keys that serde cannot express: at least one room, no line used twice, a
//! long press that opens the door needs a door, ranges, names the kernel and alsa-lib can take.
//! The first rule broken is the error, located at its key.

use std::time::Duration;

use super::errors::Doc;
use super::{
    AudioEndpoint, CameraDevice, Config, ConfigError, GpioLine, LongPressAction, SYNTHETIC_CHIP,
};

impl Config {
    pub(super) fn validate(&self, doc: &Doc) -> Result<(), ConfigError> {
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
            (CameraDevice::Exec, true) => {
                return Err(doc.at(
                    "camera.command",
                    "device = \"exec\" needs the program to run, like [\"rpicam-vid\", \"-t\", \"0\", \"--codec\", \"h264\", \"--inline\", \"-o\", \"-\"]",
                ))
            }
            (CameraDevice::Exec, false) | (_, true) => {}
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
        // A WAV file named as a tone is read when the settings are made (`crate::settings`),
        // which `check` and `run` do before anything else.
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

    /// Device and line names go to the kernel and to alsa-lib as C strings: a NUL byte would cut
    /// them short (and the crates that pass them on panic on one), and no device or line has a
    /// control character in its name (in a log line one would forge another).
    fn validate_names(&self, doc: &Doc) -> Result<(), ConfigError> {
        let camera = match &self.camera.device {
            CameraDevice::Path(p) => Some(p.to_string_lossy().into_owned()),
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
