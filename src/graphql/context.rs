//! What a resolver can reach: the application's services, the caller's access and the request's
//! data loaders. No database handle: every query is a service's.
use async_graphql::Context;

use super::loaders::Loaders;
use crate::{
    error::{AppError, AppResult},
    service::{Access, PageArgs, Services},
};

/// The outcome of authenticating a request or a WebSocket connection.
#[derive(Debug, Clone)]
pub enum RequestAuth {
    Anonymous,
    Invalid(String),
    Authenticated(Access),
}

pub trait ContextExt {
    fn services(&self) -> &Services;
    /// The caller's access, or UNAUTHENTICATED.
    fn access(&self) -> AppResult<&Access>;
    fn loaders(&self) -> &Loaders;
    /// Page arguments, asking for a total only when the selection wants `totalCount`.
    fn page(&self, first: Option<i32>, after: Option<String>) -> AppResult<PageArgs>;
}

impl ContextExt for Context<'_> {
    fn services(&self) -> &Services {
        self.data_unchecked::<Services>()
    }

    fn access(&self) -> AppResult<&Access> {
        match self.data_opt::<RequestAuth>() {
            Some(RequestAuth::Authenticated(a)) => Ok(a),
            Some(RequestAuth::Invalid(reason)) => Err(AppError::Unauthenticated(reason.clone())),
            _ => Err(AppError::Unauthenticated("authentication required: send a bearer token".into())),
        }
    }

    fn loaders(&self) -> &Loaders {
        self.data_unchecked::<Loaders>()
    }

    fn page(&self, first: Option<i32>, after: Option<String>) -> AppResult<PageArgs> {
        PageArgs::new(first, after, self.look_ahead().field("totalCount").exists())
    }
}
