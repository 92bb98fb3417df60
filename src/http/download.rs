//! `GET /downloads/{file_id}?expires=…&sig=…`: streams an archived file named by a signed URL
//! (see `service::downloads`). The signature is checked before anything is looked up; a bad,
//! expired or forged one is a bare 403, a deleted or unknown file a bare 404. Answers carry
//! `Content-Length`, `Content-Type`, `Content-Disposition: attachment`, `ETag: "<sha256>"` and
//! `Accept-Ranges: bytes`; a single `Range` (`a-b`, `a-`, `-n`) gets a 206, an unsatisfiable one a
//! 416, several ranges the whole file. Never logs the query string (it holds the signature).
use axum::{
    body::Body,
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use chrono::Utc;

use crate::{
    app::AppState,
    entity::archive_file,
    service::downloads,
    storage::{self, StorageDriver, StorageError},
};

pub fn routes() -> Router<AppState> {
    Router::new().route("/downloads/{file_id}", get(download)).route("/downloads/timestamps/{name}", get(download_token_part))
}

/// A status with an empty body that no cache keeps.
fn bare(status: StatusCode) -> Response {
    (status, [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))]).into_response()
}

fn query_params(query: Option<&str>) -> Option<(i64, String)> {
    let mut expires = None;
    let mut sig = None;
    for (k, v) in url::form_urlencoded::parse(query?.as_bytes()) {
        match k.as_ref() {
            "expires" if expires.is_none() => expires = Some(v.parse::<i64>().ok()?),
            "sig" if sig.is_none() => sig = Some(v.into_owned()),
            "expires" | "sig" => return None, // repeated: refuse rather than guess
            _ => {}
        }
    }
    Some((expires?, sig?))
}

/// Checks a signed URL's `expires` and `sig` with `verify` (which gets the key, the expiry and the
/// signature): `Err` is the bare answer to give (403 for a bad or missing signature).
async fn check_signature(state: &AppState, query: Option<&str>, verify: impl FnOnce(&[u8], i64, &str) -> bool) -> Result<(), Response> {
    let Some((expires, sig)) = query_params(query) else { return Err(bare(StatusCode::FORBIDDEN)) };
    let key = downloads::signing_key(&state.db).await.map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "download: no signing key");
        bare(StatusCode::INTERNAL_SERVER_ERROR)
    })?;
    if !verify(&key, expires, &sig) {
        return Err(bare(StatusCode::FORBIDDEN));
    }
    Ok(())
}

async fn download(State(state): State<AppState>, Path(file_id): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let Ok(file_id) = file_id.parse::<i64>() else { return bare(StatusCode::FORBIDDEN) };
    if let Err(refused) = check_signature(&state, query.as_deref(), |key, expires, sig| downloads::verify(key, file_id, expires, sig, Utc::now())).await {
        return refused;
    }
    let file = match downloads::stored_file(&state.db, file_id).await {
        Ok(Some(f)) => f,
        Ok(None) => return bare(StatusCode::NOT_FOUND),
        Err(e) => {
            tracing::error!(file_id, error = %format!("{e:#}"), "download: loading the file");
            return bare(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let driver = match storage::files::backend(&state.db, file.storage_backend_id).await {
        Ok((_, d)) => d,
        Err(e) => {
            tracing::error!(file_id, backend_id = file.storage_backend_id, error = %e, "download: opening the storage backend");
            return bare(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    respond(driver.as_ref(), &file, &headers).await
}

/// `GET /downloads/timestamps/<token_id>.<tsq|tsr|pem>?expires=…&sig=…`: a timestamp token's
/// query, reply or certificate chain, named by a signed URL like files are.
async fn download_token_part(State(state): State<AppState>, Path(name): Path<String>, RawQuery(query): RawQuery) -> Response {
    let Some((token_id, part)) = downloads::TokenPart::parse(&name) else { return bare(StatusCode::FORBIDDEN) };
    let verify = |key: &[u8], expires, sig: &str| downloads::verify_token_part(key, token_id, part, expires, sig, Utc::now());
    if let Err(refused) = check_signature(&state, query.as_deref(), verify).await {
        return refused;
    }
    let (bytes, file_name) = match downloads::token_part(&state.db, token_id, part).await {
        Ok(Some(found)) => found,
        Ok(None) => return bare(StatusCode::NOT_FOUND),
        Err(e) => {
            tracing::error!(token_id, error = %format!("{e:#}"), "download: loading the token");
            return bare(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let disposition = HeaderValue::from_str(&content_disposition(&file_name)).unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, part.media_type())
        .header(header::CONTENT_DISPOSITION, disposition)
        .header(header::CONTENT_LENGTH, bytes.len())
        .header(header::CACHE_CONTROL, "private, no-store")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox")
        .body(Body::from(bytes))
        .unwrap_or_else(|_| bare(StatusCode::INTERNAL_SERVER_ERROR))
}

/// The answer for a file the caller may download.
pub(crate) async fn respond(driver: &dyn StorageDriver, file: &archive_file::Model, headers: &HeaderMap) -> Response {
    let size = u64::try_from(file.size_bytes).unwrap_or(0);
    let etag = format!("\"{}\"", file.sha256);
    let etag_value = HeaderValue::from_str(&etag).unwrap_or_else(|_| HeaderValue::from_static("\"\""));

    if let Some(inm) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        if etag_matches(inm, &etag) {
            return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value), (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"))]).into_response();
        }
    }
    // If-Range with another validator (or a date, which we cannot judge): serve the whole file.
    let range_allowed = match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => v.trim() == etag,
    };
    let range_header = if range_allowed { headers.get(header::RANGE).and_then(|v| v.to_str().ok()) } else { None };
    let wanted = match parse_range(range_header, size) {
        RangeRequest::Unsatisfiable => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [
                    (header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii")),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
            )
                .into_response();
        }
        RangeRequest::Full => None,
        RangeRequest::Partial { start, end } => Some((start, end)),
    };

    let obj = match driver.get(&file.storage_key, wanted.map(|(s, e)| (s, Some(e)))).await {
        Ok(o) => o,
        Err(StorageError::NotFound) => {
            tracing::error!(file_id = file.id, "download: the stored object is missing");
            return bare(StatusCode::NOT_FOUND);
        }
        Err(e @ StorageError::Transient(_)) => {
            tracing::warn!(file_id = file.id, error = %e, "download: storage unavailable");
            return bare(StatusCode::SERVICE_UNAVAILABLE);
        }
        Err(e) => {
            tracing::error!(file_id = file.id, error = %e, "download: reading the stored object");
            return bare(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    if obj.total_size != size {
        tracing::error!(file_id = file.id, recorded = size, stored = obj.total_size, "download: the stored object has another size than recorded");
        return bare(StatusCode::INTERNAL_SERVER_ERROR);
    }

    let content_type = HeaderValue::from_str(&file.media_type).unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let disposition = HeaderValue::from_str(&content_disposition(&file.file_name)).unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_DISPOSITION, disposition)
        .header(header::ETAG, etag_value)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, obj.len())
        .header(header::CACHE_CONTROL, "private, no-store")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox");
    builder = match &obj.range {
        Some(r) => builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), obj.total_size)),
        None => builder.status(StatusCode::OK),
    };
    builder.body(Body::from_stream(obj.stream)).unwrap_or_else(|_| bare(StatusCode::INTERNAL_SERVER_ERROR))
}

fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// What a `Range` header asks of a representation of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No range, one we ignore (malformed, another unit, several ranges): the whole file, 200.
    Full,
    /// One satisfiable range, inclusive end within the file: 206.
    Partial { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` (RFC 9110 §14.1.2). A malformed header is
/// ignored, as the RFC allows; so are several ranges (we then send the whole file).
pub(crate) fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(h) = header else { return RangeRequest::Full };
    let h = h.trim();
    let Some((unit, spec)) = h.split_once('=') else { return RangeRequest::Full };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return RangeRequest::Full };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if first.is_empty() {
        // Suffix: the last n bytes.
        if !digits(last) {
            return RangeRequest::Full;
        }
        let n: u64 = last.parse().unwrap_or(u64::MAX);
        if n == 0 || size == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Partial { start: size.saturating_sub(n), end: size - 1 };
    }
    if !digits(first) || !(last.is_empty() || digits(last)) {
        return RangeRequest::Full;
    }
    let Ok(start) = first.parse::<u64>() else { return RangeRequest::Unsatisfiable };
    let end = if last.is_empty() { u64::MAX } else { last.parse::<u64>().unwrap_or(u64::MAX) };
    if end < start {
        return RangeRequest::Full;
    }
    if start >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial { start, end: end.min(size - 1) }
}

/// `attachment; filename="<ASCII fallback>"` plus `filename*=UTF-8''<percent-encoded>` (RFC 6266,
/// RFC 8187) when the name is not plain ASCII.
pub(crate) fn content_disposition(name: &str) -> String {
    let name = if name.is_empty() { "download" } else { name };
    let fallback: String = name
        .chars()
        .map(|c| if (c.is_ascii_graphic() || c == ' ') && !matches!(c, '"' | '\\' | '%' | '/') { c } else { '_' })
        .collect();
    if fallback == name {
        return format!("attachment; filename=\"{fallback}\"");
    }
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn download_range_headers_parse() {
        use RangeRequest::*;
        let p = |h: &str| parse_range(Some(h), 100);
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(p("bytes=0-9"), Partial { start: 0, end: 9 });
        assert_eq!(p("bytes=10-"), Partial { start: 10, end: 99 });
        assert_eq!(p("bytes=-10"), Partial { start: 90, end: 99 });
        assert_eq!(p("bytes=-1000"), Partial { start: 0, end: 99 });
        assert_eq!(p("bytes=50-1000"), Partial { start: 50, end: 99 });
        assert_eq!(p("BYTES = 1-2"), Partial { start: 1, end: 2 });
        assert_eq!(p("bytes=99-99"), Partial { start: 99, end: 99 });
        assert_eq!(p("bytes=100-"), Unsatisfiable);
        assert_eq!(p("bytes=100-200"), Unsatisfiable);
        assert_eq!(p("bytes=-0"), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-5"), 0), Unsatisfiable);
        for ignored in ["bytes=0-1,5-6", "items=0-1", "bytes=5-2", "bytes=a-b", "bytes=-", "bytes=1", "bytes=+1-2", "bytes=-+3", ""] {
            assert_eq!(p(ignored), Full, "{ignored:?}");
        }
        assert_eq!(p("bytes=99999999999999999999999-"), Unsatisfiable);
        assert_eq!(p("bytes=-99999999999999999999999"), Partial { start: 0, end: 99 });
    }

    #[test]
    fn download_content_disposition_is_safe() {
        assert_eq!(content_disposition("quiz-12.zip"), "attachment; filename=\"quiz-12.zip\"");
        assert_eq!(
            content_disposition("Prüfung \"A\".zip"),
            "attachment; filename=\"Pr_fung _A_.zip\"; filename*=UTF-8''Pr%C3%BCfung%20%22A%22.zip"
        );
        assert_eq!(content_disposition("a\r\nb.zip"), "attachment; filename=\"a__b.zip\"; filename*=UTF-8''a%0D%0Ab.zip");
        assert_eq!(content_disposition("100%.zip"), "attachment; filename=\"100_.zip\"; filename*=UTF-8''100%25.zip");
        assert!(HeaderValue::from_str(&content_disposition("日本語\u{7f}.tar")).is_ok());
    }

    #[test]
    fn download_query_is_parsed_strictly() {
        assert_eq!(query_params(Some("expires=5&sig=ab")), Some((5, "ab".into())));
        assert_eq!(query_params(Some("sig=ab&x=1&expires=5")), Some((5, "ab".into())));
        assert_eq!(query_params(Some("expires=5")), None);
        assert_eq!(query_params(Some("expires=x&sig=ab")), None);
        assert_eq!(query_params(Some("expires=5&sig=ab&sig=cd")), None);
        assert_eq!(query_params(None), None);
    }

    fn file(sha: &str, size: usize) -> archive_file::Model {
        archive_file::Model {
            id: 1,
            job_id: uuid::Uuid::new_v4(),
            task_id: None,
            storage_backend_id: 1,
            storage_key: "2026/11/j/quiz.zip".into(),
            file_name: "Quiz ä.zip".into(),
            size_bytes: size as i64,
            sha256: sha.into(),
            media_type: "application/zip".into(),
            retention_until: None,
            legal_hold: false,
            deleted_at: None,
            deletion_reason: None,
            created_at: Utc::now(),
            stored_at: Some(Utc::now()),
            deleted_by: None,
            deletion_note: None,
            legal_hold_reason: None,
            legal_hold_since: None,
            legal_hold_by: None,
            deletion_pending_since: None,
            deletion_decision: None,
            deletion_decided_by: None,
            deletion_decided_at: None,
            deletion_decision_reason: None,
            last_verified_at: None,
            last_verification: None,
            last_verification_detail: None,
        }
    }

    async fn body(r: Response) -> Vec<u8> {
        let mut s = r.into_body().into_data_stream();
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn download_responses_carry_headers_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let driver = storage::LocalDirectory::new(dir.path().join("store")).unwrap();
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let src = dir.path().join("src");
        std::fs::write(&src, &data).unwrap();
        let sha = storage::sha256_hex(&data);
        driver.put_file("2026/11/j/quiz.zip", &src, &sha).await.unwrap();
        let f = file(&sha, data.len());

        let r = respond(&driver, &f, &HeaderMap::new()).await;
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers().clone();
        assert_eq!(h[header::CONTENT_LENGTH], "1000");
        assert_eq!(h[header::CONTENT_TYPE], "application/zip");
        assert_eq!(h[header::ETAG], format!("\"{sha}\"").as_str());
        assert_eq!(h[header::ACCEPT_RANGES], "bytes");
        assert!(h[header::CONTENT_DISPOSITION].to_str().unwrap().contains("filename*=UTF-8''Quiz%20%C3%A4.zip"));
        assert_eq!(body(r).await, data);

        let mut req = HeaderMap::new();
        req.insert(header::RANGE, HeaderValue::from_static("bytes=-10"));
        let r = respond(&driver, &f, &req).await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 990-999/1000");
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "10");
        assert_eq!(body(r).await, &data[990..]);

        req.insert(header::RANGE, HeaderValue::from_static("bytes=1000-"));
        let r = respond(&driver, &f, &req).await;
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes */1000");

        // A stale If-Range gets the whole file.
        req.insert(header::RANGE, HeaderValue::from_static("bytes=0-9"));
        req.insert(header::IF_RANGE, HeaderValue::from_static("\"other\""));
        let r = respond(&driver, &f, &req).await;
        assert_eq!(r.status(), StatusCode::OK);

        let mut req = HeaderMap::new();
        req.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&format!("\"{sha}\"")).unwrap());
        assert_eq!(respond(&driver, &f, &req).await.status(), StatusCode::NOT_MODIFIED);

        // Missing object: a bare 404.
        let mut gone = f.clone();
        gone.storage_key = "2026/11/j/missing.zip".into();
        let r = respond(&driver, &gone, &HeaderMap::new()).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(body(r).await.is_empty());
    }
}
