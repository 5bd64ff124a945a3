//! The door panel's logic, sans-IO: the button (debounce, long press), the LED's patterns and the
//! relay's pulse, on virtual time.
//!
//! Like the call core, [`Panel`] never reads the clock and does no I/O: the driver hands it the
//! button's raw edges and what the door is doing, each with its `now`, asks for the next deadline
//! with [`Panel::poll_timeout`], calls [`Panel::handle_timeout`] when it passes, and drains
//! [`PanelOutput`]s (LED and relay levels to set, presses to hand to the core). The GPIO adapter
//! (`src/gpio/`) only carries levels out and edges in. `tests/check_sans_io.rs` holds this file to the
//! same rules as `src/call/`.
//!
//! - **Debounce.** A new level of the button counts once it has held for `debounce` (the kernel
//!   filters too, where the driver can; this catches the rest and the drivers that cannot).
//! - **Long press.** Without a long-press action, a press is reported the moment the button is
//!   down (the visitor hears the ringback at once). With one, a press is reported when the button
//!   comes up before `long_press`, and the long press when it is held that long (then its
//!   release reports nothing): a long press never also rings.
//! - **LED.** One pattern at a time, by priority: the door opening (fast blink), a call ringing
//!   (blink), a call up (steady on), the homeserver unreachable (double blink), idle (steady on:
//!   the lit button shows where to press).
//! - **Relay.** The relay is closed until the instant the call core chose (the core owns the
//!   pulse: its length, and merging an open asked for during one); the panel closes it, opens it
//!   again at that instant, and shows the opening on the LED.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the panel is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PanelConfig {
    /// A level must hold this long to count.
    pub debounce: Duration,
    /// Held this long, the button is a long press; `None`: no long-press action.
    pub long_press: Option<Duration>,
}

pub use crate::call::Activity;

/// What the LED does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedPattern {
    /// Steady on: idle, the button is ready.
    Idle,
    /// Blink, 0.5 s on, 0.5 s off: ringing.
    Ringing,
    /// Steady on: a call is up.
    InCall,
    /// Double blink every 1.5 s: the homeserver cannot be reached, a press will not ring.
    Offline,
    /// Fast blink, 0.1 s on, 0.1 s off: the door is being opened.
    Opening,
}

impl LedPattern {
    /// The pattern's steps, `(level, how long)`, repeated; one step is a steady level.
    pub fn steps(self) -> &'static [(bool, Duration)] {
        const ON: &[(bool, Duration)] = &[(true, Duration::from_secs(3600))];
        const BLINK: &[(bool, Duration)] = &[
            (true, Duration::from_millis(500)),
            (false, Duration::from_millis(500)),
        ];
        const DOUBLE: &[(bool, Duration)] = &[
            (true, Duration::from_millis(150)),
            (false, Duration::from_millis(150)),
            (true, Duration::from_millis(150)),
            (false, Duration::from_millis(1050)),
        ];
        const FAST: &[(bool, Duration)] = &[
            (true, Duration::from_millis(100)),
            (false, Duration::from_millis(100)),
        ];
        match self {
            LedPattern::Idle | LedPattern::InCall => ON,
            LedPattern::Ringing => BLINK,
            LedPattern::Offline => DOUBLE,
            LedPattern::Opening => FAST,
        }
    }
}

/// What the panel asks of the world, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelOutput {
    /// Set the LED (logical level: true is lit).
    Led(bool),
    /// Set the relay (logical level: true is closed, the door opening).
    Relay(bool),
    /// The button was pressed (a short press): hand it to the call core.
    Pressed,
    /// The button was held for the long-press time.
    LongPressed,
}

/// The panel. See the module's documentation.
#[derive(Debug)]
pub struct Panel {
    config: PanelConfig,
    outputs: VecDeque<PanelOutput>,
    // The button.
    /// The last raw level seen and since when, while it has not yet held for `debounce`.
    settling: Option<(bool, Instant)>,
    /// The debounced level.
    pressed: bool,
    /// When the debounced press began, while it may still become a long press.
    press_started: Option<Instant>,
    // The LED.
    activity: Activity,
    online: bool,
    pattern: LedPattern,
    /// When the current pattern started, and the LED's level.
    pattern_since: Instant,
    led: Option<bool>,
    /// When the LED changes next, within the current pattern.
    led_next: Option<Instant>,
    // The relay.
    relay_until: Option<Instant>,
}

impl Panel {
    /// A panel at rest at `now`; the LED is set at once (the first output).
    pub fn new(config: PanelConfig, now: Instant) -> Panel {
        let mut panel = Panel {
            config,
            outputs: VecDeque::new(),
            settling: None,
            pressed: false,
            press_started: None,
            activity: Activity::Idle,
            online: true,
            pattern: LedPattern::Idle,
            pattern_since: now,
            led: None,
            led_next: None,
            relay_until: None,
        };
        panel.update_led(now, true);
        panel
    }

    /// The button's raw (logical) level changed: `pressed` is true when it is down.
    pub fn button_edge(&mut self, now: Instant, pressed: bool) {
        self.handle_timeout(now);
        if pressed == self.pressed {
            // Back to the debounced level before it settled: a bounce.
            self.settling = None;
        } else {
            self.settling = Some((pressed, now));
            if self.config.debounce.is_zero() {
                self.handle_timeout(now);
            }
        }
    }

    /// What the door does now (from the call core), for the LED.
    pub fn set_activity(&mut self, now: Instant, activity: Activity) {
        self.handle_timeout(now);
        self.activity = activity;
        self.update_led(now, false);
    }

    /// Whether the homeserver can be reached, for the LED.
    pub fn set_online(&mut self, now: Instant, online: bool) {
        self.handle_timeout(now);
        self.online = online;
        self.update_led(now, false);
    }

    /// Opens the door: closes the relay until `until` (the end of the pulse the core chose). A
    /// pulse under way is lengthened to `until` if that is later, never closed twice.
    pub fn open_door(&mut self, now: Instant, until: Instant) {
        self.handle_timeout(now);
        if until <= now {
            return;
        }
        match self.relay_until {
            Some(end) => self.relay_until = Some(end.max(until)),
            None => {
                self.relay_until = Some(until);
                self.outputs.push_back(PanelOutput::Relay(true));
                self.update_led(now, false);
            }
        }
    }

    /// Whether the relay is closed.
    pub fn is_opening(&self) -> bool {
        self.relay_until.is_some()
    }

    /// The LED's current pattern.
    pub fn pattern(&self) -> LedPattern {
        self.pattern
    }

    /// The earliest instant at which [`Panel::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let settle = self.settling.map(|(_, since)| since + self.config.debounce);
        let long = self
            .press_started
            .zip(self.config.long_press)
            .map(|(t, d)| t + d);
        [settle, long, self.relay_until, self.led_next]
            .into_iter()
            .flatten()
            .min()
    }

    /// Does whatever is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // The relay first: its end changes the LED's pattern.
        if self.relay_until.is_some_and(|t| t <= now) {
            self.relay_until = None;
            self.outputs.push_back(PanelOutput::Relay(false));
            self.update_led(now, false);
        }
        if let Some((level, since)) = self.settling {
            if since + self.config.debounce <= now {
                self.settling = None;
                self.settled(since + self.config.debounce, level);
            }
        }
        if let (Some(start), Some(long)) = (self.press_started, self.config.long_press) {
            if start + long <= now {
                self.press_started = None;
                self.outputs.push_back(PanelOutput::LongPressed);
            }
        }
        while self.led_next.is_some_and(|t| t <= now) {
            self.step_led(now);
        }
    }

    /// The next thing for the world to do.
    pub fn poll_output(&mut self) -> Option<PanelOutput> {
        self.outputs.pop_front()
    }

    /// The button's level held for the debounce time, from `at`.
    fn settled(&mut self, at: Instant, pressed: bool) {
        self.pressed = pressed;
        match (pressed, self.config.long_press) {
            (true, None) => self.outputs.push_back(PanelOutput::Pressed),
            (true, Some(_)) => self.press_started = Some(at),
            (false, _) => {
                // Up before the long-press time (if there is one): a short press.
                if self.press_started.take().is_some() {
                    self.outputs.push_back(PanelOutput::Pressed);
                }
            }
        }
    }

    fn wanted_pattern(&self) -> LedPattern {
        if self.relay_until.is_some() {
            LedPattern::Opening
        } else if self.activity == Activity::Ringing {
            LedPattern::Ringing
        } else if self.activity == Activity::InCall {
            LedPattern::InCall
        } else if !self.online {
            LedPattern::Offline
        } else {
            LedPattern::Idle
        }
    }

    /// Switches to the pattern the state asks for; a pattern that goes on is not restarted.
    fn update_led(&mut self, now: Instant, force: bool) {
        let wanted = self.wanted_pattern();
        if wanted == self.pattern && !force {
            return;
        }
        self.pattern = wanted;
        self.pattern_since = now;
        self.led_next = None;
        self.step_led(now);
    }

    /// Sets the LED to the pattern's level at `now` and plans the next change.
    fn step_led(&mut self, now: Instant) {
        let steps = self.pattern.steps();
        let (level, next) = if steps.len() == 1 {
            (steps[0].0, None)
        } else {
            let cycle: Duration = steps.iter().map(|s| s.1).sum();
            let elapsed = now.saturating_duration_since(self.pattern_since);
            let cycles = elapsed.as_nanos() / cycle.as_nanos();
            let mut at = self.pattern_since + cycle * u32::try_from(cycles).unwrap_or(u32::MAX);
            let mut found = (steps[0].0, at + steps[0].1);
            for &(level, length) in steps {
                if at + length > now {
                    found = (level, at + length);
                    break;
                }
                at += length;
            }
            (found.0, Some(found.1))
        };
        self.led_next = next;
        if self.led != Some(level) {
            self.led = Some(level);
            self.outputs.push_back(PanelOutput::Led(level));
        }
    }
}
