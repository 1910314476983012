//! The time a pipeline decides by: wall time (sample timestamps, queue expiry, the negotiation
//! memory's freshness, an HTTP-date `Retry-After`) and a monotonic instant (when a receiver may
//! be called again), read from the system, or in unit tests from a clock the test moves.
//!
//! Only decisions go through it. How long a send took (`Outcome::millis`) and the round's
//! [`super::deadline::Deadline`] stay on the real clock: a deadline bounds real waiting, and a
//! test that moves its clock moves what the pipeline believes, not how long tokio sleeps.

use std::time::{Instant, SystemTime};

/// Where a pipeline reads the time; clones share it.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system's clocks.
    #[default]
    System,
    /// A clock that stands still until the test moves it.
    #[cfg(test)]
    Manual(std::sync::Arc<std::sync::Mutex<(Instant, SystemTime)>>),
}

impl Clock {
    /// A monotonic instant.
    pub fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            #[cfg(test)]
            Clock::Manual(t) => t.lock().unwrap_or_else(|p| p.into_inner()).0,
        }
    }

    /// The wall clock.
    pub fn wall(&self) -> SystemTime {
        match self {
            Clock::System => SystemTime::now(),
            #[cfg(test)]
            Clock::Manual(t) => t.lock().unwrap_or_else(|p| p.into_inner()).1,
        }
    }

    /// Wall time in ms since the Unix epoch (0 before it), as remote write stamps samples.
    pub fn unix_ms(&self) -> i64 {
        self.wall().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }
}

#[cfg(test)]
impl Clock {
    /// A clock standing at the system's present moment until [`Clock::advance`] moves it.
    pub fn manual() -> Clock {
        Clock::Manual(std::sync::Arc::new(std::sync::Mutex::new((Instant::now(), SystemTime::now()))))
    }

    /// Moves a manual clock (both its instant and its wall time) `by` forward; the system clock
    /// cannot be moved, so that is a bug in the test.
    pub fn advance(&self, by: std::time::Duration) {
        match self {
            Clock::System => panic!("the system clock cannot be advanced"),
            Clock::Manual(t) => {
                let mut t = t.lock().unwrap_or_else(|p| p.into_inner());
                t.0 += by;
                t.1 += by;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_manual_clock_stands_still_until_moved_and_clones_share_it() {
        let c = Clock::manual();
        let (t, ms) = (c.now(), c.unix_ms());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!((c.now(), c.unix_ms()), (t, ms));
        c.clone().advance(Duration::from_secs(90));
        assert_eq!(c.now(), t + Duration::from_secs(90));
        assert_eq!(c.unix_ms(), ms + 90_000);
    }

    #[test]
    fn the_system_clock_moves() {
        let c = Clock::System;
        let t = c.now();
        assert!(c.unix_ms() > 1_600_000_000_000);
        std::thread::sleep(Duration::from_millis(2));
        assert!(c.now() > t);
    }
}
