//! Capability lists of real cameras and of the Pi's hardware encoder, for the tests (the M2M
//! encoder's tests use them too).

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
