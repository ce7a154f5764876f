//! hyper's runtime hooks on glommio: a timer (so header-read and idle
//! timeouts work) and an executor (for hyper's background tasks).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};

/// hyper's `Timer` over glommio timers.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalTimer;

impl Timer for LocalTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(LocalSleep(glommio::timer::Timer::new(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        self.sleep(deadline.saturating_duration_since(Instant::now()))
    }
}

struct LocalSleep(glommio::timer::Timer);

// SAFETY: hyper requires `Send + Sync` sleeps, glommio's timers are bound
// to the executor that made them. Every connection is `spawn_local`ed on
// one executor and its futures never leave that thread, so the timer is
// only ever touched by the thread that created it.
unsafe impl Send for LocalSleep {}
// SAFETY: as above: no other thread ever holds a reference.
unsafe impl Sync for LocalSleep {}

impl Future for LocalSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.get_mut().0).poll(cx).map(|_| ())
    }
}

impl Sleep for LocalSleep {}

/// hyper's `Executor` over `glommio::spawn_local`: tasks stay on the
/// executor of the connection that made them.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalExecutor;

impl<F> hyper::rt::Executor<F> for LocalExecutor
where
    F: Future + 'static,
{
    fn execute(&self, future: F) {
        glommio::spawn_local(future).detach();
    }
}
