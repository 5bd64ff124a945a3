//! The door panel's logic on virtual time: debounce, long press, the LED's patterns and the
//! relay's pulse. No hardware, no clock: each test drives `Panel` with instants it makes up.

use std::time::{Duration, Instant};

use intercom::panel::{Activity, LedPattern, PanelConfig, PanelOutput};

#[path = "harness/virtual_time.rs"]
mod virtual_time;

use virtual_time::PanelClock;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// A panel (debounce 50 ms) and a virtual clock; the LED is lit.
fn panel(long_press: Option<Duration>) -> PanelClock {
    let mut t = PanelClock::new(PanelConfig {
        debounce: MS(50),
        long_press,
    });
    assert_eq!(t.drain(), vec![PanelOutput::Led(true)], "idle: lit");
    t
}

fn presses(out: &[PanelOutput]) -> usize {
    out.iter().filter(|o| **o == PanelOutput::Pressed).count()
}

#[test]
fn a_clean_press_counts_once_the_level_has_held_for_the_debounce_time() {
    let mut t = panel(None);
    assert!(t.edge(true).is_empty(), "not before the debounce time");
    assert!(t.advance(MS(49)).is_empty());
    assert_eq!(t.advance(MS(1)), vec![PanelOutput::Pressed]);
    // Released and held: nothing more.
    t.edge(false);
    assert!(t.advance(MS(500)).is_empty());
}

#[test]
fn bounces_shorter_than_the_debounce_time_are_one_press() {
    let mut t = panel(None);
    let mut out = Vec::new();
    // Contact bounce: ten flips 5 ms apart, then held down.
    for i in 0..10 {
        out.extend(t.edge(i % 2 == 0));
        out.extend(t.advance(MS(5)));
    }
    out.extend(t.edge(true));
    out.extend(t.advance(MS(100)));
    // Released with bounces too.
    for i in 0..6 {
        out.extend(t.edge(i % 2 == 1));
        out.extend(t.advance(MS(5)));
    }
    out.extend(t.edge(false));
    out.extend(t.advance(MS(100)));
    assert_eq!(presses(&out), 1, "{out:?}");
}

#[test]
fn a_glitch_that_returns_before_the_debounce_time_is_nothing() {
    let mut t = panel(None);
    t.edge(true);
    t.advance(MS(30));
    t.edge(false);
    assert!(t.advance(MS(1000)).is_empty());
}

#[test]
fn with_a_long_press_action_a_short_press_counts_on_release() {
    let mut t = panel(Some(MS(3000)));
    t.edge(true);
    assert!(t.advance(MS(800)).is_empty(), "nothing while held");
    t.edge(false);
    assert_eq!(t.advance(MS(50)), vec![PanelOutput::Pressed]);
    assert!(t.advance(MS(5000)).is_empty());
}

#[test]
fn a_long_press_fires_while_held_and_never_also_rings() {
    let mut t = panel(Some(MS(3000)));
    t.edge(true);
    // Debounce (50 ms) then the long-press time from when the press counted.
    assert!(t.advance(MS(3049)).is_empty());
    assert_eq!(t.advance(MS(1)), vec![PanelOutput::LongPressed]);
    assert!(
        t.advance(MS(5000)).is_empty(),
        "once, however long it is held"
    );
    t.edge(false);
    assert!(t.advance(MS(100)).is_empty(), "its release is no press");
}

/// The LED's levels from `from` to `from + span`, as (offset from `from`, level) changes.
fn led_changes(t: &mut PanelClock, span: Duration) -> Vec<(u64, bool)> {
    let from = t.now;
    let end = t.now + span;
    let mut changes = Vec::new();
    while let Some(at) = t.panel.poll_timeout().filter(|at| *at <= end) {
        t.now = at;
        t.panel.handle_timeout(at);
        for o in t.drain() {
            if let PanelOutput::Led(on) = o {
                changes.push(((at - from).as_millis() as u64, on));
            }
        }
    }
    t.now = end;
    changes
}

#[test]
fn ringing_blinks_half_a_second_on_half_off_and_a_call_is_steady() {
    let mut t = panel(None);
    t.panel.set_activity(t.now, Activity::Ringing);
    assert_eq!(t.panel.pattern(), LedPattern::Ringing);
    assert!(
        t.drain().is_empty(),
        "the blink starts lit, as the LED already is"
    );
    assert_eq!(
        led_changes(&mut t, MS(2000)),
        vec![(500, false), (1000, true), (1500, false), (2000, true)]
    );
    t.panel.set_activity(t.now, Activity::InCall);
    assert_eq!(t.panel.pattern(), LedPattern::InCall);
    assert!(led_changes(&mut t, MS(10_000)).is_empty(), "steady");
    t.panel.set_activity(t.now, Activity::Idle);
    assert_eq!(t.panel.pattern(), LedPattern::Idle);
}

#[test]
fn offline_double_blinks_and_a_call_shows_over_it() {
    let mut t = panel(None);
    t.panel.set_online(t.now, false);
    assert_eq!(t.panel.pattern(), LedPattern::Offline);
    assert_eq!(
        led_changes(&mut t, MS(1500)),
        vec![(150, false), (300, true), (450, false), (1500, true)]
    );
    t.panel.set_activity(t.now, Activity::Ringing);
    assert_eq!(t.panel.pattern(), LedPattern::Ringing);
    t.panel.set_activity(t.now, Activity::Idle);
    assert_eq!(t.panel.pattern(), LedPattern::Offline);
    t.panel.set_online(t.now, true);
    assert_eq!(t.panel.pattern(), LedPattern::Idle);
    assert!(matches!(
        t.drain().last(),
        Some(PanelOutput::Led(true)) | None
    ));
}

#[test]
fn the_relay_closes_until_the_core_s_instant_and_a_second_open_does_not_close_it_twice() {
    // The core owns the pulse (its length, merging opens: tests/virtual_door_open.rs); the panel
    // closes the relay until the instant it is given.
    let mut t = panel(None);
    t.panel.open_door(t.now, t.now + MS(2000));
    let out = t.drain();
    assert_eq!(out[0], PanelOutput::Relay(true), "{out:?}");
    assert_eq!(t.panel.pattern(), LedPattern::Opening);
    t.panel.open_door(t.now + MS(1000), t.now + MS(1500));
    let out = t.advance(MS(1999));
    assert!(!out.contains(&PanelOutput::Relay(false)), "{out:?}");
    assert!(
        !out.contains(&PanelOutput::Relay(true)),
        "not repeated: {out:?}"
    );
    let out = t.advance(MS(1));
    assert!(out.contains(&PanelOutput::Relay(false)), "{out:?}");
    assert!(!t.panel.is_opening());
    assert_eq!(t.panel.pattern(), LedPattern::Idle);
    t.panel.open_door(t.now, t.now + MS(2000));
    assert_eq!(
        t.drain().first(),
        Some(&PanelOutput::Relay(true)),
        "a new pulse after the last one ended"
    );
}

#[test]
fn the_relay_closes_and_opens_once_per_pulse_whatever_the_interleaving() {
    // Property over many random schedules: relay on/off strictly alternate, every pulse lasts
    // exactly the time it was asked for, and opens only ever start a pulse when none is under
    // way.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..2000 {
        let mut t = panel(None);
        let mut closed_at: Option<Instant> = None;
        for _ in 0..30 {
            let step = MS(next() % 1500);
            let end = t.now + step;
            while let Some(at) = t.panel.poll_timeout().filter(|at| *at <= end) {
                t.now = at;
                t.panel.handle_timeout(at);
                for o in t.drain() {
                    check(o, t.now, &mut closed_at);
                }
            }
            t.now = end;
            let idle = closed_at.is_none();
            // The core asks only when no pulse is under way (it merges the others).
            if idle {
                t.panel.open_door(t.now, t.now + MS(2000));
            }
            let out = t.drain();
            assert_eq!(out.contains(&PanelOutput::Relay(true)), idle, "{out:?}");
            for o in out {
                check(o, t.now, &mut closed_at);
            }
        }
    }
    fn check(o: PanelOutput, now: Instant, closed_at: &mut Option<Instant>) {
        match o {
            PanelOutput::Relay(true) => {
                assert!(closed_at.is_none(), "closed twice");
                *closed_at = Some(now);
            }
            PanelOutput::Relay(false) => {
                let at = closed_at.take().expect("opened without being closed");
                assert_eq!(now - at, MS(2000));
            }
            _ => {}
        }
    }
}
