//! Rate-limited refusal logging.
//!
//! Every refusal the executor logs (a peer not authorized for a socket, a
//! full connection budget, a wrong role, a forbidden message, a peer that
//! stopped reading, …) can be provoked by a local peer as often as it can
//! connect. Logging each one would let a connect flood write tens of MB of
//! log lines. So per reason at most [`LINES_PER_WINDOW`] lines are written
//! in each [`WINDOW`]; the rest are counted, and when the window ends one
//! summary line says how many similar refusals were not logged.
//!
//! A fixed window per reason is all this needs; a rate-limiter crate such as
//! `governor` answers only "allowed or not" and would still need the
//! suppressed counts and the summary written here.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long one counting window lasts.
pub const WINDOW: Duration = Duration::from_secs(30);
/// Lines written per reason and window before further ones are counted only.
pub const LINES_PER_WINDOW: u32 = 5;

#[derive(Debug)]
struct Window {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

fn windows() -> &'static Mutex<HashMap<&'static str, Window>> {
    static W: OnceLock<Mutex<HashMap<&'static str, Window>>> = OnceLock::new();
    W.get_or_init(Default::default)
}

/// May a refusal of `reason` be logged now? `false` means it was counted
/// and will appear in the window's summary line instead.
pub fn admit(reason: &'static str) -> bool {
    admit_at(reason, Instant::now())
}

fn admit_at(reason: &'static str, now: Instant) -> bool {
    let mut map = windows().lock().unwrap_or_else(PoisonError::into_inner);
    let w = map.entry(reason).or_insert(Window {
        started: now,
        logged: 0,
        suppressed: 0,
    });
    if now.duration_since(w.started) >= WINDOW {
        summarize(reason, w);
        *w = Window {
            started: now,
            logged: 0,
            suppressed: 0,
        };
    }
    if w.logged < LINES_PER_WINDOW {
        w.logged += 1;
        true
    } else {
        w.suppressed += 1;
        false
    }
}

fn summarize(reason: &str, w: &Window) {
    if w.suppressed > 0 {
        tracing::warn!(
            reason,
            suppressed = w.suppressed,
            "suppressed {} similar refusals ({reason}) in the last {} s; at most {LINES_PER_WINDOW} such lines are logged per {} s",
            w.suppressed,
            WINDOW.as_secs(),
            WINDOW.as_secs()
        );
    }
}

/// Write the summary of every window that has ended (and forget it), so a
/// flood that stopped is still reported. Returns how many were flushed.
pub fn flush_ended() -> usize {
    flush_ended_at(Instant::now())
}

fn flush_ended_at(now: Instant) -> usize {
    let mut map = windows().lock().unwrap_or_else(PoisonError::into_inner);
    let before = map.len();
    map.retain(|reason, w| {
        let ended = now.duration_since(w.started) >= WINDOW;
        if ended {
            summarize(reason, w);
        }
        !ended
    });
    before - map.len()
}

/// Flush ended windows once a second, for the executor's lifetime.
pub async fn flush_forever() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        flush_ended();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_logs_a_few_lines_and_counts_the_rest() {
        let t0 = Instant::now();
        let admitted = (0..1000)
            .filter(|_| admit_at("unit_test_burst", t0))
            .count();
        assert_eq!(admitted, LINES_PER_WINDOW as usize);
        {
            let map = windows().lock().unwrap();
            assert_eq!(map["unit_test_burst"].suppressed, 1000 - admitted as u64);
        }
        // Another reason has its own budget.
        assert!(admit_at("unit_test_other", t0));
        // The window ends: the summary is flushed and the budget renewed.
        let later = t0 + WINDOW;
        assert!(flush_ended_at(later) >= 1);
        assert!(admit_at("unit_test_burst", later));
    }
}
