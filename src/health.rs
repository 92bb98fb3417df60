//! What this process knows about its own liveness, for `/readyz` and the logs: every long-lived
//! part (each queue consumer, the periodic runner) reports here when it starts, beats and stops.
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::Notify;

#[derive(Debug, Clone)]
struct Part {
    alive: bool,
    last_beat: Instant,
    /// Why it is down, or what it last said.
    detail: Option<String>,
    restarts: u32,
    /// Stops the part's current run when notified (its supervisor restarts it).
    kill: Arc<Notify>,
}

impl Part {
    fn new(alive: bool) -> Self {
        Self { alive, last_beat: Instant::now(), detail: None, restarts: 0, kill: Arc::new(Notify::new()) }
    }
}

/// The parts of this process and how they are. Cheap to clone; shared by all users.
#[derive(Clone, Default)]
pub struct Liveness {
    parts: Arc<Mutex<BTreeMap<String, Part>>>,
}

impl Liveness {
    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<String, Part>) -> R) -> R {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut parts)
    }

    /// `name` (re)started; it counts as alive until it stops or its beats stop.
    pub fn started(&self, name: &str) {
        self.with(|p| {
            let part = p.entry(name.to_string()).or_insert_with(|| Part::new(true));
            if !part.alive {
                part.restarts += 1;
            }
            part.alive = true;
            part.last_beat = Instant::now();
            part.detail = None;
        })
    }

    /// `name` showed it is working.
    pub fn beat(&self, name: &str) {
        self.with(|p| {
            if let Some(part) = p.get_mut(name) {
                part.last_beat = Instant::now();
            }
        })
    }

    /// `name` stopped, for `why`.
    pub fn stopped(&self, name: &str, why: &str) {
        self.with(|p| {
            let part = p.entry(name.to_string()).or_insert_with(|| Part::new(false));
            part.alive = false;
            part.detail = Some(why.to_string());
        })
    }

    /// Stops the current run of `name`, as if it had died; its supervisor restarts it. For
    /// operators' tools and fault tests.
    pub fn kill(&self, name: &str) -> bool {
        self.with(|p| p.get(name).map(|part| part.kill.notify_one()).is_some())
    }

    /// What [`Liveness::kill`] notifies for `name`.
    pub fn kill_switch(&self, name: &str) -> Arc<Notify> {
        self.with(|p| p.entry(name.to_string()).or_insert_with(|| Part::new(false)).kill.clone())
    }

    /// Seconds since `name` last beat, if it is known.
    pub fn silent_for(&self, name: &str) -> Option<Duration> {
        self.with(|p| p.get(name).map(|part| part.last_beat.elapsed()))
    }

    /// One line per part that is down or has not beaten within `stale`; empty when all is well.
    pub fn problems(&self, stale: Duration) -> Vec<String> {
        self.with(|p| {
            p.iter()
                .filter_map(|(name, part)| {
                    if !part.alive {
                        Some(format!("{name}: not running ({})", part.detail.as_deref().unwrap_or("stopped")))
                    } else if part.last_beat.elapsed() > stale {
                        Some(format!("{name}: no heartbeat for {} s", part.last_beat.elapsed().as_secs()))
                    } else {
                        None
                    }
                })
                .collect()
        })
    }
}

/// Keeps a loop that fails the same way every second (the database is down) from flooding the
/// log: a message is worth logging when it differs from the last one or a minute has passed.
#[derive(Debug, Default)]
pub struct QuietRepeats {
    last: Option<(String, Instant)>,
}

impl QuietRepeats {
    pub fn worth_logging(&mut self, message: &str) -> bool {
        let fresh = match &self.last {
            Some((m, at)) => m != message || at.elapsed() >= Duration::from_secs(60),
            None => true,
        };
        if fresh {
            self.last = Some((message.to_string(), Instant::now()));
        }
        fresh
    }

    /// The trouble is over: the next failure is logged again.
    pub fn clear(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_reports_stopped_and_silent_parts() {
        let l = Liveness::default();
        l.started("consumer a");
        l.started("consumer b");
        assert!(l.problems(Duration::from_secs(60)).is_empty());
        l.stopped("consumer a", "the database is unreachable");
        assert_eq!(l.problems(Duration::from_secs(60)), vec!["consumer a: not running (the database is unreachable)".to_string()]);
        let silent = l.problems(Duration::ZERO);
        assert_eq!(silent.len(), 2, "{silent:?}");
        assert!(silent[1].starts_with("consumer b: no heartbeat"), "{silent:?}");
        l.started("consumer a");
        l.beat("consumer b");
        assert!(l.problems(Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn repeated_messages_are_logged_once() {
        let mut q = QuietRepeats::default();
        assert!(q.worth_logging("db down"));
        assert!(!q.worth_logging("db down"));
        assert!(q.worth_logging("disk full"));
        q.clear();
        assert!(q.worth_logging("disk full"));
    }
}
