//! The HTTP surface: /graphql (GET, POST), /graphql/ws (graphql-transport-ws), GraphiQL at /,
//! /healthz and /readyz.
mod download;
mod graphiql;
mod limits;
mod ws;

use std::{net::SocketAddr, sync::Arc};

use async_graphql::Data;
use async_graphql_axum::GraphQLResponse;
use axum::{
    extract::{ConnectInfo, Request, State, WebSocketUpgrade},
    http::{
        header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL},
        HeaderMap, Method, StatusCode,
    },
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use tower_http::trace::TraceLayer;

use crate::{
    app::AppState,
    auth::JwtKeys,
    graphql::{loaders::Loaders, RequestAuth},
    service::{Access, Services},
};

pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    let api = Router::new()
        .route("/graphql", get(graphql).post(graphql))
        .route("/graphql/ws", get(graphql_ws))
        .merge(graphiql::routes())
        .merge(download::routes());
    // Body size and pause limits, and load shedding, for everything above. Health probes are
    // added after them: a busy server still answers its load balancer.
    let mut router = limits::apply(api, &settings)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz));
    if let Some(cors) = limits::cors(&settings) {
        router = router.layer(cors);
    }
    // Log method and path only: query strings may carry signed download tokens later.
    router
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(state)
}

/// Authenticates a bearer token (`Bearer <jwt>`; the scheme is case-insensitive).
pub fn authenticate(keys: &JwtKeys, header: Option<&str>) -> RequestAuth {
    let Some(value) = header else { return RequestAuth::Anonymous };
    let token = match value.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => t.trim(),
        _ => return RequestAuth::Invalid("expected `Authorization: Bearer <token>`".into()),
    };
    match keys.verify(token) {
        Ok(p) => RequestAuth::Authenticated(Access::new(p)),
        Err(reason) => RequestAuth::Invalid(reason),
    }
}

/// The caller's authentication and data loaders: caching ones for one request, uncached ones for
/// a WebSocket connection (which lives across many events).
fn request_data(state: &AppState, auth: RequestAuth, per_request: bool) -> (RequestAuth, Loaders) {
    let access = match &auth {
        RequestAuth::Authenticated(a) => Some(a.clone()),
        _ => None,
    };
    let services = Services::new(state.engine.clone());
    let loaders = if per_request { Loaders::new(&services, access) } else { Loaders::uncached(&services, access) };
    (auth, loaders)
}

async fn graphql(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut req = match limits::read_graphql_request(&parts, body).await {
        Ok(req) => req,
        Err(refusal) => return refusal,
    };
    // GET must not change anything: a link or an <img> must never run a mutation.
    if parts.method == Method::GET {
        let is_mutation = async_graphql::parser::parse_query(&req.query).map(|doc| {
            doc.operations.iter().any(|(_, op)| op.node.ty == async_graphql::parser::types::OperationType::Mutation)
        });
        if matches!(is_mutation, Ok(true)) {
            return limits::graphql_error(crate::error::ErrorCode::MethodNotAllowed, "mutations need POST");
        }
    }
    let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let auth = match authenticate(&state.jwt, header) {
        // The peer's address, for the audit log. Behind a proxy that is the proxy: a forwarded
        // header is the client's word, not evidence.
        RequestAuth::Authenticated(a) => match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => RequestAuth::Authenticated(a.with_origin(peer.ip().to_string())),
            None => RequestAuth::Authenticated(a),
        },
        other => other,
    };
    let (auth, loaders) = request_data(&state, auth, true);
    req = req.data(auth).data(loaders);
    GraphQLResponse::from(async_graphql::Executor::execute(&state.schema, req).await).into_response()
}

async fn graphql_ws(State(state): State<AppState>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    // The client's first protocol async-graphql knows, as async-graphql-axum's extractor chooses it.
    let protocol = headers
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|offered| offered.split(',').find_map(|p| p.trim().parse::<async_graphql::http::WebSocketProtocols>().ok()));
    let Some(protocol) = protocol else {
        return (StatusCode::BAD_REQUEST, "send Sec-WebSocket-Protocol: graphql-transport-ws\n").into_response();
    };
    ws::upgrade(upgrade, state, protocol)
}

/// Prefix of the close reason when a WebSocket's connection_init is refused.
const FORBIDDEN: &str = "Forbidden";

/// The token comes in `connection_init`: `{"authorization": "Bearer <jwt>"}` or `{"token": "<jwt>"}`.
/// A missing or bad token refuses the connection.
fn ws_init(state: &AppState, jwt: &Arc<JwtKeys>, payload: serde_json::Value) -> async_graphql::Result<Data> {
    let header = match (payload.get("authorization").or_else(|| payload.get("Authorization")), payload.get("token")) {
        (Some(a), _) => a.as_str().map(str::to_string),
        (None, Some(t)) => t.as_str().map(|t| format!("Bearer {t}")),
        _ => None,
    };
    match authenticate(jwt, header.as_deref()) {
        RequestAuth::Authenticated(a) => {
            // Held in the connection's data: its place is freed when the connection ends.
            let slot = state.subscriptions.connect(&a.principal).map_err(|why| async_graphql::Error::new(format!("{FORBIDDEN}: {why}")))?;
            let (auth, loaders) = request_data(state, RequestAuth::Authenticated(a), false);
            let mut data = Data::default();
            data.insert(auth);
            data.insert(loaders);
            data.insert(slot);
            Ok(data)
        }
        RequestAuth::Invalid(reason) => Err(async_graphql::Error::new(format!("{FORBIDDEN}: {reason}"))),
        RequestAuth::Anonymous => Err(async_graphql::Error::new(format!("{FORBIDDEN}: authentication required: send a token in connection_init"))),
    }
}

/// How long `/readyz` waits for the database: it must answer quickly even while the database
/// does not (a load balancer's probe times out after a few seconds).
const READY_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

/// Ready when the database answers with every migration applied and every part of this process
/// (queue consumers, periodic runner) runs and beats. Otherwise 503, one line per failing part.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let mut problems = Vec::new();
    match tokio::time::timeout(READY_DB_TIMEOUT, crate::db::is_ready(&state.db)).await {
        Ok(true) => {}
        Ok(false) => problems.push("database: unreachable, or migrations are pending".to_string()),
        Err(_) => problems.push(format!("database: no answer within {} ms", READY_DB_TIMEOUT.as_millis())),
    }
    problems.extend(state.liveness.problems(crate::engine::worker::STALLED_AFTER));
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        for p in &problems {
            tracing::debug!(problem = %p, "not ready");
        }
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready\n{}\n", problems.join("\n")))
    }
}
