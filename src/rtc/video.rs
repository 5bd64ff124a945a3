//! Video sending: the door's track, the encoder thread, the frame clock's jobs and the keyframes
//! the viewer asks for; and the peer's video, counted and dropped.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use tokio::sync::{mpsc, oneshot};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::call::{PeerCall, Signal};
use super::error::RtcError;
use super::feedback::{Feedback, FeedbackLog};
use super::peer::SendTrack;
use super::{keyframe, Counters};
use crate::call::bitrate::BitrateController;
use crate::call::media::{on_media_failure, MediaPart, OnFailure};
use crate::call::video::{Encoded, Next, Verdict, VideoPacer};
use crate::media::h264;
use crate::media::source::{H264Source, Pacing};
use crate::media::{MediaError, Part};

/// One access unit from the encoder thread.
pub(super) struct EncodedFrame {
    /// Empty when the encoder's rate control skipped the frame.
    data: Vec<u8>,
    /// A keyframe was asked for.
    requested_keyframe: bool,
    keyframe: bool,
    captured: Instant,
    took: Duration,
}

/// The video half of a call: the track, the encoder thread, and what asks it for frames.
pub(super) struct Video {
    pub(super) out: SendTrack,
    pub(super) jobs: std::sync::mpsc::Sender<bool>,
    pub(super) thread_done: oneshot::Receiver<()>,
    /// What the encoder is asked for, and what of its output is sent (sans-IO).
    pub(super) pacer: VideoPacer,
    /// The bitrate the viewer's feedback allows, and where the encoder thread reads it.
    pub(super) rate: BitrateController,
    pub(super) rate_to_encoder: Arc<AtomicU32>,
    pub(super) feedback: FeedbackLog,
}

/// Starts the encoder thread. A pull source (software encoding) takes jobs ("encode the next
/// frame, a keyframe or not") and sends back access units; a push source sends every access
/// unit as it comes, and its jobs are keyframe requests. The thread ends when the job channel
/// closes, or on the first error.
pub(super) fn spawn_encoder(
    source: Box<dyn H264Source>,
    signals: mpsc::UnboundedSender<Signal>,
    bitrate: Arc<AtomicU32>,
) -> Result<(std::sync::mpsc::Sender<bool>, oneshot::Receiver<()>), RtcError> {
    let (jobs_tx, jobs) = std::sync::mpsc::channel::<bool>();
    let (done_tx, done) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("video-encoder".to_owned())
        .spawn(move || {
            // Dropped when this thread ends, however it ends: that is what the task waits for.
            let _done = done_tx;
            encode_loop(source, &jobs, &signals, &bitrate);
        })
        .map_err(|e| RtcError::step("video encoder thread", e))?;
    Ok((jobs_tx, done))
}

/// The encoder thread's work: see [`spawn_encoder`].
fn encode_loop(
    mut source: Box<dyn H264Source>,
    jobs: &std::sync::mpsc::Receiver<bool>,
    signals: &mpsc::UnboundedSender<Signal>,
    bitrate: &AtomicU32,
) {
    match source.pacing() {
        Pacing::Pull => {
            // `None`: the source said its encoder is out of reach; asked once.
            let mut encoder_rate = Some(0);
            while let Ok(keyframe) = jobs.recv() {
                let wanted = bitrate.load(Ordering::Relaxed);
                if encoder_rate.is_some_and(|r| r != wanted) {
                    encoder_rate = match source.set_bitrate(wanted) {
                        Ok(true) => Some(wanted),
                        Ok(false) => {
                            log::debug!("video: {}'s encoder keeps its own bitrate", source.name());
                            None
                        }
                        Err(e) => {
                            // Not asked again for this rate; the next one is tried.
                            log::warn!("video: {e}");
                            Some(wanted)
                        }
                    };
                }
                let captured = Instant::now();
                let start = Instant::now();
                let result = source.next_access_unit(keyframe).map(|data| {
                    let data = data.unwrap_or_default();
                    EncodedFrame {
                        requested_keyframe: keyframe,
                        keyframe: h264::is_keyframe(&data),
                        data,
                        captured,
                        took: start.elapsed(),
                    }
                });
                let failed = result.is_err();
                if signals.send(Signal::Encoded(result)).is_err() || failed {
                    break;
                }
            }
        }
        Pacing::Push => loop {
            let mut keyframe = false;
            loop {
                match jobs.try_recv() {
                    Ok(k) => keyframe |= k,
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                }
            }
            let result = match source.next_access_unit(keyframe) {
                Ok(None) => continue,
                Ok(Some(data)) => Ok(EncodedFrame {
                    requested_keyframe: keyframe,
                    keyframe: h264::is_keyframe(&data),
                    data,
                    captured: Instant::now(),
                    took: Duration::ZERO,
                }),
                Err(e) => Err(e),
            };
            let failed = result.is_err();
            if signals.send(Signal::Encoded(result)).is_err() || failed {
                break;
            }
        },
    }
}

impl PeerCall<'_> {
    /// The viewer's feedback about the door's video into the bitrate controller, and its
    /// decision to the encoder.
    pub(super) fn video_feedback(&mut self, fb: Feedback) {
        let call = self.task.id.0.as_str();
        let Some(video) = &mut self.video else {
            return;
        };
        let now = Instant::now();
        video.feedback.note(call, &fb);
        match fb {
            Feedback::Report { fraction_lost, .. } => video.rate.on_loss_report(now, fraction_lost),
            Feedback::Remb { bitrate } => video.rate.on_remb(now, bitrate),
            Feedback::TransportCc => {}
        }
        let before = video.rate.applied();
        // A push source's encoder is out of reach (said once, when the call opened): the
        // controller still runs, for the summary, but nothing is announced as a change.
        if let Some(bitrate) = video
            .rate
            .poll_bitrate(now)
            .filter(|_| !video.pacer.is_push())
        {
            log::debug!(call_id = call; "video bitrate: {} -> {} kbit/s ({})", before / 1000, bitrate / 1000, video.feedback.latest());
            video.rate_to_encoder.store(bitrate, Ordering::Relaxed);
        }
    }
    /// Asks the encoder for what the pacer says, while the connection is up. `tick`: the frame
    /// clock asked; otherwise a keyframe was asked for or a frame came back.
    pub(super) fn next_frame(&mut self, tick: bool) {
        if !self.sending {
            return;
        }
        let Some(video) = &mut self.video else {
            return;
        };
        match video.pacer.next(Instant::now(), tick) {
            Next::Nothing => {}
            Next::Dropped => Counters::add(&self.task.counters.video_frames_dropped, 1),
            // A thread that is gone has sent its error, which stops the video.
            Next::Encode { keyframe } => drop(video.jobs.send(keyframe)),
        }
    }

    pub(super) async fn encoded(&mut self, result: Result<EncodedFrame, MediaError>) {
        let Some(video) = &mut self.video else {
            return;
        };
        let frame = match result {
            Ok(frame) => frame,
            Err(e) => {
                // The camera went away (or the encoder failed): the next call opens it again.
                video.pacer.stop();
                match on_media_failure(MediaPart::Camera) {
                    OnFailure::GoOnWithout => {
                        log::warn!(call_id = self.task.id.0.as_str(); "video stopped: {e}; the call goes on with audio only");
                        self.task.device(Part::Camera, Some(&e));
                    }
                    OnFailure::EndCall => {
                        self.task.device(Part::Camera, Some(&e));
                        self.task.fail(RtcError::Media {
                            part: "video stopped",
                            error: e,
                        });
                    }
                }
                return;
            }
        };
        let counters = &self.task.counters;
        Counters::add(&counters.video_frames_encoded, 1);
        Counters::add(&counters.video_encode_us, frame.took.as_micros() as u64);
        let encoded = Encoded {
            requested_keyframe: frame.requested_keyframe,
            keyframe: frame.keyframe,
            empty: frame.data.is_empty(),
            captured: frame.captured,
        };
        if let Verdict::Send { duration } = video.pacer.encoded(encoded, self.sending) {
            if video.out.write(frame.data, frame.captured, duration).await {
                Counters::add(&counters.video_frames_sent, 1);
                if frame.keyframe {
                    Counters::add(&counters.keyframes_sent, 1);
                }
                video.pacer.sent(frame.keyframe, frame.captured);
            }
        }
        // A keyframe asked for while this frame was being encoded (or one that did not come)
        // goes out now.
        self.next_frame(false);
    }
}

/// Forwards the peer's keyframe requests about the door's video to the call's task.
pub(super) async fn watch_keyframe_requests(
    track: Arc<TrackLocalStaticSample>,
    signals: mpsc::UnboundedSender<Signal>,
) {
    while let Some(event) = track.poll().await {
        if let TrackLocalEvent::OnRtcpPacket(packets) = event {
            if packets
                .iter()
                .any(|p| keyframe::is_keyframe_request(p.as_ref()))
                && signals.send(Signal::KeyframeRequest).is_err()
            {
                return;
            }
        }
    }
}

/// `Counters::first_video`: no video yet, the first packet began a keyframe, or it did not.
pub(super) const FIRST_VIDEO_NONE: u8 = 0;
pub(super) const FIRST_VIDEO_KEYFRAME: u8 = 1;
pub(super) const FIRST_VIDEO_DELTA: u8 = 2;

/// Whether an H.264 RTP payload (RFC 6184) begins a keyframe: an SPS, a PPS or an IDR slice,
/// alone, first in a STAP-A, or starting an FU-A.
fn starts_keyframe(payload: &[u8]) -> bool {
    let nal = match payload.first().map(|b| b & 0x1f) {
        Some(24) => payload.get(3).map(|b| b & 0x1f),
        Some(28) => payload
            .get(1)
            .filter(|fu| **fu & 0x80 != 0)
            .map(|fu| fu & 0x1f),
        other => other,
    };
    matches!(nal, Some(5 | 7 | 8))
}

/// Counts the peer's video and drops it: only a viewer ([`RtcSettings::receive_video`]) takes
/// any, the door's offers and answers refuse it. It asks once for a keyframe when the stream
/// starts, as any receiver joining a stream does.
pub(super) async fn read_video(track: Arc<dyn TrackRemote>, counters: Arc<Counters>) {
    let mut asked = false;
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                Counters::add(&counters.video_packets_received, 1);
                Counters::add(&counters.video_bytes_received, packet.payload.len() as u64);
                if !asked {
                    asked = true;
                    let state = if starts_keyframe(&packet.payload) {
                        FIRST_VIDEO_KEYFRAME
                    } else {
                        FIRST_VIDEO_DELTA
                    };
                    counters.first_video.store(state, Ordering::Relaxed);
                    let pli = PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc: packet.header.ssrc,
                    };
                    let _ = track.write_rtcp(vec![Box::new(pli)]).await;
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_starts_are_recognised() {
        // STAP-A holding an SPS (length 2, then NAL header 0x67).
        assert!(starts_keyframe(&[24, 0, 2, 0x67, 0x42]));
        // FU-A starting an IDR slice; the same FU-A continuing is not a start.
        assert!(starts_keyframe(&[28, 0x85, 0]));
        assert!(!starts_keyframe(&[28, 0x05, 0]));
        // A single P slice.
        assert!(!starts_keyframe(&[0x41, 0x9a]));
        assert!(!starts_keyframe(&[]));
    }
}
