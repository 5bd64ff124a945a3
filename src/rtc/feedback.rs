//! What the viewer's RTCP says about the door's video, up to the call's bitrate controller.
//!
//! An interceptor that only looks: just below [`super::keyframe`], it sees every inbound RTCP
//! packet after the interceptors below it have acted on it, and hands the call what matters for
//! the video's rate — the reception reports about the door's video (fraction lost, jitter, round
//! trip from LSR/DLSR) and the receiver's estimate (REMB) — through a callback. Transport-wide
//! feedback is only counted: the door does not number its packets for it (no TWCC sender), so a
//! browser has nothing to send it about. Nothing is changed or held back.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ::rtc::interceptor::{Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use ::rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use ::rtc::rtcp::receiver_report::ReceiverReport;
use ::rtc::rtcp::reception_report::ReceptionReport;
use ::rtc::rtcp::sender_report::SenderReport;
use ::rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use ::rtc::sansio::Protocol;
use ::rtc::shared::error::Error;

use crate::call::bitrate::BitrateSummary;

/// Below the keyframe interceptor, which keeps only keyframe requests for the application.
pub(crate) const SLOT: usize = super::keyframe::SLOT - 500;

pub(crate) fn slot() -> Slot {
    Slot::from(SLOT)
}

/// One piece of feedback about the door's video.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Feedback {
    /// A reception report about the video: `fraction_lost` out of 256 since the previous one,
    /// interarrival jitter in RTP units (90 kHz), and the round trip, when the report echoes a
    /// sender report of the door's.
    Report {
        fraction_lost: u8,
        jitter: u32,
        rtt: Option<Duration>,
    },
    /// The receiver's estimate of what it can take, in bits per second.
    Remb { bitrate: u64 },
    /// A transport-wide congestion control feedback packet.
    TransportCc,
}

/// What came in during a call, for its log lines: the first of each kind (at `debug`), the
/// latest values, and the counts for the summary at the end.
#[derive(Debug, Default)]
pub(crate) struct FeedbackLog {
    reports: u32,
    rembs: u32,
    transport_cc: u32,
    fraction_lost: Option<u8>,
    jitter: Option<u32>,
    rtt: Option<Duration>,
    remb: Option<u64>,
}

impl FeedbackLog {
    pub(crate) fn note(&mut self, call: &str, fb: &Feedback) {
        match *fb {
            Feedback::Report {
                fraction_lost,
                jitter,
                rtt,
            } => {
                self.reports += 1;
                self.fraction_lost = Some(fraction_lost);
                self.jitter = Some(jitter);
                self.rtt = rtt.or(self.rtt);
                if self.reports == 1 {
                    log::debug!(call_id = call; "video feedback: first receiver report ({})", self.latest());
                }
            }
            Feedback::Remb { bitrate } => {
                self.rembs += 1;
                self.remb = Some(bitrate);
                if self.rembs == 1 {
                    log::debug!(call_id = call; "video feedback: first REMB, {} kbit/s", bitrate / 1000);
                }
            }
            Feedback::TransportCc => {
                self.transport_cc += 1;
                if self.transport_cc == 1 {
                    log::debug!(call_id = call; "video feedback: first transport-cc feedback");
                }
            }
        }
    }

    /// The latest values, for a log line.
    pub(crate) fn latest(&self) -> String {
        let mut parts = Vec::new();
        if let Some(lost) = self.fraction_lost {
            parts.push(format!("loss {:.1} %", f64::from(lost) * 100.0 / 256.0));
        }
        if let Some(jitter) = self.jitter {
            parts.push(format!("jitter {:.1} ms", f64::from(jitter) / 90.0));
        }
        if let Some(rtt) = self.rtt {
            parts.push(format!("rtt {:.1} ms", rtt.as_secs_f64() * 1000.0));
        }
        if let Some(remb) = self.remb {
            parts.push(format!("REMB {} kbit/s", remb / 1000));
        }
        if parts.is_empty() {
            "no feedback".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// The call's summary line. `rates`: the controller's summary with its floor and cap;
    /// `None` when the source's own encoder kept its rate.
    pub(crate) fn summary(&self, rates: Option<(&BitrateSummary, u32, u32)>) -> String {
        let rates = match rates {
            Some((r, floor, cap)) => format!(
                "min {} max {} last {} kbit/s (floor {}, cap {}), {} changes",
                r.min / 1000,
                r.max / 1000,
                r.last / 1000,
                floor / 1000,
                cap / 1000,
                r.changes
            ),
            None => "not adapted (the source's own encoder)".to_owned(),
        };
        format!(
            "video bitrate: {rates}; feedback: {} receiver reports, {} REMBs, {} transport-cc ({})",
            self.reports,
            self.rembs,
            self.transport_cc,
            self.latest()
        )
    }
}

/// What the interceptor calls with each piece of feedback. It runs on the connection's driver
/// and must not block.
pub(crate) type Sink = Box<dyn Fn(Feedback) + Send + Sync>;

/// The interceptor. See the module.
pub(crate) struct VideoFeedback {
    sink: Sink,
    /// The SSRCs the door sends video with (learnt as the local streams are bound).
    video: HashSet<u32>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl VideoFeedback {
    pub(crate) fn new(sink: Sink) -> VideoFeedback {
        VideoFeedback {
            sink,
            video: HashSet::new(),
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }

    fn report(&self, r: &ReceptionReport, now_ntp_middle: u32) {
        if !self.video.contains(&r.ssrc) {
            return;
        }
        (self.sink)(Feedback::Report {
            fraction_lost: r.fraction_lost,
            jitter: r.jitter,
            rtt: round_trip(now_ntp_middle, r.last_sender_report, r.delay),
        });
    }

    fn inspect(&self, packet: &dyn ::rtc::rtcp::Packet) {
        let any = packet.as_any();
        if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            let now = ntp_middle(SystemTime::now());
            rr.reports.iter().for_each(|r| self.report(r, now));
        } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
            let now = ntp_middle(SystemTime::now());
            sr.reports.iter().for_each(|r| self.report(r, now));
        } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
            // A REMB names the streams it covers; one that names none of the door's video (its
            // audio alone) is not about the video.
            if remb.ssrcs.is_empty() || remb.ssrcs.iter().any(|s| self.video.contains(s)) {
                (self.sink)(Feedback::Remb {
                    bitrate: remb.bitrate.max(0.0) as u64,
                });
            }
        } else if any.is::<TransportLayerCc>() {
            (self.sink)(Feedback::TransportCc);
        }
    }
}

/// The middle 32 bits of the NTP timestamp of `t` (RFC 3550's LSR/DLSR unit: 1/65536 s).
fn ntp_middle(t: SystemTime) -> u32 {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs().wrapping_add(0x83AA_7E80);
    let fraction = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
    (((seconds << 32) | fraction) >> 16) as u32
}

/// RFC 3550 6.4.1: the round trip is now − LSR − DLSR, all in 1/65536 s; none when the report
/// echoes no sender report (LSR 0), or when the result is implausible (a clock step).
fn round_trip(now: u32, lsr: u32, dlsr: u32) -> Option<Duration> {
    if lsr == 0 {
        return None;
    }
    let rtt = now.wrapping_sub(lsr).wrapping_sub(dlsr);
    // More than a minute is a wrap, not a round trip.
    (rtt < 60 << 16).then(|| Duration::from_micros(u64::from(rtt) * 1_000_000 / 65_536))
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for VideoFeedback {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for p in packets {
                self.inspect(p.as_ref());
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for VideoFeedback {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info.mime_type.to_ascii_lowercase().starts_with("video/") {
            self.video.insert(info.ssrc);
        }
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.video.remove(&info.ssrc);
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn collecting() -> (VideoFeedback, Arc<Mutex<Vec<Feedback>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        let mut f = VideoFeedback::new(Box::new(move |fb| sink.lock().unwrap().push(fb)));
        f.bind_local_stream(&StreamInfo {
            ssrc: 7,
            mime_type: "video/H264".to_owned(),
            ..Default::default()
        });
        f.bind_local_stream(&StreamInfo {
            ssrc: 9,
            mime_type: "audio/opus".to_owned(),
            ..Default::default()
        });
        (f, got)
    }

    #[test]
    fn reports_about_the_video_and_rembs_come_out_others_do_not() {
        let (f, got) = collecting();
        let rr = ReceiverReport {
            ssrc: 1,
            reports: vec![
                ReceptionReport {
                    ssrc: 7,
                    fraction_lost: 30,
                    jitter: 90,
                    ..Default::default()
                },
                ReceptionReport {
                    ssrc: 9,
                    fraction_lost: 200,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        f.inspect(&rr);
        f.inspect(&ReceiverEstimatedMaximumBitrate {
            sender_ssrc: 1,
            bitrate: 345_000.0,
            ssrcs: vec![7],
        });
        f.inspect(&ReceiverEstimatedMaximumBitrate {
            sender_ssrc: 1,
            bitrate: 1_000.0,
            ssrcs: vec![9],
        });
        assert_eq!(
            *got.lock().unwrap(),
            vec![
                Feedback::Report {
                    fraction_lost: 30,
                    jitter: 90,
                    rtt: None
                },
                Feedback::Remb { bitrate: 345_000 },
            ]
        );
    }

    #[test]
    fn the_summary_names_rates_and_feedback() {
        let mut log = FeedbackLog::default();
        log.note(
            "c",
            &Feedback::Report {
                fraction_lost: 0,
                jitter: 180,
                rtt: Some(Duration::from_millis(3)),
            },
        );
        log.note("c", &Feedback::Remb { bitrate: 211_000 });
        let rates = crate::call::bitrate::BitrateController::new(200_000, 200_000).summary();
        let line = log.summary(Some((&rates, 100_000, 200_000)));
        assert!(
            line.starts_with("video bitrate: min 200 max 200 last 200 kbit/s (floor 100, cap 200)"),
            "{line}"
        );
        assert!(
            line.contains("1 receiver reports, 1 REMBs, 0 transport-cc")
                && line.contains("jitter 2.0 ms, rtt 3.0 ms, REMB 211 kbit/s"),
            "{line}"
        );
        assert!(log.summary(None).contains("not adapted"));
    }

    #[test]
    fn round_trip_follows_rfc_3550() {
        // Sent at 10 s, held 1.5 s by the receiver, back at 11.75 s: 250 ms.
        let at = |s: f64| (s * 65_536.0) as u32;
        let rtt = round_trip(at(11.75), at(10.0), at(1.5)).unwrap();
        assert_eq!(rtt.as_millis(), 250);
        assert_eq!(round_trip(at(11.75), 0, at(1.5)), None);
        // A report from the future (clock step): no round trip.
        assert_eq!(round_trip(at(9.0), at(10.0), 0), None);
    }
}
