//! The peer's keypad: RFC 4733 telephone-events on the call's audio.
//!
//! Browsers send DTMF (`RTCDTMFSender.insertDTMF`, matrix-js-sdk's `sendDtmfDigit`) only when
//! the negotiated audio has `telephone-event` (`canInsertDTMF`). Chromium offers it at 48 kHz
//! (payload type 110, the rate it uses beside Opus) and at 8 kHz (126), without fmtp. The door
//! registers the 48 kHz one, with Chromium's payload type. Only that one: webrtc 0.21 tells
//! codecs apart by MIME type and fmtp alone, never by clock rate, so a second telephone-event
//! would be taken for the first (its payload type offered twice). And it has to be kept on the
//! audio transceiver by hand ([`keep_events`]): adding a track whose encoding names a codec
//! (Opus) makes that codec the transceiver's only preference, and offers and answers would
//! carry Opus alone. When the peer offers, the answer keeps the peer's payload types.
//!
//! The events arrive on the same RTP stream as the Opus (same SSRC, sequence numbers shared,
//! their own payload type): webrtc routes packets to the remote track by SSRC alone, so the
//! audio reader hands them here by payload type ([`Keys::take`]) instead of to the decoder.
//!
//! [`EventReader`] turns the packets into keys, each exactly once. What a press looks like on
//! the wire (RFC 4733 §2.5): every packet of one event has the event's start as its RTP
//! timestamp; the first has the marker bit, the following ones a growing duration, the last
//! three (the same packet, repeated for loss) the end bit. So a key is reported at the first
//! packet of a new timestamp — whichever packet that is, a lost start does not lose the key —
//! and everything else about that timestamp is ignored. An event longer than the 16-bit
//! duration allows (1.4 s at 48 kHz) goes on in segments with new timestamps (§2.5.1.3): a new
//! timestamp for the same event, while the previous segment had not ended and had grown long,
//! is that event going on, not a second press. Packets older than the current event (reordered)
//! and payloads that are too short or carry no key (event codes above 15) report nothing.
//! Nothing here interprets the keys: the core decides what they do.

use std::sync::Arc;

use ::rtc::peer_connection::configuration::media_engine::MIME_TYPE_TELEPHONE_EVENT;
use ::rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters};
use ::rtc::rtp_transceiver::PayloadType;
use tokio::sync::mpsc;
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::RtpSender;

use crate::call::{CallId, RtcEvent};

/// The payload type the door offers for telephone-events: Chromium's.
pub(super) const PT_EVENTS: PayloadType = 110;

/// `telephone-event/48000` as Chromium declares it (no fmtp: events 0-15).
pub(super) fn events_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_TELEPHONE_EVENT.to_owned(),
        clock_rate: 48_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: Vec::new(),
    }
}

/// Makes the transceiver of the door's audio track offer and accept telephone-events beside
/// `audio` (its codec). Without them the call goes on, the keypad unheard.
pub(super) async fn keep_events(
    pc: &Arc<dyn PeerConnection>,
    track: &Arc<dyn RtpSender>,
    audio: RTCRtpCodecParameters,
    call: &str,
) {
    let events = RTCRtpCodecParameters {
        rtp_codec: events_codec(),
        payload_type: PT_EVENTS,
    };
    for transceiver in pc.get_transceivers().await {
        if let Ok(Some(sender)) = transceiver.sender().await {
            if sender.id() == track.id() {
                if let Err(e) = transceiver.set_codec_preferences(vec![audio, events]).await {
                    log::warn!(call_id = call; "telephone-event not offered (the keypad is off): {e}");
                }
                return;
            }
        }
    }
    log::warn!(call_id = call; "telephone-event not offered (the keypad is off): no audio transceiver");
}

/// The telephone-event payload types among the negotiated `codecs`.
pub(super) fn event_payload_types(codecs: &[RTCRtpCodecParameters]) -> Vec<PayloadType> {
    codecs
        .iter()
        .filter(|c| {
            c.rtp_codec
                .mime_type
                .eq_ignore_ascii_case(MIME_TYPE_TELEPHONE_EVENT)
        })
        .map(|c| c.payload_type)
        .collect()
}

/// The key of an RFC 4733 event code (§3.2): 0-9, `*`, `#`, A-D; `None` for other events.
pub fn key_of(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// A segment that had grown to this duration may go on in another segment (see the module).
const LONG_SEGMENT: u16 = 0x8000;

/// Turns telephone-event packets into keys, each press once. See the module.
#[derive(Debug, Default)]
pub struct EventReader {
    current: Option<Current>,
}

#[derive(Debug)]
struct Current {
    timestamp: u32,
    event: u8,
    ended: bool,
    /// The longest duration seen for this timestamp.
    duration: u16,
}

impl EventReader {
    pub fn new() -> EventReader {
        EventReader::default()
    }

    /// One packet's RTP timestamp and payload; the key it starts, if it starts one.
    pub fn packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let &[event, flags, d0, d1, ..] = payload else {
            return None;
        };
        let end = flags & 0x80 != 0;
        let duration = u16::from_be_bytes([d0, d1]);
        if let Some(cur) = &mut self.current {
            let ahead = timestamp.wrapping_sub(cur.timestamp);
            if ahead == 0 {
                // The same event: an update, or its end (sent three times).
                cur.ended |= end;
                cur.duration = cur.duration.max(duration);
                return None;
            }
            if ahead >= 0x8000_0000 {
                // Older than the current event: a late packet of an event already reported.
                return None;
            }
            if !cur.ended && cur.event == event && cur.duration >= LONG_SEGMENT && ahead <= 0xFFFF {
                // A long press going on in a new segment.
                *cur = Current {
                    timestamp,
                    event,
                    ended: end,
                    duration,
                };
                return None;
            }
        }
        self.current = Some(Current {
            timestamp,
            event,
            ended: end,
            duration,
        });
        key_of(event)
    }
}

/// The telephone-events of one remote audio track: recognised by payload type, read, and each
/// new key reported to the core as [`RtcEvent::Dtmf`].
pub(super) struct Keys {
    payload_types: Vec<PayloadType>,
    reader: EventReader,
    call: CallId,
    events: mpsc::UnboundedSender<(CallId, RtcEvent)>,
}

impl Keys {
    pub(super) fn new(
        payload_types: Vec<PayloadType>,
        call: CallId,
        events: mpsc::UnboundedSender<(CallId, RtcEvent)>,
    ) -> Keys {
        Keys {
            payload_types,
            reader: EventReader::new(),
            call,
            events,
        }
    }

    /// Whether `packet` is a telephone-event rather than audio; if it is, it is read here (and
    /// a new key reported).
    pub(super) fn take(&mut self, packet: &::rtc::rtp::Packet) -> bool {
        if !self.payload_types.contains(&packet.header.payload_type) {
            return false;
        }
        if let Some(key) = self.reader.packet(packet.header.timestamp, &packet.payload) {
            // The key itself is never logged: it may be part of the door's code.
            log::debug!(call_id = self.call.0.as_str(); "keypad: the peer pressed a key");
            let _ = self.events.send((self.call.clone(), RtcEvent::Dtmf(key)));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One telephone-event payload.
    fn event(code: u8, end: bool, duration: u16) -> [u8; 4] {
        let [d0, d1] = duration.to_be_bytes();
        [code, if end { 0x80 | 10 } else { 10 }, d0, d1]
    }

    /// The packets of one press at 48 kHz as Chromium sends them: start, an update every 50 ms
    /// (2400 units), then the end three times.
    fn press(code: u8, timestamp: u32, updates: u16) -> Vec<(u32, [u8; 4])> {
        let mut packets = vec![(timestamp, event(code, false, 0))];
        for i in 1..=updates {
            packets.push((timestamp, event(code, false, i * 2400)));
        }
        for _ in 0..3 {
            packets.push((timestamp, event(code, true, (updates + 1) * 2400)));
        }
        packets
    }

    fn read(reader: &mut EventReader, packets: &[(u32, [u8; 4])]) -> String {
        packets
            .iter()
            .filter_map(|(ts, p)| reader.packet(*ts, p))
            .collect()
    }

    #[test]
    fn event_codes_map_to_the_sixteen_keys() {
        let keys: String = (0..16).map(|e| key_of(e).unwrap()).collect();
        assert_eq!(keys, "0123456789*#ABCD");
        assert_eq!(key_of(16), None, "flash");
        assert_eq!(key_of(255), None);
    }

    #[test]
    fn each_press_is_one_key_however_often_its_end_is_repeated() {
        let mut r = EventReader::new();
        let mut packets = Vec::new();
        for (i, code) in [1, 2, 3, 4, 11].into_iter().enumerate() {
            packets.extend(press(code, 1000 + i as u32 * 8160, 2));
        }
        assert_eq!(read(&mut r, &packets), "1234#");
        // The same key twice is two presses (two timestamps).
        let mut r = EventReader::new();
        let mut packets = press(5, 500, 1);
        packets.extend(press(5, 500 + 8160, 1));
        assert_eq!(read(&mut r, &packets), "55");
    }

    #[test]
    fn a_lost_start_or_lost_updates_do_not_lose_the_key() {
        let mut r = EventReader::new();
        let packets = press(7, 9000, 2);
        assert_eq!(read(&mut r, &packets[1..]), "7", "start lost");
        let mut r = EventReader::new();
        assert_eq!(
            read(&mut r, &packets[4..]),
            "7",
            "only the last ends arrived"
        );
        let mut r = EventReader::new();
        assert_eq!(read(&mut r, &packets[..1]), "7", "every end lost");
    }

    #[test]
    fn late_packets_of_an_earlier_press_are_not_a_new_press() {
        let mut r = EventReader::new();
        let first = press(1, 1000, 2);
        let second = press(2, 1000 + 8160, 2);
        assert_eq!(read(&mut r, &first[..2]), "1");
        assert_eq!(read(&mut r, &second[..2]), "2");
        // The first press's ends, reordered behind the second's start.
        assert_eq!(read(&mut r, &first[2..]), "");
        assert_eq!(read(&mut r, &second[2..]), "");
    }

    #[test]
    fn a_press_longer_than_one_segment_is_one_key() {
        let mut r = EventReader::new();
        // Segment one grows to the 16-bit maximum without ending; segment two starts where it
        // stopped and ends.
        let mut packets = vec![
            (100, event(9, false, 0)),
            (100, event(9, false, 40_000)),
            (100, event(9, false, 0xFFFF)),
        ];
        packets.extend(press(9, 100 + 0xFFFF, 2).into_iter().skip(1));
        assert_eq!(read(&mut r, &packets), "9");
        // A short press whose ends were all lost, then the same key again: two presses.
        let mut r = EventReader::new();
        let mut packets = press(9, 100, 1);
        packets.truncate(2);
        packets.extend(press(9, 100 + 8160, 1));
        assert_eq!(read(&mut r, &packets), "99");
    }

    #[test]
    fn timestamps_wrap_around() {
        let mut r = EventReader::new();
        let mut packets = press(3, u32::MAX - 100, 1);
        packets.extend(press(4, (u32::MAX - 100).wrapping_add(8160), 1));
        assert_eq!(read(&mut r, &packets), "34");
    }

    #[test]
    fn garbage_reports_nothing_and_never_panics() {
        let mut r = EventReader::new();
        for short in [&[][..], &[1], &[1, 0x80], &[1, 0x80, 0]] {
            assert_eq!(r.packet(5, short), None, "{short:?}");
        }
        // Not a key (flash, 16), then a key at a new timestamp: only the key.
        assert_eq!(r.packet(10, &event(16, false, 0)), None);
        assert_eq!(r.packet(20, &event(0, false, 0)), Some('0'));
        // Extra bytes after the event are ignored.
        assert_eq!(r.packet(30, &[12, 0, 0, 0, 0xde, 0xad]), Some('A'));
        // Random payloads and timestamps: no panic, and never a key without a new timestamp.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let (mut keys, mut new_timestamps, mut last, mut base) = (0, 0, None, 0u32);
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = x.to_be_bytes();
            let len = (bytes[0] % 9) as usize;
            // Mostly forward, sometimes the same, sometimes back (reordered).
            base = base.wrapping_add(u32::from(bytes[1] % 3) * 3000);
            let ts = if bytes[2] < 32 {
                base.wrapping_sub(6000)
            } else {
                base
            };
            if len >= 4 && last != Some(ts) {
                new_timestamps += 1;
                last = Some(ts);
            }
            if r.packet(ts, &bytes[..len]).is_some() {
                keys += 1;
            }
        }
        assert!(
            keys > 0 && keys <= new_timestamps,
            "{keys} keys, {new_timestamps} timestamps"
        );
    }

    #[test]
    fn negotiated_event_payload_types_are_found() {
        let codec = |mime: &str, pt| RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime.to_owned(),
                ..events_codec()
            },
            payload_type: pt,
        };
        let codecs = [
            codec("audio/opus", 111),
            codec("audio/telephone-event", 110),
            codec("audio/TELEPHONE-EVENT", 101),
        ];
        assert_eq!(event_payload_types(&codecs), vec![110, 101]);
    }
}
