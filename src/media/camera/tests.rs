//! The camera planner on the capability lists of real cameras.

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
