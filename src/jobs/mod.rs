//! The job store: the state machine of jobs and tasks in the database (transitions conditional
//! on the state they leave), leases held by the work's own future, job logs, and the durable
//! event log written in the same transaction as every change. The engine, the service layer and
//! the periodic tasks change jobs only through it.
pub mod lease;
pub mod store;

pub use lease::{AbortOnDrop, Lease, LeaseGuard};
pub use store::{JobStore, Patch};
