//! Echo cancellation, noise suppression and gain control for the door's microphone.
//!
//! The speaker and the microphone sit centimetres apart: without cancellation the resident hears
//! themself back. [`EchoCanceller`] runs `sonora` (a pure-Rust port of WebRTC's audio processing:
//! AEC3, the noise suppressor, AGC2) on 10 ms frames of the capture path. Its reference is
//! [`Reference`]: the speaker owner ([`super::speaker`]) pushes into it exactly what it writes to
//! the playback PCM, and the canceller feeds everything pushed so far as render frames before
//! each capture frame. AEC3 finds the delay between the two itself (tens of milliseconds of
//! sound-card buffers and the acoustic path).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use sonora::config::{EchoCanceller as Aec3, GainController2, NoiseSuppression};
use sonora::{AudioProcessing as Apm, Config, StreamConfig};

use super::{MediaError, SAMPLE_RATE};

/// One processing frame: 10 ms at 48 kHz.
pub const FRAME_10MS: usize = SAMPLE_RATE as usize / 100;
/// The reference keeps at most this much unread audio (1 s): a capture path that stopped
/// reading must not make it grow without bound.
const MAX_REFERENCE: usize = SAMPLE_RATE as usize;

/// Which of the three processors run (`[audio]` `echo_cancellation`, `noise_suppression`,
/// `gain_control`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Processing {
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
}

impl Default for Processing {
    fn default() -> Self {
        Processing {
            echo_cancellation: true,
            noise_suppression: true,
            gain_control: true,
        }
    }
}

impl Processing {
    /// Nothing at all.
    pub fn off() -> Processing {
        Processing {
            echo_cancellation: false,
            noise_suppression: false,
            gain_control: false,
        }
    }

    pub fn any(&self) -> bool {
        self.echo_cancellation || self.noise_suppression || self.gain_control
    }
}

/// What the speaker played (48 kHz mono), for the canceller. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Reference(Arc<Mutex<VecDeque<i16>>>);

impl Reference {
    pub fn new() -> Reference {
        Reference::default()
    }

    /// Adds samples as they were written to the speaker.
    pub fn push(&self, samples: &[i16]) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.extend(samples.iter().copied());
        let excess = q.len().saturating_sub(MAX_REFERENCE);
        q.drain(..excess);
    }

    /// Takes every whole 10 ms frame pushed so far.
    fn take_frames(&self, into: &mut Vec<i16>) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = q.len() / FRAME_10MS * FRAME_10MS;
        into.extend(q.drain(..n));
    }

    /// Forgets what was not read yet (a new call starts from now).
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The capture-side processor. See the module.
pub struct EchoCanceller {
    apm: Apm,
    reference: Reference,
    render: Vec<i16>,
    scratch: Vec<i16>,
}

impl std::fmt::Debug for EchoCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EchoCanceller")
    }
}

impl EchoCanceller {
    /// A processor running what `processing` turns on, cancelling what `reference` receives.
    pub fn new(processing: Processing, reference: Reference) -> EchoCanceller {
        let config = Config {
            echo_canceller: processing.echo_cancellation.then(Aec3::default),
            noise_suppression: processing.noise_suppression.then(NoiseSuppression::default),
            gain_controller2: processing.gain_control.then(GainController2::default),
            ..Default::default()
        };
        let stream = StreamConfig::new(SAMPLE_RATE, 1);
        let apm = Apm::builder()
            .config(config)
            .capture_config(stream)
            .render_config(stream)
            .build();
        // Whatever is in the reference from before belongs to no capture of ours.
        reference.clear();
        EchoCanceller {
            apm,
            reference,
            render: Vec::new(),
            scratch: vec![0; FRAME_10MS],
        }
    }

    /// Processes one 10 ms frame of the microphone in place, after feeding the canceller what
    /// the speaker played since the last frame.
    pub fn process(&mut self, frame: &mut [i16]) -> Result<(), MediaError> {
        if frame.len() != FRAME_10MS {
            return Err(MediaError::Failed(format!(
                "echo canceller: a frame is {FRAME_10MS} samples, got {}",
                frame.len()
            )));
        }
        self.render.clear();
        self.reference.take_frames(&mut self.render);
        for chunk in self.render.chunks_exact(FRAME_10MS) {
            self.apm
                .process_render_i16(chunk, &mut self.scratch)
                .map_err(|e| MediaError::Failed(format!("echo canceller (render): {e:?}")))?;
        }
        self.scratch.copy_from_slice(frame);
        self.apm
            .process_capture_i16(&self.scratch, frame)
            .map_err(|e| MediaError::Failed(format!("echo canceller (capture): {e:?}")))
    }
}
