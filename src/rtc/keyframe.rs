//! Keyframe requests from the viewer (PLI, FIR) up to the door's encoder.
//!
//! Inbound RTCP ends at the top of webrtc's interceptor chain unless an interceptor marks a packet
//! for the application. This one sits above every other (it only looks) and marks the compound
//! packets that hold a keyframe request, narrowed to those requests; the driver then hands them to
//! the local track they name, where the call's task reads them. Everything else it drops: the
//! interceptors below it have already acted on the reports, NACKs and the rest.

use std::collections::VecDeque;
use std::time::Instant;

use ::rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use ::rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use ::rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use ::rtc::sansio::Protocol;
use ::rtc::shared::error::Error;

/// Above the jitter buffer (13 000), the highest named slot: the last to see inbound RTCP.
pub(crate) const SLOT: usize = 14_000;

pub(crate) fn slot() -> Slot {
    Slot::from(SLOT)
}

/// Whether one RTCP packet asks for a keyframe.
pub(crate) fn is_keyframe_request(packet: &dyn ::rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// The interceptor. See the module.
#[derive(Default)]
pub(crate) struct KeyframeRequests {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequests {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Error> {
        if let Packet::Rtcp(packets) = &mut msg.message.packet {
            // An empty compound packet is an attribute carrier, not RTCP: pass it on untouched.
            if !packets.is_empty() {
                packets.retain(|p| is_keyframe_request(p.as_ref()));
                if packets.is_empty() {
                    return Ok(());
                }
                msg.message.add(Attribute::DeliverToApplication);
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

impl Interceptor for KeyframeRequests {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::rtc::rtcp::receiver_report::ReceiverReport;

    #[test]
    fn recognises_pli_and_fir_only() {
        assert!(is_keyframe_request(&PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 2
        }));
        assert!(is_keyframe_request(&FullIntraRequest::default()));
        assert!(!is_keyframe_request(&ReceiverReport::default()));
    }
}
