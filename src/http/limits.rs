//! What one client may ask of the server: body size (413, checked against `Content-Length` before
//! anything is read), pauses while sending a body (408), requests at once (503 with `Retry-After`,
//! load shed at once instead of queued), and which other origins' scripts may call it (CORS).
//! The limits are tower/tower-http layers; this module configures them and gives their refusals
//! on `/graphql` the shape of GraphQL errors.
use std::{error::Error as StdError, time::Duration};

use async_graphql::http::MultipartOptions;
use axum::{
    body::Body,
    error_handling::HandleErrorLayer,
    extract::{Request, State},
    http::{
        header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER},
        request::Parts,
        HeaderValue, Method, StatusCode,
    },
    middleware::Next,
    response::{IntoResponse, Response},
    BoxError, Router,
};
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    timeout::RequestBodyTimeoutLayer,
};

use crate::{app::AppState, config::Settings, error::ErrorCode};

/// Seconds a shed client is asked to wait before it tries again.
const RETRY_AFTER_SECONDS: &str = "1";

/// Wraps every route of `router` in the request limits. Outermost first: GraphQL-shaped refusals,
/// load shedding at `max_concurrent_requests`, the body pause timeout, the body size limit.
pub fn apply(router: Router<AppState>, settings: &Settings) -> Router<AppState> {
    let max_body = usize::try_from(settings.max_body_bytes).unwrap_or(usize::MAX);
    router.layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn_with_state(settings.max_body_bytes, graphql_refusals))
            .layer(HandleErrorLayer::new(overloaded))
            .load_shed()
            // Global: axum layers each route separately, and all of them share the one limit.
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(settings.max_concurrent_requests as usize))
            .layer(RequestBodyTimeoutLayer::new(settings.request_body_timeout()))
            .layer(RequestBodyLimitLayer::new(max_body)),
    )
}

/// CORS for the configured origins; `None` (no CORS headers at all) when none are configured.
pub fn cors(settings: &Settings) -> Option<CorsLayer> {
    if settings.cors_allowed_origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> =
        settings.cors_allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()).collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([AUTHORIZATION, CONTENT_TYPE])
            .max_age(Duration::from_secs(600)),
    )
}

/// The load shedder's refusal: the server is at `max_concurrent_requests`.
async fn overloaded(err: BoxError) -> Response {
    if err.is::<tower::load_shed::error::Overloaded>() {
        (StatusCode::SERVICE_UNAVAILABLE, [(RETRY_AFTER, RETRY_AFTER_SECONDS)], "the server is busy; try again shortly\n").into_response()
    } else {
        tracing::error!(error = %err, "request failed in a middleware");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
    }
}

/// A GraphQL-over-HTTP request error: `{"errors":[{"message", "extensions":{"code"}}]}`, with the
/// code's HTTP status.
pub fn graphql_error(code: ErrorCode, message: impl Into<String>) -> Response {
    let status = code.http_status().unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({ "errors": [{ "message": message.into(), "extensions": { "code": code.as_str() } }] });
    (status, [(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string()).into_response()
}

/// Gives the layers' plain-text refusals (413, 408, 503) on `/graphql` the shape of GraphQL errors,
/// keeping their headers (`Retry-After`, CORS).
async fn graphql_refusals(State(max_body): State<u64>, req: Request, next: Next) -> Response {
    let is_graphql = req.uri().path() == "/graphql";
    let res = next.run(req).await;
    let is_json = res.headers().get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_graphql || is_json {
        return res;
    }
    let (code, message) = match res.status() {
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::PayloadTooLarge, too_large(max_body)),
        StatusCode::REQUEST_TIMEOUT => (ErrorCode::RequestTimeout, "the request body stopped arriving; send it without pauses".to_string()),
        StatusCode::SERVICE_UNAVAILABLE => (ErrorCode::ServiceUnavailable, "the server is busy; try again shortly".to_string()),
        _ => return res,
    };
    let (mut parts, _) = res.into_parts();
    let fresh = graphql_error(code, message);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, fresh.into_body())
}

fn too_large(max_body: u64) -> String {
    format!("the request body is larger than the {max_body} bytes this server accepts")
}

/// Reads a GraphQL request from a GET query string or a POST body (JSON, `application/graphql` or
/// multipart). Refusals are GraphQL-shaped errors with a code and a message for people, never
/// Rust debug output: 413 for a body over the limit (also when it had no `Content-Length`), 408
/// for a body that stopped arriving, 400 for anything that is not a GraphQL request.
pub async fn read_graphql_request(parts: &Parts, body: Body) -> Result<async_graphql::Request, Response> {
    let bad = |message: String| graphql_error(ErrorCode::BadRequest, message);
    let req = if parts.method == Method::GET {
        async_graphql::http::parse_query_string(parts.uri.query().unwrap_or_default())
            .map_err(|e| bad(format!("the query string is not a GraphQL request ({e}); expected ?query=…[&variables=…]")))?
    } else {
        read_body(parts, body).await?
    };
    if req.query.trim().is_empty() {
        return Err(bad("the request has no `query`".to_string()));
    }
    Ok(req)
}

async fn read_body(parts: &Parts, body: Body) -> Result<async_graphql::Request, Response> {
    let bad = |message: String| graphql_error(ErrorCode::BadRequest, message);
    // Bare statuses for the limits' errors: `graphql_refusals` gives them their body.
    let bytes = axum::body::to_bytes(body, usize::MAX).await.map_err(|e| {
        if caused_by::<http_body_util::LengthLimitError>(&e) {
            StatusCode::PAYLOAD_TOO_LARGE.into_response()
        } else if caused_by::<tower_http::timeout::TimeoutError>(&e) {
            StatusCode::REQUEST_TIMEOUT.into_response()
        } else {
            bad("the request body could not be read".to_string())
        }
    })?;
    let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let batch = async_graphql::http::receive_batch_body(content_type, &bytes[..], MultipartOptions::default())
        .await
        .map_err(|e| bad(format!("the body is not a GraphQL request: {e}")))?;
    batch.into_single().map_err(|e| bad(format!("{e}")))
}

/// Whether `T` is `err` or among its sources.
fn caused_by<T: StdError + 'static>(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<T>() {
            return true;
        }
        next = e.source();
    }
    false
}
