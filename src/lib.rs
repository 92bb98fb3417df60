//! The Archiving Manager: archives LMS exam data for legal long-term retention.
//! Dependencies point one way: `graphql`/`http` → `service` → `jobs`/`engine`/`domain`/drivers.
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod engine;
pub mod entity;
pub mod error;
pub mod events;
pub mod faults;
#[doc(hidden)]
pub mod fixtures;
pub mod graphql;
pub mod health;
pub mod http;
pub mod jobs;
pub mod lms;
pub mod periodic;
pub mod queue;
pub mod service;
pub mod storage;
pub mod tsp;
