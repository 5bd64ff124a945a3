//! What a camera can do, and the choice of how the door gets H.264 out of it.
//!
//! Pure data and pure functions: [`CameraCaps`] is what a V4L2 device reports (pixel formats,
//! frame sizes, frame intervals, whether it takes a keyframe request), [`EncoderCaps`] is a V4L2
//! memory-to-memory H.264 encoder (the Pi 3/4's `bcm2835-codec`), and [`choose`] turns them and
//! the wanted `[camera]` size and rate into a [`Plan`] with the reason for it, which the daemon
//! logs. `v4l2.rs` fills the data from a device and carries the plan out; nothing here touches a
//! device, so the choice is tested over the capability lists of real cameras.
//!
//! The order of preference, for the size and rate nearest the wanted ones:
//! 1. H.264 from the camera, sent as it comes (pass-through: nothing encoded on the Pi);
//! 2. raw frames or MJPEG handed to a hardware (M2M) encoder, when there is one that takes them;
//! 3. raw frames (YUYV, NV12, YU12) or MJPEG encoded in software (openh264) — the Pi 5 has no
//!    hardware encoder. Raw frames go before MJPEG there: decoding JPEG costs more than
//!    converting YUYV.
//!
//! Size comes first: a pass-through stream at a size far from the wanted one loses to an encoded
//! one at the wanted size. Then the frame rate (a rate below the wanted one costs more than the
//! path), then the path, then the format.

use std::fmt;

/// A V4L2 pixel format, by its fourcc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    pub const H264: FourCc = FourCc(*b"H264");
    pub const MJPG: FourCc = FourCc(*b"MJPG");
    /// Some drivers (the legacy Pi camera's) call baseline JPEG frames "JPEG".
    pub const JPEG: FourCc = FourCc(*b"JPEG");
    pub const YUYV: FourCc = FourCc(*b"YUYV");
    pub const NV12: FourCc = FourCc(*b"NV12");
    /// I420: planar Y, U, V.
    pub const YU12: FourCc = FourCc(*b"YU12");

    /// From the little-endian `u32` V4L2 uses.
    pub fn from_u32(v: u32) -> FourCc {
        FourCc(v.to_le_bytes())
    }

    pub fn to_u32(self) -> u32 {
        u32::from_le_bytes(self.0)
    }

    /// What the door can do with frames of this format.
    pub fn kind(self) -> FormatKind {
        match &self.0 {
            b"H264" => FormatKind::H264,
            b"MJPG" | b"JPEG" => FormatKind::Jpeg,
            b"YUYV" | b"NV12" | b"YU12" => FormatKind::Raw,
            _ => FormatKind::Unusable,
        }
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// How a format reaches the encoder, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatKind {
    H264,
    Jpeg,
    /// YUYV, NV12, YU12: converted to I420 by `convert.rs`.
    Raw,
    /// Bayer, RGB and the rest: the door does not convert them.
    Unusable,
}

/// Frame sizes of one format: a list, or a range with steps (`Stepwise`; `Continuous` is a
/// range with step 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sizes {
    Discrete(Vec<SizeRates>),
    Stepwise {
        min: (u32, u32),
        max: (u32, u32),
        step: (u32, u32),
        /// The rates offered at every size of the range.
        rates: Rates,
    },
}

/// One discrete size and its rates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeRates {
    pub width: u32,
    pub height: u32,
    pub rates: Rates,
}

/// Frame intervals, as V4L2 gives them (seconds per frame, a fraction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rates {
    /// Intervals `(numerator, denominator)`: `(1, 30)` is 30 frames a second.
    Discrete(Vec<(u32, u32)>),
    /// Any interval from `min` to `max`.
    Stepwise { min: (u32, u32), max: (u32, u32) },
    /// The device does not enumerate intervals (many drivers under `libcamerify`): whatever
    /// rate is asked for is tried.
    Unknown,
}

impl Rates {
    /// The rate nearest `fps`, preferring the lowest rate at or above it (the door drops frames
    /// rather than showing fewer), and whether that is below `fps`.
    fn nearest(&self, fps: u32) -> (f64, bool) {
        let want = f64::from(fps);
        let rates: Vec<f64> = match self {
            Rates::Discrete(intervals) => intervals
                .iter()
                .filter(|(n, d)| *n > 0 && *d > 0)
                .map(|(n, d)| f64::from(*d) / f64::from(*n))
                .collect(),
            Rates::Stepwise { min, max } => {
                let fastest = f64::from(min.1) / f64::from(min.0.max(1));
                let slowest = f64::from(max.1) / f64::from(max.0.max(1));
                vec![want.clamp(slowest.min(fastest), fastest.max(slowest))]
            }
            Rates::Unknown => vec![want],
        };
        let at_or_above = rates
            .iter()
            .copied()
            .filter(|r| *r + 1e-6 >= want)
            .min_by(|a, b| a.total_cmp(b));
        match at_or_above {
            Some(r) => (r, false),
            None => (rates.iter().copied().fold(0.0, f64::max), !rates.is_empty()),
        }
    }
}

/// One pixel format of a camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatCaps {
    pub fourcc: FourCc,
    /// The driver's name for it ("Motion-JPEG").
    pub description: String,
    pub sizes: Sizes,
}

/// What a capture device reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CameraCaps {
    /// The device node ("/dev/video0").
    pub device: String,
    /// The driver's card name ("HD Pro Webcam C920").
    pub card: String,
    pub formats: Vec<FormatCaps>,
    /// The device has `V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME` (an H.264 camera that takes
    /// keyframe requests).
    pub keyframe_control: bool,
}

/// A V4L2 memory-to-memory H.264 encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderCaps {
    /// The device node ("/dev/video11").
    pub device: String,
    pub card: String,
    /// The raw formats its OUTPUT queue (the frames going in) takes.
    pub inputs: Vec<FourCc>,
}

/// How the H.264 is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoding {
    /// The camera's H.264, sent as it is.
    PassThrough,
    /// Frames handed to a V4L2 M2M encoder, in `input` (the camera's own format, or I420 after
    /// conversion or JPEG decoding).
    Hardware { device: String, input: FourCc },
    /// openh264 on the CPU.
    Software,
}

/// What [`choose`] settled on.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub fourcc: FourCc,
    pub width: u32,
    pub height: u32,
    /// The frame rate asked of the camera.
    pub fps: u32,
    pub encoding: Encoding,
    /// Why, in a sentence for the log.
    pub reason: String,
}

/// Nearest size of `sizes` to `want`: `(width, height, rates)`.
fn nearest_size(sizes: &Sizes, want: (u32, u32)) -> Option<(u32, u32, Rates)> {
    let distance = |w: u32, h: u32| u64::from(w.abs_diff(want.0)) + u64::from(h.abs_diff(want.1));
    match sizes {
        Sizes::Discrete(list) => list
            .iter()
            // The encoders take even sizes only.
            .filter(|s| s.width % 2 == 0 && s.height % 2 == 0 && s.width > 0 && s.height > 0)
            .min_by_key(|s| (distance(s.width, s.height), u64::MAX - u64::from(s.width)))
            .map(|s| (s.width, s.height, s.rates.clone())),
        Sizes::Stepwise {
            min,
            max,
            step,
            rates,
        } => {
            let snap = |v: u32, lo: u32, hi: u32, step: u32| {
                let step = step.max(1);
                let v = v.clamp(lo, hi);
                let k = (v - lo + step / 2) / step;
                let mut s = (lo + k * step).min(hi);
                // Keep it even when the steps allow.
                if s % 2 == 1 {
                    if s + step <= hi && (s + step).is_multiple_of(2) {
                        s += step;
                    } else if s >= lo + step && (s - step).is_multiple_of(2) {
                        s -= step;
                    }
                }
                s
            };
            let w = snap(want.0, min.0, max.0, step.0);
            let h = snap(want.1, min.1, max.1, step.1);
            (w % 2 == 0 && h % 2 == 0).then(|| (w, h, rates.clone()))
        }
    }
}

/// Chooses the format, size, rate and encoding for a `want` of `(width, height, fps)`.
/// `encoders`: the M2M H.264 encoders of the machine. An error when the camera offers nothing
/// the door can use, naming what it offers.
pub fn choose(
    camera: &CameraCaps,
    encoders: &[EncoderCaps],
    want: (u32, u32, u32),
) -> Result<Plan, String> {
    let (ww, wh, wfps) = want;
    struct Candidate {
        key: (u64, u64, u8, u8, u64),
        plan: Plan,
    }
    let mut best: Option<Candidate> = None;
    for format in &camera.formats {
        let kind = format.fourcc.kind();
        if kind == FormatKind::Unusable {
            continue;
        }
        let Some((w, h, rates)) = nearest_size(&format.sizes, (ww, wh)) else {
            continue;
        };
        let (rate, short) = rates.nearest(wfps);
        let fps = if short {
            rate.floor().max(1.0) as u32
        } else {
            wfps
        };
        let (encoding, path_rank) = match kind {
            FormatKind::H264 => (Encoding::PassThrough, 0),
            _ => {
                // The M2M encoder takes the camera's own raw format, or I420 after conversion.
                let hw = encoders.iter().find_map(|e| {
                    if kind == FormatKind::Raw && e.inputs.contains(&format.fourcc) {
                        Some((e, format.fourcc))
                    } else if e.inputs.contains(&FourCc::YU12) {
                        Some((e, FourCc::YU12))
                    } else {
                        None
                    }
                });
                match hw {
                    Some((e, input)) => (
                        Encoding::Hardware {
                            device: e.device.clone(),
                            input,
                        },
                        1,
                    ),
                    None => (Encoding::Software, 2),
                }
            }
        };
        let format_rank = match (kind, &format.fourcc.0) {
            (FormatKind::H264, _) => 0,
            (FormatKind::Raw, b"YU12") => 1,
            (FormatKind::Raw, b"NV12") => 2,
            (FormatKind::Raw, _) => 3,
            _ => 4,
        };
        let size_distance = u64::from(w.abs_diff(ww)) + u64::from(h.abs_diff(wh));
        let shortfall = if short {
            ((f64::from(wfps) - rate) * 1000.0).round() as u64
        } else {
            0
        };
        let excess = ((rate - f64::from(wfps)).max(0.0) * 1000.0).round() as u64;
        let key = (size_distance, shortfall, path_rank, format_rank, excess);
        if best.as_ref().is_none_or(|b| key < b.key) {
            let how = match &encoding {
                Encoding::PassThrough => {
                    "the camera's own H.264, passed through without encoding".to_owned()
                }
                Encoding::Hardware { device, input } => {
                    let via = if *input == format.fourcc {
                        String::new()
                    } else if kind == FormatKind::Jpeg {
                        format!(", decoded to {input}")
                    } else {
                        format!(", converted to {input}")
                    };
                    format!(
                        "{} frames{via} encoded by the hardware encoder {device}",
                        format.fourcc
                    )
                }
                Encoding::Software => {
                    let what = if kind == FormatKind::Jpeg {
                        "decoded and "
                    } else {
                        ""
                    };
                    let why = if encoders.is_empty() {
                        "no hardware H.264 encoder"
                    } else {
                        "no hardware encoder takes them"
                    };
                    format!(
                        "{} frames {what}encoded in software (openh264; {why}{})",
                        format.fourcc,
                        if camera
                            .formats
                            .iter()
                            .any(|f| f.fourcc.kind() == FormatKind::H264)
                        {
                            ", and the camera's H.264 is further from the wanted size"
                        } else {
                            ", and the camera has no H.264"
                        }
                    )
                }
            };
            let mut reason = format!("{}: {how}, at {w}x{h}", camera.device);
            if (w, h) != (ww, wh) {
                reason.push_str(&format!(" (the nearest to the configured {ww}x{wh})"));
            }
            if short {
                reason.push_str(&format!(
                    ", {rate:.1} frames a second (the fastest it offers there; {wfps} configured)"
                ));
            } else {
                reason.push_str(&format!(", {wfps} frames a second"));
            }
            best = Some(Candidate {
                key,
                plan: Plan {
                    fourcc: format.fourcc,
                    width: w,
                    height: h,
                    fps,
                    encoding,
                    reason,
                },
            });
        }
    }
    best.map(|b| b.plan).ok_or_else(|| {
        let offered: Vec<String> = camera.formats.iter().map(|f| f.fourcc.to_string()).collect();
        format!(
            "{}: no format the door can use (it offers {}; the door takes H264, MJPG, YUYV, NV12 or YU12{})",
            camera.device,
            if offered.is_empty() {
                "none".to_owned()
            } else {
                offered.join(", ")
            },
            if offered.iter().any(|f| f.starts_with("BA") || f.starts_with("RG") || f.starts_with("pB")) {
                "; a CSI camera on current Raspberry Pi OS needs libcamera: run the daemon under `libcamerify`, or use device = \"exec\" with rpicam-vid"
            } else {
                ""
            }
        )
    })
}

/// A format that can give a still picture (for snapshots): JPEG or raw, nearest `want`.
pub fn choose_still(camera: &CameraCaps, want: (u32, u32)) -> Result<Plan, String> {
    let stills = CameraCaps {
        formats: camera
            .formats
            .iter()
            .filter(|f| matches!(f.fourcc.kind(), FormatKind::Jpeg | FormatKind::Raw))
            .cloned()
            .collect(),
        ..camera.clone()
    };
    if stills.formats.is_empty() {
        return Err(format!(
            "{}: no still format for a snapshot (it offers only {}; the door takes MJPG, YUYV, NV12 or YU12)",
            camera.device,
            camera
                .formats
                .iter()
                .map(|f| f.fourcc.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    choose(&stills, &[], (want.0, want.1, 5))
}

/// The lines `intercom devices` prints for a camera, like `v4l2-ctl --list-formats-ext`.
pub fn describe(camera: &CameraCaps) -> Vec<String> {
    let fmt_rates = |r: &Rates| match r {
        Rates::Discrete(list) => {
            list.iter()
                .filter(|(n, _)| *n > 0)
                .map(|(n, d)| {
                    let fps = f64::from(*d) / f64::from(*n);
                    if fps.fract() == 0.0 {
                        format!("{fps:.0}")
                    } else {
                        format!("{fps:.1}")
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
                + " fps"
        }
        Rates::Stepwise { min, max } => format!(
            "{:.1}-{:.1} fps",
            f64::from(max.1) / f64::from(max.0.max(1)),
            f64::from(min.1) / f64::from(min.0.max(1))
        ),
        Rates::Unknown => "rates not listed".to_owned(),
    };
    let mut lines = Vec::new();
    for f in &camera.formats {
        let usable = match f.fourcc.kind() {
            FormatKind::H264 => " — pass-through",
            FormatKind::Jpeg | FormatKind::Raw => "",
            FormatKind::Unusable => " — not used by the door",
        };
        lines.push(format!("'{}' ({}){usable}", f.fourcc, f.description));
        match &f.sizes {
            Sizes::Discrete(list) => {
                for s in list {
                    lines.push(format!(
                        "    {}x{}  {}",
                        s.width,
                        s.height,
                        fmt_rates(&s.rates)
                    ));
                }
            }
            Sizes::Stepwise {
                min,
                max,
                step,
                rates,
            } => lines.push(format!(
                "    {}x{} to {}x{}, steps {}/{}  {}",
                min.0,
                min.1,
                max.0,
                max.1,
                step.0,
                step.1,
                fmt_rates(rates)
            )),
        }
    }
    if camera.keyframe_control {
        lines.push("takes keyframe requests (force_key_frame)".to_owned());
    }
    lines
}

/// Capability lists of real devices, written down from published `v4l2-ctl --list-formats-ext`
/// outputs (each function says where from; long lists abridged to the sizes that matter and the
/// ones the tests use).
#[cfg(test)]
pub(crate) mod known;
#[cfg(test)]
mod tests;
