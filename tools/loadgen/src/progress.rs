//! The live counters connections bump as requests finish, and the once-a-second status line on
//! stderr drawn from them. The counters are only for this display; the report is built from
//! each connection's own tally.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

const TICK: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Live {
    /// Warmup and counted requests alike.
    pub finished: AtomicU64,
    pub counted: AtomicU64,
    pub errors: AtomicU64,
}

/// Prints one status line per second until `tick_limit` ticks have passed; the run aborts it
/// sooner when done. On a terminal the line is redrawn in place.
pub async fn show(live: Arc<Live>, start: Instant, measure_start: Instant, tick_limit: u64) {
    let terminal = std::io::stderr().is_terminal();
    let mut ticker = tokio::time::interval_at(start + TICK, TICK);
    let mut previous_finished = 0;
    for _ in 0..tick_limit {
        let now = ticker.tick().await;
        let finished = live.finished.load(Ordering::Relaxed);
        let phase = if now < measure_start { "warmup" } else { "measure" };
        let line = format!(
            "{:>5.0}s {phase:<7} {:>10} ops  {:>9}/s  errors {}",
            (now - start).as_secs_f64(),
            live.counted.load(Ordering::Relaxed),
            finished - previous_finished,
            live.errors.load(Ordering::Relaxed),
        );
        previous_finished = finished;
        let mut stderr = std::io::stderr().lock();
        // A status line that cannot be written is not worth stopping the run for.
        let _ =
            if terminal { write!(stderr, "\r{line}\x1b[K") } else { writeln!(stderr, "{line}") };
        let _ = stderr.flush();
    }
}

/// Ends the status line so the report starts on a clean line.
pub fn finish() {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}
