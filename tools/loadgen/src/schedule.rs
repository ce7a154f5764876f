//! When requests are sent, and which of them count. Closed loop: a connection sends as soon as
//! its previous request is done. Open loop: request `i` has the fixed intended send time
//! `start + i / rate`, whichever connection is free takes it, and latency runs from that
//! intended time, so a server that falls behind shows up as queueing in the latency instead of
//! silently slowing the sender down (coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// What a connection should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Send, but leave it out of the report.
    Warmup { intended: Instant },
    /// Send and count it; latency runs from `intended`.
    Counted { intended: Instant },
    /// The window or the request budget is used up.
    Stop,
}

/// Shared by all connections of a run.
pub struct Schedule {
    start: Instant,
    pacing: Pacing,
    /// Closed loop: tickets for counted requests. Open loop: the next slot number.
    next: AtomicU64,
}

enum Pacing {
    Closed { measure_start: Instant, measure_end: Instant, counted_limit: u64 },
    Open { rate_per_s: f64, warmup_slots: u64, counted_slots: u64 },
}

impl Schedule {
    pub fn closed(
        start: Instant,
        warmup: Duration,
        duration: Duration,
        requests: Option<u64>,
    ) -> Schedule {
        let measure_start = start + warmup;
        Schedule {
            start,
            pacing: Pacing::Closed {
                measure_start,
                measure_end: measure_start + duration,
                counted_limit: requests.unwrap_or(u64::MAX),
            },
            next: AtomicU64::new(0),
        }
    }

    pub fn open(
        start: Instant,
        rate_per_s: f64,
        warmup: Duration,
        duration: Duration,
        requests: Option<u64>,
    ) -> Schedule {
        // The float slack keeps 1 s at 100/s from becoming 101 slots through rounding.
        let slots_in = |window: Duration| (window.as_secs_f64() * rate_per_s - 1e-9).ceil() as u64;
        let warmup_slots = slots_in(warmup);
        let counted_slots = slots_in(duration).min(requests.unwrap_or(u64::MAX));
        Schedule {
            start,
            pacing: Pacing::Open { rate_per_s, warmup_slots, counted_slots },
            next: AtomicU64::new(0),
        }
    }

    /// When counted requests begin: the start of the window the CPU times are taken over.
    pub fn measure_start(&self) -> Instant {
        match self.pacing {
            Pacing::Closed { measure_start, .. } => measure_start,
            Pacing::Open { rate_per_s, warmup_slots, .. } => {
                self.slot_time(rate_per_s, warmup_slots)
            }
        }
    }

    /// Open loop only: how many counted requests there will be.
    pub fn counted_slots(&self) -> Option<u64> {
        match self.pacing {
            Pacing::Closed { .. } => None,
            Pacing::Open { counted_slots, .. } => Some(counted_slots),
        }
    }

    pub fn next(&self, now: Instant) -> Slot {
        match self.pacing {
            Pacing::Closed { measure_start, measure_end, counted_limit } => {
                if now < measure_start {
                    Slot::Warmup { intended: now }
                } else if now >= measure_end {
                    Slot::Stop
                } else if self.next.fetch_add(1, Ordering::Relaxed) < counted_limit {
                    Slot::Counted { intended: now }
                } else {
                    Slot::Stop
                }
            }
            Pacing::Open { rate_per_s, warmup_slots, counted_slots } => {
                let slot = self.next.fetch_add(1, Ordering::Relaxed);
                let intended = self.slot_time(rate_per_s, slot);
                if slot < warmup_slots {
                    Slot::Warmup { intended }
                } else if slot - warmup_slots < counted_slots {
                    Slot::Counted { intended }
                } else {
                    Slot::Stop
                }
            }
        }
    }

    fn slot_time(&self, rate_per_s: f64, slot: u64) -> Instant {
        self.start + Duration::from_secs_f64(slot as f64 / rate_per_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_loop_counts_only_inside_the_window_and_budget() {
        let start = Instant::now();
        let schedule =
            Schedule::closed(start, Duration::from_secs(1), Duration::from_secs(2), Some(2));
        let in_warmup = start + Duration::from_millis(500);
        assert_eq!(schedule.next(in_warmup), Slot::Warmup { intended: in_warmup });
        let in_window = start + Duration::from_millis(1500);
        assert_eq!(schedule.next(in_window), Slot::Counted { intended: in_window });
        assert_eq!(schedule.next(in_window), Slot::Counted { intended: in_window });
        assert_eq!(schedule.next(in_window), Slot::Stop);
        assert_eq!(schedule.next(start + Duration::from_secs(3)), Slot::Stop);
        assert_eq!(schedule.measure_start(), start + Duration::from_secs(1));
    }

    #[test]
    fn open_loop_slots_have_fixed_intended_times() {
        let start = Instant::now();
        let schedule =
            Schedule::open(start, 100.0, Duration::from_millis(50), Duration::from_secs(1), None);
        assert_eq!(schedule.counted_slots(), Some(100));
        let mut warmup = 0;
        let mut counted = Vec::new();
        // Bounded: 5 warmup slots and 100 counted slots, then Stop.
        for _ in 0..1000 {
            match schedule.next(start) {
                Slot::Warmup { .. } => warmup += 1,
                Slot::Counted { intended } => counted.push(intended),
                Slot::Stop => break,
            }
        }
        assert_eq!(warmup, 5);
        assert_eq!(counted.len(), 100);
        // Float seconds can be a nanosecond off; a microsecond is far below any resolution here.
        let near = |a: Instant, b: Instant| a.max(b) - a.min(b) < Duration::from_micros(1);
        assert!(near(counted[0], start + Duration::from_millis(50)));
        assert!(near(counted[99], start + Duration::from_millis(1040)));
        assert!(near(schedule.measure_start(), start + Duration::from_millis(50)));
    }

    #[test]
    fn open_loop_respects_a_request_budget() {
        let start = Instant::now();
        let schedule =
            Schedule::open(start, 1000.0, Duration::ZERO, Duration::from_secs(10), Some(7));
        assert_eq!(schedule.counted_slots(), Some(7));
    }
}
