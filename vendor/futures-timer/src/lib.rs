//! futures-timer's `Delay` on tokio's timer wheel.
//!
//! libp2p times everything (stream upgrades, requests, each gossip message
//! queued for a peer, idle connections) with `futures_timer::Delay`. The
//! original keeps one global helper thread with a heap of timers, and
//! creating or dropping a `Delay` wakes that thread: on a node that is a
//! futex call and a context switch per message sent, and in the simulator
//! (a thousand nodes on two cores) thousands of them a second. Our
//! processes all run on tokio, whose per-runtime timer wheel registers a
//! timer without waking anyone; this crate gives libp2p the same API on it.
//!
//! A `Delay` created outside a tokio runtime is registered with a small
//! runtime of its own (one thread, started the first time it is needed),
//! so it works anywhere, as the original does. Inside a runtime it uses
//! that runtime's timer, which must be enabled (`enable_all` or
//! `enable_time`, as every runtime of ours is): tokio has no way to ask.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A future that completes at a point in time.
pub struct Delay {
    sleep: Pin<Box<Sleep>>,
}

impl Delay {
    /// A delay that completes `duration` from now.
    pub fn new(duration: Duration) -> Delay {
        let deadline = deadline_after(duration);
        let sleep = if tokio::runtime::Handle::try_current().is_ok() {
            tokio::time::sleep_until(deadline)
        } else {
            let _entered = fallback_runtime().enter();
            tokio::time::sleep_until(deadline)
        };
        Delay {
            sleep: Box::pin(sleep),
        }
    }

    /// Moves the deadline to `duration` from now (completed or not).
    pub fn reset(&mut self, duration: Duration) {
        self.sleep.as_mut().reset(deadline_after(duration));
    }
}

/// `duration` from now; durations too long for the clock saturate (as
/// `Duration::MAX` is used for "never").
fn deadline_after(duration: Duration) -> Instant {
    let now = Instant::now();
    // About thirty years: what tokio itself uses for "far future".
    const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);
    now.checked_add(duration.min(FAR_FUTURE))
        .unwrap_or_else(|| now + FAR_FUTURE)
}

/// The runtime that drives the timers of delays made outside any runtime.
fn fallback_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // As the original does when it cannot start its helper thread.
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("futures-timer")
            .enable_time()
            .build()
            .expect("failed to start the timer thread")
    })
}

impl Future for Delay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.sleep.as_mut().poll(cx)
    }
}

impl fmt::Debug for Delay {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Delay")
            .field("deadline", &self.sleep.deadline())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_delay_completes_at_its_deadline_and_not_before() {
        let start = Instant::now();
        let mut delay = Delay::new(Duration::from_millis(300));
        tokio::time::sleep(Duration::from_millis(299)).await;
        assert!(futures_poll(&mut delay).is_pending());
        (&mut delay).await;
        assert_eq!(start.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn reset_moves_the_deadline_even_after_completion() {
        let start = Instant::now();
        let mut delay = Delay::new(Duration::from_millis(10));
        (&mut delay).await;
        delay.reset(Duration::from_millis(50));
        assert!(futures_poll(&mut delay).is_pending());
        (&mut delay).await;
        assert_eq!(start.elapsed(), Duration::from_millis(60));
    }

    #[tokio::test(start_paused = true)]
    async fn never_means_never() {
        let mut delay = Delay::new(Duration::MAX);
        tokio::time::sleep(Duration::from_secs(86_400 * 365)).await;
        assert!(futures_poll(&mut delay).is_pending());
    }

    #[test]
    fn a_delay_made_outside_any_runtime_still_completes() {
        let delay = Delay::new(Duration::from_millis(20));
        let start = std::time::Instant::now();
        // Awaited on a runtime that is not the one it was registered with.
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(delay);
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    fn futures_poll(delay: &mut Delay) -> Poll<()> {
        let waker = std::task::Waker::noop();
        Pin::new(delay).poll(&mut Context::from_waker(waker))
    }
}
