//! The Archiving Manager: archives LMS exam data for legal long-term retention.
//! Dependencies point one way: `graphql`/`http` → `service` → `domain`.
pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod entity;
pub mod error;
pub mod graphql;
pub mod http;
pub mod lms;
pub mod service;
