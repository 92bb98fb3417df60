//! The GraphQL API (DESIGN §8): schema assembly and the roots. Resolvers hold no business logic and
//! no SQL: they call `service`.
pub mod context;
pub mod ids;
pub mod loaders;
mod mutation;
mod nulls;
mod query;
pub mod scalars;
mod subscription;
pub mod types;

use async_graphql::{Schema, SDLExportOptions};
use crate::{engine::Engine, service::Services};

pub use context::RequestAuth;
pub use nulls::SpecExecutor;
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Deepest nesting a query may have, and the most fields it may cost (lists count `first` times).
pub const MAX_DEPTH: usize = 15;
pub const MAX_COMPLEXITY: usize = 250_000;

/// What a connection field costs: its page (as served: at most `MAX_PAGE`) times its children.
/// A larger `first` is refused by the field itself with a clear BAD_USER_INPUT, not as
/// "too complex".
pub fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    let page = first.map_or(crate::service::pagination::DEFAULT_PAGE, |n| (n.max(0) as u64).min(crate::service::pagination::MAX_PAGE));
    page as usize * child_complexity
}

fn builder() -> async_graphql::SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot).limit_depth(MAX_DEPTH).limit_complexity(MAX_COMPLEXITY)
}

/// The schema with what resolvers reach: the services. The engine is there only for the
/// subscriptions, until their reads move into `service` too.
pub fn build(engine: Engine) -> SpecExecutor<AppSchema> {
    let schema = builder().data(Services::new(engine.clone())).data(engine).finish();
    let sdl = schema.sdl();
    SpecExecutor::new(schema, &sdl)
}

/// The SDL that `archiving-manager schema` prints and `schema.graphql` holds.
pub fn sdl() -> String {
    builder().finish().sdl_with_options(SDLExportOptions::new().sorted_fields().sorted_enum_items())
}
