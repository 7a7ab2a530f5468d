//! A replica following the change feed of a shared PostgreSQL database
//! (DESIGN.md section 6): a thread with its own connection `LISTEN`s on
//! [`crate::store::CHANNEL`] and applies each notified change to the live
//! state and fleet at once, polls the newest sequence when nothing arrives
//! (a notification lost across a reconnect is caught up that way), and
//! reports this replica's position to the `replicas` table for
//! `quiver db status`. Requests do not depend on it for freshness (each
//! reads the newest sequence first); it keeps an idle replica's fleet
//! current for the scheduler and measures the feed's lag.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

use crate::Placement;

/// Commit-to-apply delays kept for the percentiles.
const LAG_WINDOW: usize = 4096;

/// How far behind the feed this replica's memory is, for `/metrics`.
#[derive(Debug, Default)]
pub struct FeedStats {
    applied: AtomicI64,
    latest: AtomicI64,
    lags: Mutex<Lags>,
    /// Freshness checks made (reads of the newest sequence) and their time.
    checks: AtomicU64,
    check_nanos: AtomicU64,
}

#[derive(Debug, Default)]
struct Lags {
    recent: std::collections::VecDeque<f64>,
    total: u64,
}

/// A snapshot of [`FeedStats`].
#[derive(Clone, Debug, PartialEq)]
pub struct FeedStatus {
    /// The newest change applied to memory.
    pub applied: i64,
    /// The newest change this replica has seen committed.
    pub latest: i64,
    /// Other replicas' changes applied since start.
    pub applied_total: u64,
    /// Commit-to-apply delay percentiles over the recent changes (ms).
    pub lag_p50_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
    /// Freshness checks made by requests, and the seconds they took.
    pub freshness_checks: u64,
    pub freshness_seconds: f64,
}

impl FeedStats {
    pub(crate) fn note(&self, applied: i64, lags: Vec<f64>) {
        self.applied.store(applied, Ordering::Release);
        self.latest.fetch_max(applied, Ordering::AcqRel);
        if lags.is_empty() {
            return;
        }
        let mut l = self.lags.lock().unwrap_or_else(|e| e.into_inner());
        l.total += lags.len() as u64;
        for x in lags {
            if l.recent.len() == LAG_WINDOW {
                l.recent.pop_front();
            }
            l.recent.push_back(x);
        }
    }

    pub(crate) fn checked(&self, took: std::time::Duration) {
        self.checks.fetch_add(1, Ordering::Relaxed);
        self.check_nanos.fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    pub(crate) fn saw(&self, latest: i64) {
        self.latest.fetch_max(latest, Ordering::AcqRel);
    }

    pub fn applied(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }

    pub fn status(&self) -> FeedStatus {
        let l = self.lags.lock().unwrap_or_else(|e| e.into_inner());
        let mut sorted: Vec<f64> = l.recent.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let pct = |p: f64| (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * p).round() as usize]);
        FeedStatus {
            applied: self.applied(),
            latest: self.latest.load(Ordering::Acquire).max(self.applied()),
            applied_total: l.total,
            lag_p50_ms: pct(0.50),
            lag_p99_ms: pct(0.99),
            freshness_checks: self.checks.load(Ordering::Relaxed),
            freshness_seconds: self.check_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// Starts the follower of `placement`'s change feed; it ends when the
/// last reference to `placement` goes.
pub(crate) fn follow(placement: Weak<Placement>, url: String, replica: String) -> std::io::Result<()> {
    std::thread::Builder::new().name("quiver-change-feed".into()).spawn(move || {
        let mut backoff = Duration::from_millis(100);
        while placement.strong_count() > 0 {
            match Client::connect(&url, NoTls) {
                Ok(mut client) => {
                    backoff = Duration::from_millis(100);
                    if let Err(e) = listen(&mut client, &placement, &replica) {
                        tracing::warn!(error = %e, "the change-feed connection failed; reconnecting");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the change feed cannot connect; retrying"),
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    })?;
    Ok(())
}

/// Listens and applies until the connection fails or `placement` goes.
fn listen(client: &mut Client, placement: &Weak<Placement>, replica: &str) -> Result<(), postgres::Error> {
    client.batch_execute(&format!("LISTEN {}", crate::store::CHANNEL))?;
    let mut reported = Instant::now() - Duration::from_secs(60);
    loop {
        let mut newest: Option<i64> = None;
        {
            let mut notes = client.notifications();
            let first = notes.timeout_iter(Duration::from_millis(500)).next()?;
            if let Some(n) = first {
                newest = n.payload().parse().ok();
                let mut pending = notes.iter();
                while let Some(n) = pending.next()? {
                    newest = newest.max(n.payload().parse().ok());
                }
            }
        }
        let newest = match newest {
            Some(seq) => seq,
            None => client.query_one("SELECT coalesce(max(seq), 0) FROM changes", &[])?.get(0),
        };
        let Some(p) = placement.upgrade() else { return Ok(()) };
        p.feed_stats().saw(newest);
        if let Err(e) = p.catch_up_to(newest) {
            tracing::warn!(error = %e.detail, "the change feed could not be applied");
        }
        if reported.elapsed() >= Duration::from_secs(1) {
            let s = p.feed_stats().status();
            drop(p);
            client.execute(
                "INSERT INTO replicas (name, applied_seq, lag_ms, seen_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET applied_seq = excluded.applied_seq,
                   lag_ms = coalesce(excluded.lag_ms, replicas.lag_ms), seen_at = excluded.seen_at",
                &[&replica, &s.applied, &s.lag_p50_ms, &crate::model::now()],
            )?;
            reported = Instant::now();
        }
    }
}
