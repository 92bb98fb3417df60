//! GraphiQL at `/`, from files embedded in the binary (`assets/graphiql/`: our page and its setup,
//! and GraphiQL and React vendored from npm at exact versions by `assets/graphiql/vendor.sh`). The
//! page loads nothing from anywhere else, so it works where the server has no internet access.
use axum::{
    extract::Path,
    http::{
        header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE},
        StatusCode,
    },
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

use crate::app::AppState;

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The files under `/graphiql/`: name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    ("init.js", JS, include_bytes!("../../assets/graphiql/init.js")),
    ("graphiql.min.js", JS, include_bytes!("../../assets/graphiql/vendor/graphiql.min.js")),
    ("graphiql.min.css", CSS, include_bytes!("../../assets/graphiql/vendor/graphiql.min.css")),
    ("react.production.min.js", JS, include_bytes!("../../assets/graphiql/vendor/react.production.min.js")),
    ("react-dom.production.min.js", JS, include_bytes!("../../assets/graphiql/vendor/react-dom.production.min.js")),
];

const INDEX: &str = include_str!("../../assets/graphiql/index.html");

/// Only this server: scripts, styles and connections (the WebSocket included) to other origins
/// are refused by the browser. GraphiQL sets element styles and its fonts are `data:` URLs.
const POLICY: &str = "default-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/graphiql/{file}", get(file))
}

async fn index() -> Response {
    ([(CONTENT_TYPE, "text/html; charset=utf-8"), (CACHE_CONTROL, "no-cache"), (CONTENT_SECURITY_POLICY, POLICY)], INDEX)
        .into_response()
}

async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        // Revalidated on each load: a new server version may bring new files under the same names.
        Some((_, content_type, bytes)) => ([(CONTENT_TYPE, *content_type), (CACHE_CONTROL, "no-cache")], *bytes).into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page refers only to files that are served.
    #[test]
    fn the_page_loads_only_embedded_files() {
        let refs: Vec<&str> = INDEX.split(['"', '\'']).filter(|s| s.starts_with("/graphiql/")).collect();
        assert_eq!(refs.len(), FILES.len(), "{refs:?}");
        for r in refs {
            let name = r.trim_start_matches("/graphiql/");
            assert!(FILES.iter().any(|(n, _, _)| *n == name), "{r} is not embedded");
        }
        assert!(!INDEX.contains("://"), "the page must not load anything from elsewhere");
    }
}
