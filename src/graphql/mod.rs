//! The GraphQL API (DESIGN §8): schema assembly and the roots. Resolvers hold no business logic and
//! no SQL: they call `service`.
pub mod context;
pub mod ids;
pub mod loaders;
mod query;
pub mod scalars;
pub mod types;

use async_graphql::{EmptyMutation, EmptySubscription, Schema, SDLExportOptions};
use sea_orm::DatabaseConnection;

pub use context::RequestAuth;
pub use query::QueryRoot;

pub type AppSchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

/// Deepest nesting a query may have, and the most fields it may cost (lists count `first` times).
pub const MAX_DEPTH: usize = 15;
pub const MAX_COMPLEXITY: usize = 250_000;

fn builder() -> async_graphql::SchemaBuilder<QueryRoot, EmptyMutation, EmptySubscription> {
    Schema::build(QueryRoot, EmptyMutation, EmptySubscription).limit_depth(MAX_DEPTH).limit_complexity(MAX_COMPLEXITY)
}

pub fn build(db: DatabaseConnection) -> AppSchema {
    builder().data(db).finish()
}

/// The SDL that `archiving-manager schema` prints and `schema.graphql` holds.
pub fn sdl() -> String {
    builder().finish().sdl_with_options(SDLExportOptions::new().sorted_fields().sorted_enum_items())
}
