//! A call's H.264 from a camera and an M2M encoder, with the software encoder taking over when
//! the hardware fails mid-call.

use super::*;

/// A camera's frames as it gives them, for an M2M encoder that takes its format, and as I420
/// for one that does not (and for the software encoder, as a [`VideoSource`]).
pub trait RawFrames: VideoSource + 'static {
    /// The camera's format.
    fn fourcc(&self) -> FourCc;
    /// The camera's next frame as it is, and its row stride in bytes.
    fn next_raw(&mut self) -> Result<(Vec<u8>, u32), MediaError>;
    /// A frame [`RawFrames::next_raw`] gave, as I420.
    fn to_i420(&mut self, raw: &[u8]) -> Result<VideoFrame, MediaError>;
}

/// A call's H.264 from camera frames and an M2M encoder (pulled: a frame each call). If the
/// encoder fails mid-call (vanished, stuck), the frames go to the software encoder from then
/// on: the call keeps its video.
pub struct M2mH264<D: M2mDevice, F: RawFrames> {
    path: EncodePath<D, F>,
    name: String,
}

enum EncodePath<D: M2mDevice, F: RawFrames> {
    Hardware {
        frames: Box<F>,
        encoder: Box<M2mEncoder<D>>,
        /// The camera's frames go in as they are (the encoder takes its format); else as I420.
        as_is: bool,
    },
    Software(Box<SoftwareH264>),
    /// Only while switching from one to the other.
    Switching,
}

impl<D: M2mDevice, F: RawFrames> M2mH264<D, F> {
    /// `frames` through `encoder` (opened for their size, in their format or in I420); `name`:
    /// the camera's, for logs.
    pub fn new(encoder: M2mEncoder<D>, frames: F, name: String) -> M2mH264<D, F> {
        let as_is = encoder.settings.input == frames.fourcc();
        M2mH264 {
            path: EncodePath::Hardware {
                frames: Box::new(frames),
                encoder: Box::new(encoder),
                as_is,
            },
            name,
        }
    }

    /// Whether the hardware still encodes.
    pub fn in_hardware(&self) -> bool {
        matches!(self.path, EncodePath::Hardware { .. })
    }

    /// From now on in software, at the encoder's size, rate and bitrate.
    fn fall_back(&mut self, why: &MediaError) {
        if let EncodePath::Hardware {
            frames, encoder, ..
        } = std::mem::replace(&mut self.path, EncodePath::Switching)
        {
            log::warn!(
                "camera {}: {why}; encoding in software from now on",
                self.name
            );
            let s = encoder.settings;
            let bitrate = encoder.bitrate();
            drop(encoder);
            self.path = EncodePath::Software(Box::new(SoftwareH264::new(
                frames,
                (s.width, s.height, s.fps),
                bitrate,
                self.name.clone(),
            )));
        }
    }
}

impl<D: M2mDevice + Send, F: RawFrames> H264Source for M2mH264<D, F> {
    fn pacing(&self) -> Pacing {
        Pacing::Pull
    }

    fn next_access_unit(&mut self, keyframe: bool) -> Result<Option<Vec<u8>>, MediaError> {
        let result = match &mut self.path {
            EncodePath::Hardware {
                frames,
                encoder,
                as_is,
            } => {
                // A camera failure is the call's (as on the software path); an encoder's is not.
                let (raw, stride) = frames.next_raw()?;
                if *as_is {
                    encoder.encode(&raw, stride, keyframe)
                } else {
                    let frame = frames.to_i420(&raw)?;
                    encoder.encode(&frame.data, frame.width, keyframe)
                }
            }
            EncodePath::Software(software) => return software.next_access_unit(keyframe),
            EncodePath::Switching => {
                return Err(MediaError::Codec(format!(
                    "camera {}: no encoder",
                    self.name
                )))
            }
        };
        match result {
            Ok(au) => Ok(Some(au)),
            Err(e) => {
                self.fall_back(&e);
                // The software encoder starts with an IDR frame: the viewer resynchronises.
                self.next_access_unit(true)
            }
        }
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_bitrate(&mut self, bitrate: u32) -> Result<bool, MediaError> {
        match &mut self.path {
            EncodePath::Hardware { encoder, .. } => match encoder.set_bitrate(bitrate) {
                Ok(()) => Ok(true),
                Err(e) => {
                    self.fall_back(&e);
                    self.set_bitrate(bitrate)
                }
            },
            EncodePath::Software(software) => software.set_bitrate(bitrate),
            EncodePath::Switching => Ok(false),
        }
    }
}
