//! Gives every error async-graphql itself produces an `extensions.code` (it makes parse and
//! validation errors without one), and enforces the depth and complexity limits so that exceeding
//! them has a code of its own. Installed as a schema extension, so HTTP and WebSocket requests
//! alike pass through it.
//!
//! async-graphql runs a request as: prepare (here: parse, and pick the operation) → parse hook
//! (its nesting check) → validation (here: the limits) → execution. Each stage's errors get their
//! code where the stage is known, not by matching messages afterwards.
use std::sync::Arc;

use async_graphql::{
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest, NextSubscribe,
        NextValidation,
    },
    parser::types::{DocumentOperations, ExecutableDocument},
    Request, Response, ServerError, ServerResult, ValidationResult, Variables,
};
use futures::{stream::BoxStream, StreamExt};

use crate::error::ErrorCode;

/// Deepest nesting a query may have, and the most fields it may cost (lists count `first` times).
pub const MAX_DEPTH: usize = 15;
pub const MAX_COMPLEXITY: usize = 250_000;

pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

fn coded(code: ErrorCode, mut e: ServerError) -> ServerError {
    code.set_on(&mut e);
    e
}

fn error(code: ErrorCode, message: impl Into<String>) -> ServerError {
    coded(code, ServerError::new(message, None))
}

/// The operation async-graphql will run, or why there is none (its own rules, checked here
/// because it checks them after every hook, where its errors would get no code).
fn check_operation(doc: &ExecutableDocument, name: Option<&str>) -> ServerResult<()> {
    match (&doc.operations, name) {
        (DocumentOperations::Multiple(ops), Some(name)) if !ops.contains_key(name) => {
            Err(error(ErrorCode::GraphqlValidationFailed, format!("the document has no operation named `{name}`")))
        }
        (DocumentOperations::Single(_), Some(name)) => {
            Err(error(ErrorCode::GraphqlValidationFailed, format!("the document has no operation named `{name}`")))
        }
        (DocumentOperations::Multiple(ops), None) if ops.len() > 1 => {
            Err(error(ErrorCode::GraphqlValidationFailed, "the document has several operations: name the one to run in `operationName`"))
        }
        _ => Ok(()),
    }
}

/// A code for each error that has none, after execution. Field errors without a code come from
/// async-graphql turning argument values into Rust values (our own resolvers only return
/// `AppError`s, which have codes); errors without a path are about the request.
fn fill_in(mut resp: Response) -> Response {
    for e in &mut resp.errors {
        if e.extensions.as_ref().is_some_and(|x| x.get("code").is_some()) {
            continue;
        }
        let code = if e.path.is_empty() { ErrorCode::GraphqlValidationFailed } else { ErrorCode::BadUserInput };
        code.set_on(e);
    }
    resp
}

#[async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        fill_in(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(fill_in).boxed()
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        // Parsed here, once (async-graphql uses the parsed document), to tell a document that is
        // not GraphQL from one nested too deep for the parser.
        let doc = async_graphql::parser::parse_query(&request.query).map_err(|e| {
            let code = match e {
                async_graphql::parser::Error::RecursionLimitExceeded => ErrorCode::QueryTooComplex,
                _ => ErrorCode::GraphqlParseFailed,
            };
            let message = match code {
                ErrorCode::QueryTooComplex => format!("the query is nested too deep (at most {MAX_DEPTH} levels are allowed)"),
                _ => e.to_string(),
            };
            let mut err = ServerError::new(message, None);
            err.locations = e.positions().collect();
            coded(code, err)
        })?;
        check_operation(&doc, request.operation_name.as_deref())?;
        request.set_parsed_query(doc);
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // The document is already parsed: what fails here is async-graphql's nesting check.
        next.run(ctx, query, variables).await.map_err(|e| {
            let mut err = error(ErrorCode::QueryTooComplex, format!("the query is nested too deep (at most {MAX_DEPTH} levels are allowed)"));
            err.locations = e.locations;
            err
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next
            .run(ctx)
            .await
            .map_err(|errors| errors.into_iter().map(|e| coded(ErrorCode::GraphqlValidationFailed, e)).collect::<Vec<_>>())?;
        if result.depth > MAX_DEPTH {
            return Err(vec![error(
                ErrorCode::QueryTooComplex,
                format!("the query is nested too deep: {} levels, at most {MAX_DEPTH} are allowed", result.depth),
            )]);
        }
        if result.complexity > MAX_COMPLEXITY {
            return Err(vec![error(
                ErrorCode::QueryTooComplex,
                format!(
                    "the query is too complex: it would cost {} fields, more than the {MAX_COMPLEXITY} allowed (a list counts `first` times); ask for smaller pages or fewer fields",
                    result.complexity
                ),
            )]);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_must_be_named_when_there_are_several() {
        let doc = async_graphql::parser::parse_query("query A { a } query B { b }").unwrap();
        assert!(check_operation(&doc, Some("A")).is_ok());
        let code = |r: ServerResult<()>| r.unwrap_err().extensions.unwrap().get("code").cloned();
        assert_eq!(code(check_operation(&doc, None)), Some("GRAPHQL_VALIDATION_FAILED".into()));
        assert_eq!(code(check_operation(&doc, Some("C"))), Some("GRAPHQL_VALIDATION_FAILED".into()));
        let single = async_graphql::parser::parse_query("{ a }").unwrap();
        assert!(check_operation(&single, None).is_ok());
    }
}
