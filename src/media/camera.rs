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
pub(crate) mod known {
    use super::*;

    fn discrete(sizes: &[(u32, u32, &[u32])]) -> Sizes {
        Sizes::Discrete(
            sizes
                .iter()
                .map(|(w, h, fps)| SizeRates {
                    width: *w,
                    height: *h,
                    rates: Rates::Discrete(fps.iter().map(|f| (1, *f)).collect()),
                })
                .collect(),
        )
    }

    fn format(fourcc: &[u8; 4], description: &str, sizes: Sizes) -> FormatCaps {
        FormatCaps {
            fourcc: FourCc(*fourcc),
            description: description.to_owned(),
            sizes,
        }
    }

    /// A UVC webcam with YUYV and MJPEG only, as the Logitech C270 class of cameras lists them:
    /// full rate at 640x480 in YUYV, the large sizes at 10 or 7.5 frames a second in YUYV (USB 2
    /// bandwidth) and at 30 in MJPEG. From the listing in jacksonliam/mjpg-streamer issue #169
    /// (YUYV part; 7.5 fps intervals written as 2/15) and the C270's UVC descriptors in
    /// espressif/esp-idf issue #14811.
    pub fn uvc_yuyv_mjpeg() -> CameraCaps {
        let yuyv = Sizes::Discrete(
            [
                (640, 480, vec![(1, 30), (1, 20), (1, 15), (1, 10), (2, 15)]),
                (1280, 720, vec![(1, 10), (2, 15)]),
                (960, 544, vec![(1, 20), (1, 15), (1, 10), (2, 15)]),
                (800, 448, vec![(1, 30), (1, 20), (1, 15), (1, 10), (2, 15)]),
                (320, 240, vec![(1, 30), (1, 20), (1, 15), (1, 10), (2, 15)]),
                (160, 120, vec![(1, 30), (1, 20), (1, 15), (1, 10), (2, 15)]),
            ]
            .into_iter()
            .map(|(w, h, r)| SizeRates {
                width: w,
                height: h,
                rates: Rates::Discrete(r),
            })
            .collect(),
        );
        CameraCaps {
            device: "/dev/video0".to_owned(),
            card: "UVC Camera (046d:0825)".to_owned(),
            formats: vec![
                format(b"YUYV", "YUYV 4:2:2", yuyv),
                format(
                    b"MJPG",
                    "Motion-JPEG",
                    discrete(&[
                        (640, 480, &[30, 20, 15, 10]),
                        (1280, 720, &[30, 20, 15, 10]),
                        (960, 544, &[30, 20, 15, 10]),
                        (800, 448, &[30, 20, 15, 10]),
                        (320, 240, &[30, 20, 15, 10]),
                        (160, 120, &[30, 20, 15, 10]),
                    ]),
                ),
            ],
            keyframe_control: false,
        }
    }

    /// The Logitech C920 with its older firmware (UVC 1.0 H.264 as a plain capture format):
    /// YUYV, H264 and MJPG, each from 160x90 to 1920x1080 (YUYV to 2304x1536 at 2 fps). From the
    /// listings in Motion-Project/motion issue #86 and pikvm/ustreamer issue #213.
    pub fn c920() -> CameraCaps {
        let all: &[u32] = &[30, 24, 20, 15, 10];
        let h264_sizes: &[(u32, u32, &[u32])] = &[
            (640, 480, all),
            (160, 90, all),
            (160, 120, all),
            (320, 180, all),
            (320, 240, all),
            (640, 360, all),
            (800, 600, all),
            (960, 720, all),
            (1280, 720, all),
            (1920, 1080, all),
        ];
        CameraCaps {
            device: "/dev/video0".to_owned(),
            card: "HD Pro Webcam C920".to_owned(),
            formats: vec![
                format(
                    b"YUYV",
                    "YUYV 4:2:2",
                    discrete(&[
                        (640, 480, all),
                        (160, 90, all),
                        (320, 240, all),
                        (1280, 720, &[10]),
                        (1920, 1080, &[5]),
                        (2304, 1536, &[2]),
                    ]),
                ),
                format(b"H264", "H.264", discrete(h264_sizes)),
                format(b"MJPG", "Motion-JPEG", discrete(h264_sizes)),
            ],
            keyframe_control: false,
        }
    }

    /// The Pi camera (OV5647) through the legacy `bcm2835-v4l2` driver: YU12, YUYV, RGB3, JPEG,
    /// H264, MJPG and more, every size from 32x32 to 2592x1944 in steps of 2, no interval list.
    /// A Pi-oriented H.264 source with a keyframe control. From Motion-Project/motion issue #940.
    pub fn pi_legacy_h264() -> CameraCaps {
        let range = || Sizes::Stepwise {
            min: (32, 32),
            max: (2592, 1944),
            step: (2, 2),
            rates: Rates::Unknown,
        };
        CameraCaps {
            device: "/dev/video0".to_owned(),
            card: "mmal service 16.1".to_owned(),
            formats: vec![
                format(b"YU12", "Planar YUV 4:2:0", range()),
                format(b"YUYV", "YUYV 4:2:2", range()),
                format(b"RGB3", "24-bit RGB 8-8-8", range()),
                format(b"JPEG", "JFIF JPEG", range()),
                format(b"H264", "H.264", range()),
                format(b"MJPG", "Motion-JPEG", range()),
                format(b"YVYU", "YVYU 4:2:2", range()),
            ],
            keyframe_control: true,
        }
    }

    /// A CSI camera through libcamera's V4L2 compatibility layer (`libcamerify`): the raw
    /// formats of the Raspberry Pi pipeline's output streams, a stepwise size range and no
    /// interval list. Modelled on what the compatibility layer enumerates (it maps libcamera's
    /// stream formats: YUV420, NV12, NV21, YUYV, RGB888, XRGB8888…); no verbatim published
    /// listing was found, so the sizes here are the sensor's (Camera Module 3, 4608x2592).
    pub fn libcamerify() -> CameraCaps {
        let range = || Sizes::Stepwise {
            min: (64, 64),
            max: (4608, 2592),
            step: (2, 2),
            rates: Rates::Unknown,
        };
        CameraCaps {
            device: "/dev/video0".to_owned(),
            card: "imx708".to_owned(),
            formats: vec![
                format(b"YU12", "Planar YUV 4:2:0", range()),
                format(b"NV12", "Y/UV 4:2:0", range()),
                format(b"NV21", "Y/VU 4:2:0", range()),
                format(b"YUYV", "YUYV 4:2:2", range()),
                format(b"RGB3", "24-bit RGB 8-8-8", range()),
                format(b"XR24", "32-bit BGRX 8-8-8-8", range()),
            ],
            keyframe_control: false,
        }
    }

    /// The `unicam` capture node of a CSI camera without libcamera: raw Bayer only. (The node
    /// also lists YUYV and RGB for bridge chips, but a sensor gives Bayer; this is the Camera
    /// Module 3's 10-bit packed Bayer, from hyperion-project/hyperion.ng issue #1561 and
    /// ayufan/camera-streamer issue #3.)
    pub fn unicam_bayer() -> CameraCaps {
        let range = || Sizes::Stepwise {
            min: (16, 16),
            max: (16376, 16376),
            step: (1, 1),
            rates: Rates::Unknown,
        };
        CameraCaps {
            device: "/dev/video0".to_owned(),
            card: "unicam".to_owned(),
            formats: vec![
                format(b"pBAA", "10-bit Bayer BGBG/GRGR Packed", range()),
                format(b"BG10", "10-bit Bayer BGBG/GRGR", range()),
                format(b"BA81", "8-bit Bayer BGBG/GRGR", range()),
            ],
            keyframe_control: false,
        }
    }

    /// The Pi 3/4 hardware encoder, `bcm2835-codec-encode` at /dev/video11 (M2M multiplanar):
    /// the raw formats its OUTPUT queue takes, per the driver's format table
    /// (raspberrypi/linux, drivers/staging/vc04_services/bcm2835-codec) and the device dumps in
    /// mainsail-crew/crowsnest issue #85. No JPEG: MJPEG has to be decoded first.
    pub fn bcm2835_encoder() -> EncoderCaps {
        EncoderCaps {
            device: "/dev/video11".to_owned(),
            card: "bcm2835-codec-encode".to_owned(),
            inputs: [
                b"YU12", b"YV12", b"NV12", b"NV21", b"RGBP", b"YUYV", b"UYVY", b"YVYU", b"VYUY",
                b"RGB3", b"BGR3", b"BGR4",
            ]
            .into_iter()
            .map(|f| FourCc(*f))
            .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::known::*;
    use super::*;

    const VGA15: (u32, u32, u32) = (640, 480, 15);

    #[test]
    fn c920_passes_its_h264_through() {
        let plan = choose(&c920(), &[], VGA15).unwrap();
        assert_eq!(plan.encoding, Encoding::PassThrough, "{}", plan.reason);
        assert_eq!(
            (plan.fourcc, plan.width, plan.height, plan.fps),
            (FourCc::H264, 640, 480, 15)
        );
        assert!(plan.reason.contains("passed through"), "{}", plan.reason);
        // Even with a hardware encoder, pass-through wins.
        let plan = choose(&c920(), &[bcm2835_encoder()], (1280, 720, 30)).unwrap();
        assert_eq!(plan.encoding, Encoding::PassThrough);
        assert_eq!((plan.width, plan.height, plan.fps), (1280, 720, 30));
    }

    #[test]
    fn uvc_webcam_without_h264_goes_to_the_hardware_encoder_when_there_is_one() {
        // Pi 4: YUYV 640x480 at 15 straight into the encoder, which takes YUYV itself.
        let plan = choose(&uvc_yuyv_mjpeg(), &[bcm2835_encoder()], VGA15).unwrap();
        assert_eq!(
            plan.encoding,
            Encoding::Hardware {
                device: "/dev/video11".to_owned(),
                input: FourCc::YUYV
            },
            "{}",
            plan.reason
        );
        assert_eq!(
            (plan.fourcc, plan.width, plan.height, plan.fps),
            (FourCc::YUYV, 640, 480, 15)
        );
        // Pi 5: no hardware encoder, software then.
        let plan = choose(&uvc_yuyv_mjpeg(), &[], VGA15).unwrap();
        assert_eq!(plan.encoding, Encoding::Software);
        assert_eq!(plan.fourcc, FourCc::YUYV);
        assert!(
            plan.reason.contains("no hardware H.264 encoder"),
            "{}",
            plan.reason
        );
        assert!(plan.reason.contains("has no H.264"), "{}", plan.reason);
    }

    #[test]
    fn rate_beats_format_mjpeg_when_yuyv_is_too_slow_at_the_size() {
        // 1280x720 at 15: YUYV gives 10 at most there, MJPEG 30.
        let plan = choose(&uvc_yuyv_mjpeg(), &[], (1280, 720, 15)).unwrap();
        assert_eq!(plan.fourcc, FourCc::MJPG, "{}", plan.reason);
        assert_eq!((plan.width, plan.height, plan.fps), (1280, 720, 15));
        // With the hardware encoder, MJPEG is decoded to I420 for it.
        let plan = choose(&uvc_yuyv_mjpeg(), &[bcm2835_encoder()], (1280, 720, 15)).unwrap();
        assert_eq!(
            plan.encoding,
            Encoding::Hardware {
                device: "/dev/video11".to_owned(),
                input: FourCc::YU12
            }
        );
        assert!(plan.reason.contains("decoded to YU12"), "{}", plan.reason);
    }

    #[test]
    fn the_fastest_rate_is_taken_when_none_reaches_the_wanted_one() {
        // YUYV only (a camera without MJPEG at that size would do this).
        let mut cam = uvc_yuyv_mjpeg();
        cam.formats.retain(|f| f.fourcc == FourCc::YUYV);
        let plan = choose(&cam, &[], (1280, 720, 15)).unwrap();
        assert_eq!((plan.width, plan.height, plan.fps), (1280, 720, 10));
        assert!(
            plan.reason.contains("10.0 frames a second"),
            "{}",
            plan.reason
        );
    }

    #[test]
    fn sizes_snap_to_the_nearest_offered() {
        let plan = choose(&uvc_yuyv_mjpeg(), &[], (800, 450, 15)).unwrap();
        assert_eq!((plan.width, plan.height), (800, 448));
        assert!(
            plan.reason.contains("nearest to the configured 800x450"),
            "{}",
            plan.reason
        );
        // Stepwise: any even size within the range.
        let plan = choose(&pi_legacy_h264(), &[], (1024, 576, 25)).unwrap();
        assert_eq!((plan.width, plan.height, plan.fps), (1024, 576, 25));
        assert_eq!(plan.encoding, Encoding::PassThrough);
        let plan = choose(&pi_legacy_h264(), &[], (5000, 4000, 25)).unwrap();
        assert_eq!((plan.width, plan.height), (2592, 1944));
    }

    #[test]
    fn libcamerify_raw_formats_prefer_i420() {
        let plan = choose(&libcamerify(), &[bcm2835_encoder()], VGA15).unwrap();
        assert_eq!(plan.fourcc, FourCc::YU12);
        assert_eq!(
            plan.encoding,
            Encoding::Hardware {
                device: "/dev/video11".to_owned(),
                input: FourCc::YU12
            }
        );
        // Pi 5: the same frames, encoded in software.
        let plan = choose(&libcamerify(), &[], VGA15).unwrap();
        assert_eq!(
            (plan.fourcc, plan.encoding),
            (FourCc::YU12, Encoding::Software)
        );
    }

    #[test]
    fn bayer_only_is_an_error_that_points_to_libcamera() {
        let err = choose(&unicam_bayer(), &[bcm2835_encoder()], VGA15).unwrap_err();
        assert!(err.contains("/dev/video0"), "{err}");
        assert!(err.contains("pBAA"), "{err}");
        assert!(err.contains("libcamerify"), "{err}");
        let err = choose(&CameraCaps::default(), &[], VGA15).unwrap_err();
        assert!(err.contains("offers none"), "{err}");
    }

    #[test]
    fn a_far_h264_size_loses_to_an_encoded_exact_one() {
        let cam = CameraCaps {
            device: "/dev/video2".to_owned(),
            formats: vec![
                FormatCaps {
                    fourcc: FourCc::H264,
                    description: "H.264".to_owned(),
                    sizes: Sizes::Discrete(vec![SizeRates {
                        width: 1920,
                        height: 1080,
                        rates: Rates::Discrete(vec![(1, 30)]),
                    }]),
                },
                FormatCaps {
                    fourcc: FourCc::MJPG,
                    description: "Motion-JPEG".to_owned(),
                    sizes: Sizes::Discrete(vec![SizeRates {
                        width: 640,
                        height: 480,
                        rates: Rates::Discrete(vec![(1, 30)]),
                    }]),
                },
            ],
            ..CameraCaps::default()
        };
        let plan = choose(&cam, &[], VGA15).unwrap();
        assert_eq!(
            (plan.fourcc, plan.encoding.clone()),
            (FourCc::MJPG, Encoding::Software)
        );
        assert!(
            plan.reason.contains("further from the wanted size"),
            "{}",
            plan.reason
        );
    }

    #[test]
    fn stills_come_from_another_format_of_an_h264_camera() {
        let plan = choose_still(&c920(), (640, 480)).unwrap();
        assert_ne!(plan.fourcc, FourCc::H264);
        let h264_only = CameraCaps {
            device: "/dev/video3".to_owned(),
            formats: c920()
                .formats
                .into_iter()
                .filter(|f| f.fourcc == FourCc::H264)
                .collect(),
            ..CameraCaps::default()
        };
        let err = choose_still(&h264_only, (640, 480)).unwrap_err();
        assert!(err.contains("/dev/video3") && err.contains("H264"), "{err}");
    }

    #[test]
    fn descriptions_list_formats_sizes_and_rates() {
        let lines = describe(&uvc_yuyv_mjpeg());
        assert_eq!(lines[0], "'YUYV' (YUYV 4:2:2)");
        assert_eq!(lines[1], "    640x480  30/20/15/10/7.5 fps");
        let lines = describe(&pi_legacy_h264());
        assert!(
            lines.contains(&"'H264' (H.264) — pass-through".to_owned()),
            "{lines:?}"
        );
        assert!(lines.contains(&"'RGB3' (24-bit RGB 8-8-8) — not used by the door".to_owned()));
        assert!(lines.contains(&"    32x32 to 2592x1944, steps 2/2  rates not listed".to_owned()));
        assert_eq!(
            lines.last().unwrap(),
            "takes keyframe requests (force_key_frame)"
        );
    }

    #[test]
    fn fourcc_round_trips_v4l2_numbers() {
        // V4L2_PIX_FMT_YUYV is 0x56595559.
        assert_eq!(FourCc::YUYV.to_u32(), 0x5659_5559);
        assert_eq!(FourCc::from_u32(0x5659_5559), FourCc::YUYV);
        assert_eq!(FourCc(*b"pBAA").kind(), FormatKind::Unusable);
    }
}
