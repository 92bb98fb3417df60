//! The Archiving Manager: archives LMS exam data for legal long-term retention.
//! Dependencies point one way: `graphql`/`http` → `service` → `domain`.
pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod engine;
pub mod entity;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod lms;
pub mod queue;
pub mod service;
pub mod storage;
