//! Use cases, called by GraphQL, the CLI and automation alike. No GraphQL types here: resolvers
//! translate; services decide and query.
pub mod access;
pub mod audit;
pub mod catalog;
pub mod downloads;
pub mod fixity;
pub mod jobs;
pub mod overview;
pub mod pagination;
pub mod policy;
pub mod retention;
pub mod services;
pub mod storage_backends;
pub mod subscriptions;
pub mod switches;
pub mod timestamps;
pub mod sync;

pub use access::Access;
pub use pagination::{Page, PageArgs};
pub use services::Services;
