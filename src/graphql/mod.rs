//! The GraphQL API: schema assembly and the roots. Resolvers hold no business logic and
//! no SQL: they call `service`.
pub mod context;
mod errors;
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
pub use subscription::{OutgoingPayloads, SubscriptionRoot};

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

pub use errors::{MAX_COMPLEXITY, MAX_DEPTH};

/// What a connection field costs: its page (as served: at most `MAX_PAGE`) times its children.
/// A larger `first` is refused by the field itself with a clear BAD_USER_INPUT, not as
/// "too complex".
pub fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    let page = first.map_or(crate::service::pagination::DEFAULT_PAGE, |n| (n.max(0) as u64).min(crate::service::pagination::MAX_PAGE));
    page as usize * child_complexity
}

fn builder() -> async_graphql::SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    // The depth and complexity limits are checked by `ErrorCodes`, which gives exceeding them a code.
    Schema::build(QueryRoot, MutationRoot::default(), SubscriptionRoot).extension(errors::ErrorCodes)
}

/// The schema with what resolvers reach: the services, and the feed of job events for the
/// subscriptions; the engine only behind the services, never reached by a resolver.
pub fn build(engine: Engine, subscriptions: std::sync::Arc<crate::service::subscriptions::Subscriptions>) -> SpecExecutor<AppSchema> {
    let feed = std::sync::Arc::new(subscription::Feed::new(subscriptions));
    let schema = builder().data(Services::new(engine)).data(feed).finish();
    let sdl = schema.sdl();
    SpecExecutor::new(schema, &sdl)
}

/// The SDL that `archiving-manager schema` prints and `schema.graphql` holds.
pub fn sdl() -> String {
    builder().finish().sdl_with_options(SDLExportOptions::new().sorted_fields().sorted_enum_items())
}
