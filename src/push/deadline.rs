//! A round's deadline, shared by every pipeline sending in it, that `.prom.stop[]` can bring
//! forward while they wait.
//!
//! Every retry, backoff sleep and `Retry-After` wait of a pipeline ends at [`Deadline::reached`],
//! so lowering the deadline ends a round within moments, at a point the pipeline itself chose to
//! wait: no task is aborted in the middle of its own bookkeeping, and no pipeline has to be
//! written to survive being dropped at an arbitrary `await`.

use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// A moment that can only move earlier; clones share it.
#[derive(Debug, Clone)]
pub struct Deadline(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    at: Mutex<Instant>,
    moved: Notify,
}

impl Deadline {
    /// A deadline at `at`.
    pub fn at(at: Instant) -> Deadline {
        Deadline(Arc::new(Inner { at: Mutex::new(at), moved: Notify::new() }))
    }

    /// When it is now.
    pub fn when(&self) -> Instant {
        *self.0.at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long until it passes (zero once it has).
    pub fn left(&self) -> std::time::Duration {
        self.when().saturating_duration_since(Instant::now())
    }

    /// True once it has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.when()
    }

    /// Brings it forward to `to` (never later), waking everything waiting on it.
    pub fn lower(&self, to: Instant) {
        let mut at = self.0.at.lock().unwrap_or_else(|p| p.into_inner());
        if to < *at {
            *at = to;
            drop(at);
            self.0.moved.notify_waiters();
        }
    }

    /// Completes when the deadline passes, however often it is lowered meanwhile.
    pub async fn reached(&self) {
        loop {
            let moved = self.0.moved.notified();
            tokio::pin!(moved);
            // Registered before reading the time, so a lowering in between still wakes us.
            moved.as_mut().enable();
            let at = self.when();
            if Instant::now() >= at {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                _ = &mut moved => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn lowering_wakes_a_waiter_and_raising_is_ignored() {
        let start = Instant::now();
        let d = Deadline::at(start + Duration::from_secs(60));
        d.lower(start + Duration::from_secs(90));
        assert_eq!(d.when(), start + Duration::from_secs(60), "never later");
        let waiter = tokio::spawn({
            let d = d.clone();
            async move {
                d.reached().await;
                Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        d.lower(start + Duration::from_secs(2));
        let ended = waiter.await.unwrap();
        assert!(ended >= start + Duration::from_secs(2) && ended < start + Duration::from_secs(3), "{:?}", ended - start);
        assert!(d.passed());
    }
}
