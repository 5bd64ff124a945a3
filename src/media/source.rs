//! Where a call's H.264 comes from: [`H264Source`], with its implementations — frames encoded
//! in software ([`SoftwareH264`]: a [`VideoSource`] and openh264), a camera's own H.264
//! (`v4l2::PassThroughH264`), and a program's standard output ([`ExecH264`], e.g. `rpicam-vid`).
//!
//! Two pacings: a *pull* source makes an access unit when asked (the call's frame clock asks);
//! a *push* source has its own clock (the camera's) and hands over every access unit as it
//! comes: H.264 cannot drop a frame without breaking the ones after it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::h264::H264Encoder;
use super::{MediaError, VideoSource};

/// Who sets the pace. See the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    Pull,
    Push,
}

/// How long a push source waits for an access unit before saying it has none yet: the encoder
/// thread checks for keyframe requests and for the end of the call in between.
pub const PUSH_WAIT: Duration = Duration::from_millis(200);

/// A stream of H.264 access units (Annex-B, constrained-baseline-compatible).
pub trait H264Source: Send {
    fn pacing(&self) -> Pacing;

    /// The next access unit. Pull: encodes the next frame now (an IDR frame when `keyframe`),
    /// empty when rate control skipped it. Push: waits up to [`PUSH_WAIT`], `None` when nothing
    /// came; `keyframe` asks the source for one soon (a camera control, if it has one).
    fn next_access_unit(&mut self, keyframe: bool) -> Result<Option<Vec<u8>>, MediaError>;

    /// What the source is, for logs ("/dev/video0", "rpicam-vid").
    fn name(&self) -> &str;

    /// Aims the encoder at `bitrate` bits a second from now on. `Ok(false)`: the source's
    /// encoder is out of reach (a camera's own, a command's), and keeps its own rate.
    fn set_bitrate(&mut self, _bitrate: u32) -> Result<bool, MediaError> {
        Ok(false)
    }
}

/// Frames from a [`VideoSource`], encoded with openh264.
pub struct SoftwareH264 {
    source: Box<dyn VideoSource>,
    size: (u32, u32, u32),
    bitrate: u32,
    /// Made by the first call, on the encoder's thread: the first frame initialises it there.
    encoder: Option<H264Encoder>,
    name: String,
}

impl SoftwareH264 {
    /// `source` gives `width`×`height` frames; encoded at `fps` and `bitrate` bits a second.
    pub fn new(
        source: Box<dyn VideoSource>,
        (width, height, fps): (u32, u32, u32),
        bitrate: u32,
        name: String,
    ) -> SoftwareH264 {
        SoftwareH264 {
            source,
            size: (width, height, fps),
            bitrate,
            encoder: None,
            name,
        }
    }
}

impl H264Source for SoftwareH264 {
    fn pacing(&self) -> Pacing {
        Pacing::Pull
    }

    fn next_access_unit(&mut self, keyframe: bool) -> Result<Option<Vec<u8>>, MediaError> {
        let encoder = match &mut self.encoder {
            Some(e) => e,
            None => {
                let (w, h, fps) = self.size;
                self.encoder
                    .insert(H264Encoder::new(w, h, fps, self.bitrate)?)
            }
        };
        let frame = self.source.next_frame()?;
        encoder.encode(&frame, keyframe).map(Some)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_bitrate(&mut self, bitrate: u32) -> Result<bool, MediaError> {
        match &mut self.encoder {
            Some(encoder) => encoder.set_bitrate(bitrate)?,
            // The encoder is made with the next frame, at this rate.
            None => self.bitrate = bitrate,
        }
        Ok(true)
    }
}

/// The bitrate the software encoder aims at: the size's default, capped at `max`.
pub fn capped_bitrate(width: u32, height: u32, fps: u32, max: u32) -> u32 {
    H264Encoder::default_bitrate(width, height, fps).min(max.max(1))
}

/// Splits an Annex-B byte stream into access units (H.264 7.4.1.2.3): a new one starts at an
/// access unit delimiter, SEI, SPS or PPS after a slice, or at a slice whose first macroblock
/// is 0. An access unit is complete when the next one starts, so it comes out one NAL unit
/// late; [`AccessUnits::finish`] gives the last.
#[derive(Debug, Default)]
pub struct AccessUnits {
    /// Bytes not yet split into NAL units (from the last start code on).
    pending: Vec<u8>,
    /// The NAL units of the access unit being gathered.
    current: Vec<u8>,
    current_has_slice: bool,
    /// Where the search for the next start code resumes in `pending`.
    scan: usize,
}

const START: [u8; 4] = [0, 0, 0, 1];

impl AccessUnits {
    pub fn new() -> AccessUnits {
        AccessUnits::default()
    }

    /// Feeds bytes; returns the access units completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            // The start code that opens `pending`'s first NAL unit.
            let Some((first, first_len)) = find_start(&self.pending, 0) else {
                // No start code yet: keep the last two bytes (a start code may straddle).
                let keep = self.pending.len().min(2);
                self.pending.drain(..self.pending.len() - keep);
                self.scan = 0;
                return out;
            };
            let body = first + first_len;
            let Some((next, _)) = find_start(&self.pending, body.max(self.scan)) else {
                self.scan = self.pending.len().saturating_sub(3).max(body);
                if first > 0 {
                    self.pending.drain(..first);
                    self.scan -= first;
                }
                return out;
            };
            let nal = self.pending[body..next].to_vec();
            self.pending.drain(..next);
            self.scan = 0;
            if let Some(au) = self.add_nal(&nal) {
                out.push(au);
            }
        }
    }

    /// What is left at the end of the stream: the last access unit (two, if its last NAL
    /// unit began a new one).
    pub fn finish(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if let Some((first, len)) = find_start(&self.pending, 0) {
            let nal = self.pending[first + len..].to_vec();
            out.extend(self.add_nal(&nal));
        }
        self.pending.clear();
        self.scan = 0;
        self.current_has_slice = false;
        let rest = std::mem::take(&mut self.current);
        if !rest.is_empty() {
            out.push(rest);
        }
        out
    }

    fn add_nal(&mut self, nal: &[u8]) -> Option<Vec<u8>> {
        // Trailing zero bytes belong to the next start code (or are padding).
        let end = nal.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        let nal = &nal[..end];
        let header = nal.first()?;
        let typ = header & 0x1f;
        let slice = matches!(typ, 1 | 5);
        let starts_au = self.current_has_slice
            && (matches!(typ, 6..=9 | 14..=18)
                // first_mb_in_slice is ue(v); 0 is the single bit `1`.
                || (slice && nal.get(1).is_some_and(|b| b & 0x80 != 0)));
        let done = if starts_au {
            self.current_has_slice = false;
            Some(std::mem::take(&mut self.current))
        } else {
            None
        };
        self.current.extend_from_slice(&START);
        self.current.extend_from_slice(nal);
        self.current_has_slice |= slice;
        done
    }
}

/// The first start code at or after `from`: its position and length (3 or 4).
fn find_start(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= buf.len() {
        if buf[i + 2] > 1 {
            i += 3;
        } else if buf[i] == 0 && buf[i + 1] == 0 && buf[i + 2] == 1 {
            return Some(if i > from && buf[i - 1] == 0 {
                (i - 1, 4)
            } else {
                (i, 3)
            });
        } else {
            i += 1;
        }
    }
    None
}

/// H.264 from a program's standard output (Annex-B): `rpicam-vid -t 0 --codec h264 --inline
/// -o -` for a CSI camera on a Pi. Started with the call, killed when it ends (dropped).
/// Keyframes come at the program's own interval (`--intra`): it takes no requests.
pub struct ExecH264 {
    child: Child,
    units: mpsc::Receiver<Vec<u8>>,
    name: String,
    /// How the reader ended, once it has.
    ended: Option<MediaError>,
}

/// Whether `program` names a file that can be run: a path, or a name found on `PATH`.
pub fn program_exists(program: &str) -> bool {
    if program.contains('/') {
        std::path::Path::new(program).is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
    }
}

impl ExecH264 {
    /// Starts `command` (program and arguments).
    pub fn spawn(command: &[String]) -> Result<ExecH264, MediaError> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| MediaError::Open("camera command: empty".to_owned()))?;
        let name = program.rsplit('/').next().unwrap_or(program).to_owned();
        // Looked up first: a failed exec is not reported by every spawn path (qemu-user's
        // emulated vfork, for one, starts a child that only exits 127).
        if !program_exists(program) {
            return Err(MediaError::Open(format!(
                "camera command {program:?}: cannot start: not found{}",
                if program.contains('/') {
                    ""
                } else {
                    " on PATH"
                }
            )));
        }
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                MediaError::Open(format!("camera command {program:?}: cannot start: {e}"))
            })?;
        let mut stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (tx, units) = mpsc::sync_channel::<Vec<u8>>(64);
        let who = name.clone();
        std::thread::Builder::new()
            .name("camera-stderr".to_owned())
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    match line {
                        Ok(line) => log::debug!("{who}: {line}"),
                        Err(_) => break,
                    }
                }
            })
            .map_err(|e| MediaError::Failed(format!("camera command: {e}")))?;
        std::thread::Builder::new()
            .name("camera-stdout".to_owned())
            .spawn(move || {
                let mut splitter = AccessUnits::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match stdout.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            for au in splitter.push(&buf[..n]) {
                                if tx.send(au).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
                for au in splitter.finish() {
                    if tx.send(au).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| MediaError::Failed(format!("camera command: {e}")))?;
        Ok(ExecH264 {
            child,
            units,
            name,
            ended: None,
        })
    }
}

impl H264Source for ExecH264 {
    fn pacing(&self) -> Pacing {
        Pacing::Push
    }

    fn next_access_unit(&mut self, _keyframe: bool) -> Result<Option<Vec<u8>>, MediaError> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        match self.units.recv_timeout(PUSH_WAIT) {
            Ok(au) => Ok(Some(au)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = match self.child.wait() {
                    Ok(s) => s.to_string(),
                    Err(e) => e.to_string(),
                };
                let e =
                    MediaError::Gone(format!("camera command {:?} ended ({status})", self.name));
                self.ended = Some(e.clone());
                Err(e)
            }
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ExecH264 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::h264::nal_types;
    use crate::media::synthetic::TestPattern;

    fn encoded_stream(frames: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut source = SoftwareH264::new(
            Box::new(TestPattern::new(160, 120, 15)),
            (160, 120, 15),
            200_000,
            "test".to_owned(),
        );
        let mut stream = Vec::new();
        let mut units = Vec::new();
        for i in 0..frames {
            let au = source.next_access_unit(i == 3).unwrap().unwrap();
            if !au.is_empty() {
                stream.extend_from_slice(&au);
                units.push(au);
            }
        }
        (stream, units)
    }

    #[test]
    fn access_units_come_out_as_they_went_in_whatever_the_chunking() {
        let (stream, units) = encoded_stream(8);
        for chunk in [1, 2, 3, 7, 1000, stream.len()] {
            let mut splitter = AccessUnits::new();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                got.extend(splitter.push(piece));
            }
            got.extend(splitter.finish());
            assert_eq!(got.len(), units.len(), "chunks of {chunk}");
            for (a, b) in got.iter().zip(&units) {
                assert_eq!(nal_types(a), nal_types(b), "chunks of {chunk}");
                // Same NAL units (the splitter writes 4-byte start codes).
                assert_eq!(strip(a), strip(b), "chunks of {chunk}");
            }
        }
    }

    /// The NAL units of an access unit, without start codes or trailing zeros.
    fn strip(au: &[u8]) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        for i in 0..au.len() {
            if au[i..].starts_with(&[0, 0, 1]) {
                let end = (i + 3..au.len())
                    .find(|&j| au[j..].starts_with(&[0, 0, 1]))
                    .unwrap_or(au.len());
                let mut nal = au[i + 3..end].to_vec();
                while nal.last() == Some(&0) {
                    nal.pop();
                }
                nals.push(nal);
            }
        }
        nals
    }

    #[test]
    fn garbage_before_the_first_start_code_is_skipped() {
        let (stream, units) = encoded_stream(2);
        let mut splitter = AccessUnits::new();
        let mut noisy = b"banner text\n".to_vec();
        noisy.extend_from_slice(&stream);
        let mut got = splitter.push(&noisy);
        got.extend(splitter.finish());
        assert_eq!(got.len(), units.len());
        assert_eq!(nal_types(&got[0]), nal_types(&units[0]));
    }

    #[test]
    fn bitrate_cap_applies() {
        assert_eq!(capped_bitrate(640, 480, 15, 2_000_000), 460_800);
        assert_eq!(capped_bitrate(640, 480, 15, 300_000), 300_000);
        assert_eq!(capped_bitrate(1920, 1080, 30, 10_000_000), 2_000_000);
    }

    #[test]
    fn a_command_that_cannot_start_is_a_clear_error() {
        let err = ExecH264::spawn(&["/nonexistent/rpicam-vid".to_owned()])
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("rpicam-vid") && err.to_string().contains("cannot start"),
            "{err}"
        );
    }

    #[test]
    fn only_the_software_encoder_takes_a_new_bitrate() {
        let mut software = SoftwareH264::new(
            Box::new(TestPattern::new(160, 120, 15)),
            (160, 120, 15),
            200_000,
            "test".to_owned(),
        );
        // Before the first frame and after it.
        assert!(software.set_bitrate(150_000).unwrap());
        software.next_access_unit(false).unwrap();
        assert!(software.set_bitrate(300_000).unwrap());
        let mut command = ExecH264::spawn(&["true".to_owned()]).unwrap();
        assert!(!command.set_bitrate(300_000).unwrap());
    }

    #[test]
    fn a_command_that_ends_is_reported() {
        let mut source = ExecH264::spawn(&["true".to_owned()]).unwrap();
        let err = loop {
            match source.next_access_unit(false) {
                Ok(None) => continue,
                Ok(Some(au)) => panic!("{au:?}"),
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("\"true\" ended"), "{err}");
    }
}
