//! Crash points for fault-injection tests. With `ARCHIVING_FAULT_POINT=<name>` in its environment,
//! the process kills itself with SIGKILL the first time it reaches the point of that name, so a
//! test can stop a worker at an exact instant (e.g. `task:FINALIZING`, right after a task's move
//! to FINALIZING committed) and check that a fresh process recovers. Points: `job:<STATUS>` and
//! `task:<STATUS>` after a transition into STATUS committed; `store:intent` after a file's intent
//! was recorded and before its object is put; `store:put` after the object was stored and
//! verified and before its record is confirmed. Unset (always, outside such tests), a point costs
//! one load of a cached flag.
use std::sync::OnceLock;

fn armed() -> Option<&'static str> {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    POINT.get_or_init(|| std::env::var("ARCHIVING_FAULT_POINT").ok().filter(|p| !p.is_empty())).as_deref()
}

/// Dies here if this is the armed point; `name` is only built when a point is armed.
pub fn point(name: impl FnOnce() -> String) {
    if let Some(armed) = armed() {
        if name() == armed {
            tracing::error!(point = armed, "fault point reached: killing this process");
            let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        }
    }
}
