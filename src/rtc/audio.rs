//! Audio: the microphone's frames encoded with Opus and sent on the call's 20 ms clock; the
//! peer's Opus decoded into the speaker (with FEC and concealment for lost packets) and its
//! keypad's events read beside it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::call::PeerCall;
use super::error::RtcError;
use super::video::read_video;
use super::{dtmf, Counters};
use crate::call::media::{on_media_failure, MediaPart, OnFailure};
use crate::call::RtcEvent;
use crate::media::opus_codec::OpusDecoder;
use crate::media::{AudioSink, Part, Silence};

/// One Opus frame.
pub(super) const AUDIO_FRAME: Duration = Duration::from_millis(20);

/// Lost audio frames filled in (from FEC or by concealment) before a gap is simply skipped.
const MAX_CONCEALED_FRAMES: u16 = 5;

impl PeerCall<'_> {
    pub(super) async fn send_audio(&mut self) {
        if self.audio.payload_type.is_none() {
            return;
        }
        let captured = Instant::now();
        if let Err(e) = self.audio_source.read(&mut self.audio_frame) {
            // The microphone failed (unplugged); the next call opens the device again.
            match on_media_failure(MediaPart::Microphone) {
                OnFailure::GoOnWithout => {
                    log::warn!(call_id = self.task.id.0.as_str(); "audio: {e}; the call goes on without the microphone");
                    self.task.device(Part::Microphone, Some(&e));
                }
                OnFailure::EndCall => {
                    self.task.device(Part::Microphone, Some(&e));
                    self.task.fail(RtcError::Media {
                        part: "audio",
                        error: e,
                    });
                    // Once is enough: the core hangs up.
                    self.audio.payload_type = None;
                    return;
                }
            }
            self.audio_source = Box::new(Silence);
            self.audio_frame.fill(0);
        }
        match self.audio_encoder.encode(&self.audio_frame) {
            Ok(packet) => {
                if self.audio.write(packet, captured, AUDIO_FRAME).await {
                    Counters::add(&self.task.counters.audio_packets_sent, 1);
                }
            }
            Err(e) => {
                log::warn!(call_id = self.task.id.0.as_str(); "audio: {e}");
                self.task.report(RtcEvent::Failed {
                    reason: RtcError::Media {
                        part: "audio",
                        error: e,
                    }
                    .to_string(),
                });
                // Once is enough: the core hangs up.
                self.audio.payload_type = None;
            }
        }
    }

    pub(super) async fn remote_track(&mut self, track: Arc<dyn TrackRemote>) {
        let counters = Arc::clone(&self.task.counters);
        let call = self.task.id.0.clone();
        match track.kind().await {
            RtpCodecKind::Audio => {
                let sink = self.sink.take().unwrap_or_else(|| {
                    log::info!(call_id = call.as_str(); "a second remote audio track: not played");
                    Box::new(crate::media::Discard)
                });
                let negotiated = match self.audio.sender.get_parameters().await {
                    Ok(p) => dtmf::event_payload_types(&p.rtp_parameters.codecs),
                    Err(_) => Vec::new(),
                };
                let keys =
                    dtmf::Keys::new(negotiated, self.task.id.clone(), self.task.events.clone());
                self.helpers
                    .spawn(read_audio(track, sink, keys, counters, call));
            }
            _ => {
                self.helpers.spawn(read_video(track, counters));
            }
        }
    }
}

/// Decodes the peer's Opus into the speaker. A gap in the sequence numbers is filled: the last
/// lost frame from the FEC data of the packet that ends the gap, the ones before it concealed.
async fn read_audio(
    track: Arc<dyn TrackRemote>,
    mut sink: Box<dyn AudioSink>,
    mut keys: dtmf::Keys,
    counters: Arc<Counters>,
    call: String,
) {
    let mut decoder = match OpusDecoder::new() {
        Ok(d) => d,
        Err(e) => {
            log::warn!(call_id = call.as_str(); "remote audio: {e}");
            return;
        }
    };
    let mut last_seq: Option<u16> = None;
    let mut sink_failed = false;
    let mut play = |sink: &mut Box<dyn AudioSink>, samples: &[i16]| {
        if let Err(e) = sink.write(samples) {
            if !sink_failed {
                sink_failed = true;
                log::warn!(call_id = call.as_str(); "speaker: {e}");
            }
        }
    };
    while let Some(event) = track.poll().await {
        let packet = match event {
            TrackRemoteEvent::OnRtpPacket(packet) => packet,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        let seq = packet.header.sequence_number;
        if keys.take(&packet) {
            // The keypad's events share the audio's sequence numbers: they are no lost audio.
            if last_seq.is_none_or(|last| (1..0x8000).contains(&seq.wrapping_sub(last))) {
                last_seq = Some(seq);
            }
            continue;
        }
        Counters::add(&counters.audio_packets_received, 1);
        if let Some(last) = last_seq {
            let gap = seq.wrapping_sub(last);
            if gap == 0 || gap > 0x8000 {
                // A duplicate, or late: its moment has passed.
                continue;
            }
            let lost = gap - 1;
            Counters::add(&counters.audio_frames_lost, u64::from(lost));
            if lost <= MAX_CONCEALED_FRAMES {
                for i in 0..lost {
                    let next = (i + 1 == lost).then_some(&packet.payload[..]);
                    if let Ok(samples) = decoder.recover(next) {
                        play(&mut sink, samples);
                    }
                }
            }
        }
        last_seq = Some(seq);
        if packet.payload.is_empty() {
            continue;
        }
        if let Ok(samples) = decoder.decode(&packet.payload) {
            play(&mut sink, samples);
        }
    }
}
