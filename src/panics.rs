//! Which panics the daemon outlives.
//!
//! The release build unwinds (ARCHITECTURE.md, "Panics", has the reason and the cost) so that a
//! panic in a call ends that call, not the door. Anywhere else a panic is a bug that leaves the
//! daemon in a state nobody designed: with unwinding alone, a panic in the sync loop or the
//! control socket's task would end that task quietly and leave a door that runs but never rings
//! again. So [`install`] makes every panic outside a call end the process at once, as
//! `panic = "abort"` did, and systemd restarts it (`Restart=on-failure`).
//!
//! What is a call: the code that runs while a call's task is polled ([`Contained`]), and the
//! work of the threads a call starts for its devices and its encoder ([`contained`]). tokio
//! catches the panic of a task, and `rtc` reports it as the call's failure, which the core hangs
//! up. Not a call: webrtc-rs's own tasks (the ICE agent, DTLS, SCTP, the RTP streams), which
//! the call's task spawns but does not poll; a panic there still ends the process.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    /// How deep this thread is in call work (nested [`contained`] calls and polls).
    static IN_CALL: Cell<u32> = const { Cell::new(0) };
}

/// Marks the thread as in call work while it lives, unwinding included.
struct Enter;

impl Enter {
    fn new() -> Enter {
        let _ = IN_CALL.try_with(|d| d.set(d.get() + 1));
        Enter
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let _ = IN_CALL.try_with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Whether this thread is doing a call's work now.
pub fn in_call() -> bool {
    IN_CALL.try_with(|d| d.get() > 0).unwrap_or(false)
}

/// Runs `work` as a call's: a panic in it unwinds to whoever catches it (`catch_unwind`, the
/// end of its thread) instead of ending the process.
pub fn contained<R>(work: impl FnOnce() -> R) -> R {
    let _call = Enter::new();
    work()
}

/// A call's task: a panic while it is polled unwinds to tokio, which hands it to whoever
/// awaits the task, instead of ending the process.
pub struct Contained<F>(Pin<Box<F>>);

impl<F: Future> Contained<F> {
    pub fn new(future: F) -> Contained<F> {
        Contained(Box::pin(future))
    }
}

impl<F: Future> Future for Contained<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _call = Enter::new();
        self.0.as_mut().poll(cx)
    }
}

/// Makes every panic outside a call end the process (after the usual message on stderr).
pub fn install() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        if !in_call() {
            eprintln!("a panic outside a call: the daemon ends here, to be restarted");
            std::process::abort();
        }
    }));
}

/// Test builds only: `INTERCOM_TEST_PANIC=<place>` makes the first pass through `place`
/// ("camera": the test pattern's next frame, on the call's encoder thread; "call": a call's task
/// as it starts; "sync": the sync loop after its first response) panic, once a process, so that
/// tests can see which panics the daemon outlives. Release builds have no such hook.
#[cfg(debug_assertions)]
pub fn test_panic(place: &str) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    if std::env::var("INTERCOM_TEST_PANIC").is_ok_and(|p| p == place)
        && !DONE.swap(true, Ordering::Relaxed)
    {
        panic!("a test panic in {place}, as INTERCOM_TEST_PANIC asks");
    }
}

/// Release builds: nothing.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn test_panic(_place: &str) {}
