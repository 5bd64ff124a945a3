//! The video bitrate controller's rules, on virtual time: growth without loss, hold, decrease on
//! heavy loss, REMB and the cap as ceilings, the floor, and the smoothing towards the encoder.
//! Then random feedback: whatever comes, the encoder's rate stays within the floor and the cap.

use std::time::{Duration, Instant};

use intercom::call::bitrate::{
    BitrateController, DECREASE_INTERVAL, FLOOR_BITRATE, INCREASE_INTERVAL, MAX_INCREASE_STEP,
    START_BITRATE,
};

/// A fraction lost as RTCP carries it (out of 256).
fn loss(percent: f64) -> u8 {
    (percent * 256.0 / 100.0).round() as u8
}

/// Reports every second with `lost`, for `seconds` seconds from `t`; returns the new `t`.
fn reports(c: &mut BitrateController, mut t: Instant, seconds: u32, lost: u8) -> Instant {
    for _ in 0..seconds {
        t += Duration::from_secs(1);
        c.on_loss_report(t, lost);
        c.poll_bitrate(t);
    }
    t
}

#[test]
fn starts_at_the_size_rate_under_600_kbit_and_the_cap() {
    assert_eq!(BitrateController::start(460_800, 2_000_000), 460_800);
    assert_eq!(
        BitrateController::start(1_382_400, 2_000_000),
        START_BITRATE
    );
    assert_eq!(BitrateController::start(460_800, 200_000), 200_000);
    let c = BitrateController::new(250_000, 2_000_000);
    assert_eq!((c.target(), c.applied()), (250_000, 250_000));
    assert_eq!(c.bounds(), (FLOOR_BITRATE, 2_000_000));
    // A cap below the floor lowers the floor.
    assert_eq!(
        BitrateController::new(250_000, 60_000).bounds(),
        (60_000, 60_000)
    );
}

#[test]
fn no_loss_grows_eight_percent_a_second() {
    let t0 = Instant::now();
    let mut c = BitrateController::new(400_000, 2_000_000);
    c.on_loss_report(t0, 0);
    assert_eq!(
        c.target(),
        400_000,
        "the first report has no time before it"
    );
    c.on_loss_report(t0 + Duration::from_secs(1), loss(1.0));
    assert_eq!(c.target(), 432_000);
    // Half a second: half the growth, compounded.
    c.on_loss_report(t0 + Duration::from_millis(1500), 0);
    let expected = 432_000.0 * 1.08f64.powf(0.5);
    assert!(
        (f64::from(c.target()) - expected).abs() < 2.0,
        "{}",
        c.target()
    );
}

#[test]
fn a_long_silence_counts_as_at_most_two_seconds_of_growth() {
    let t0 = Instant::now();
    let mut c = BitrateController::new(400_000, 2_000_000);
    c.on_loss_report(t0, 0);
    c.on_loss_report(t0 + Duration::from_secs(30), 0);
    let expected = 400_000.0 * 1.08f64.powf(MAX_INCREASE_STEP.as_secs_f64());
    assert!(
        (f64::from(c.target()) - expected).abs() < 2.0,
        "{}",
        c.target()
    );
}

#[test]
fn moderate_loss_holds() {
    let t0 = Instant::now();
    let mut c = BitrateController::new(400_000, 2_000_000);
    c.on_loss_report(t0, 0);
    for (i, percent) in [2.5, 5.0, 9.5, 3.0].into_iter().enumerate() {
        c.on_loss_report(t0 + Duration::from_secs(i as u64 + 1), loss(percent));
        assert_eq!(c.target(), 400_000, "{percent} % loss");
    }
}

#[test]
fn heavy_loss_decreases_by_half_the_loss_at_most_every_300_ms() {
    let t0 = Instant::now();
    let mut c = BitrateController::new(400_000, 2_000_000);
    // 64/256 = 25 %: × 0.875.
    c.on_loss_report(t0, 64);
    assert_eq!(c.target(), 350_000);
    // A second report of the same congestion, too soon: no second decrease.
    c.on_loss_report(t0 + DECREASE_INTERVAL / 2, 64);
    assert_eq!(c.target(), 350_000);
    c.on_loss_report(t0 + DECREASE_INTERVAL, 64);
    assert_eq!(c.target(), 306_250);
    // The encoder follows at once.
    assert_eq!(c.poll_bitrate(t0 + DECREASE_INTERVAL), Some(306_250));
}

#[test]
fn loss_never_takes_it_below_the_floor() {
    let mut c = BitrateController::new(400_000, 2_000_000);
    let t = reports(&mut c, Instant::now(), 60, 255);
    assert_eq!(c.target(), FLOOR_BITRATE);
    assert_eq!(c.applied(), FLOOR_BITRATE);
    // And it recovers when the loss stops.
    reports(&mut c, t, 10, 0);
    assert!(c.applied() > FLOOR_BITRATE, "{}", c.applied());
}

#[test]
fn growth_stops_at_the_cap() {
    let mut c = BitrateController::new(400_000, 500_000);
    reports(&mut c, Instant::now(), 60, 0);
    assert_eq!(c.target(), 500_000);
    assert!(
        c.applied() <= 500_000 && c.applied() >= 475_000,
        "{}",
        c.applied()
    );
}

#[test]
fn remb_is_a_ceiling_that_follows_the_receiver() {
    let t0 = Instant::now();
    let mut c = BitrateController::new(600_000, 2_000_000);
    c.on_remb(t0, 250_000);
    assert_eq!(c.target(), 250_000);
    // Lowering to a ceiling is applied at once.
    assert_eq!(c.poll_bitrate(t0), Some(250_000));
    // No loss: growth, but not past the REMB.
    let t = reports(&mut c, t0, 10, 0);
    assert_eq!(c.target(), 250_000);
    // The receiver sees room: the ceiling rises, the target grows into it at 8 % a second.
    c.on_remb(t, 1_000_000);
    assert_eq!(c.target(), 250_000, "a higher REMB is room, not a jump");
    let t = reports(&mut c, t, 5, 0);
    let expected = 250_000.0 * 1.08f64.powi(5);
    assert!(
        (f64::from(c.target()) - expected).abs() < 5.0,
        "{}",
        c.target()
    );
    // A REMB above the cap changes nothing about the cap.
    c.on_remb(t, 50_000_000);
    reports(&mut c, t, 60, 0);
    assert_eq!(c.target(), 2_000_000);
    // A REMB under the floor: the floor.
    c.on_remb(t, 20_000);
    assert_eq!(c.target(), FLOOR_BITRATE);
    let s = c.summary();
    assert_eq!((s.rembs, s.last_remb), (4, Some(20_000)));
}

#[test]
fn the_encoder_is_not_reconfigured_for_small_steps_or_more_than_once_a_second_upwards() {
    let t0 = Instant::now();
    let mut c = BitrateController::new(400_000, 2_000_000);
    c.on_loss_report(t0, 0);
    // Reports every 100 ms without loss: 0.77 % growth each.
    let mut changes = Vec::new();
    for i in 1..=50u32 {
        let t = t0 + Duration::from_millis(100) * i;
        c.on_loss_report(t, 0);
        if let Some(b) = c.poll_bitrate(t) {
            changes.push((t - t0, b));
        }
    }
    assert!(!changes.is_empty());
    for pair in changes.windows(2) {
        let ((t1, b1), (t2, b2)) = (pair[0], pair[1]);
        assert!(t2 - t1 >= INCREASE_INTERVAL, "{changes:?}");
        assert!(f64::from(b2) >= f64::from(b1) * 1.05, "{changes:?}");
    }
    // 5 s of 8 %/s growth reached the encoder, give or take the last step held back.
    let last = changes.last().unwrap().1;
    assert!(
        f64::from(last) >= 400_000.0 * 1.08f64.powi(4),
        "{changes:?}"
    );
    assert_eq!(c.summary().changes as usize, changes.len());
}

/// A tiny deterministic generator: the test needs variety, not quality.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_feedback_keeps_the_rate_within_floor_and_cap() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for case in 0..2_000 {
        let cap = 50_000 + (rng.next() % 20_000_000) as u32;
        let start = (rng.next() % 3_000_000) as u32;
        let mut c = BitrateController::new(start, cap);
        let (floor, cap) = c.bounds();
        assert!(floor <= cap && floor <= FLOOR_BITRATE);
        let mut t = Instant::now();
        for _ in 0..200 {
            t += Duration::from_millis(rng.next() % 3_000);
            match rng.next() % 3 {
                0 => c.on_remb(t, rng.next() % 30_000_000),
                _ => {
                    // Mostly low loss, sometimes a burst.
                    let lost = if rng.next().is_multiple_of(4) {
                        (rng.next() % 256) as u8
                    } else {
                        (rng.next() % 8) as u8
                    };
                    c.on_loss_report(t, lost)
                }
            }
            c.poll_bitrate(t);
            for rate in [c.target(), c.applied()] {
                assert!(
                    (floor..=cap).contains(&rate),
                    "case {case}: {rate} outside [{floor}, {cap}]"
                );
            }
        }
        let s = c.summary();
        assert!(floor <= s.min && s.min <= s.last && s.last <= s.max && s.max <= cap);
    }
}
