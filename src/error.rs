//! The one error type of the service layer, and the one place it becomes a client error code.
//!
//! `AppError` deliberately does not implement `Display`: async-graphql converts any `Display` error
//! into a GraphQL error by its text, which would bypass the code mapping below and show internal
//! details to clients. Without it, `?` in a resolver can only go through `From<AppError>` here.

#[derive(Debug)]
pub enum AppError {
    /// No token, or one that failed verification. The reason is safe to show (it holds no token data).
    Unauthenticated(String),
    Forbidden,
    /// Also answered for things out of the caller's scope, so that their existence is not revealed.
    NotFound,
    BadInput(String),
    /// Anything else: logged with an id; the client sees only the id.
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        AppError::Internal(e)
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        AppError::Internal(e.into())
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// Something in a mutation's input the caller can fix; returned in the payload's `userErrors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserError {
    /// Path to the input field, e.g. `["activityIds", "2"]`.
    pub field: Vec<String>,
    pub code: UserErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum UserErrorCode {
    /// A value is malformed or out of range.
    Invalid,
    /// A list that must not be empty is.
    Empty,
    TooMany,
    /// A referenced object does not exist.
    NotFound,
    MixedCourses,
    ArchivingDisabled,
    NotArchivable,
    InvalidFilenamePattern,
    PolicyLocked,
    /// The object is in a state that does not allow this.
    InvalidState,
    LegalHold,
    FilesExist,
    StorageUnavailable,
    /// Timestamping needs a Time-Stamp Authority, and none is configured.
    TsaNotConfigured,
    /// The Time-Stamp Authority gave no token that passed verification (the message says why).
    TimestampFailed,
}

/// Every `extensions.code` a client can see, over HTTP and WebSocket alike: the one list, documented
/// for clients in docs/errors.md (a test checks that each is there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    // From the service layer (`AppError`), on fields.
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    Internal,
    // About the document, before anything runs.
    GraphqlParseFailed,
    GraphqlValidationFailed,
    /// Over the depth or complexity limit.
    QueryTooComplex,
    // Refusals of requests that never reach GraphQL, each with its HTTP status.
    BadRequest,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    ServiceUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The HTTP status of a refusal with this code. `None` for the codes of GraphQL responses,
    /// which are answered `200` with `errors` (and `data` where anything ran).
    pub fn http_status(self) -> Option<axum::http::StatusCode> {
        use axum::http::StatusCode as S;
        match self {
            ErrorCode::BadRequest => Some(S::BAD_REQUEST),
            ErrorCode::MethodNotAllowed => Some(S::METHOD_NOT_ALLOWED),
            ErrorCode::RequestTimeout => Some(S::REQUEST_TIMEOUT),
            ErrorCode::PayloadTooLarge => Some(S::PAYLOAD_TOO_LARGE),
            ErrorCode::ServiceUnavailable => Some(S::SERVICE_UNAVAILABLE),
            _ => None,
        }
    }

    /// Sets this code on a GraphQL error.
    pub fn set_on(self, e: &mut async_graphql::ServerError) {
        e.extensions.get_or_insert_with(Default::default).set("code", self.as_str());
    }
}

impl AppError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            AppError::Forbidden => ErrorCode::Forbidden,
            AppError::NotFound => ErrorCode::NotFound,
            AppError::BadInput(_) => ErrorCode::BadUserInput,
            AppError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn bad_input(msg: impl Into<String>) -> Self {
        AppError::BadInput(msg.into())
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        AppError::Internal(anyhow::anyhow!(msg.into()))
    }

    /// The message a client may see.
    pub fn client_message(&self) -> String {
        match self {
            AppError::Unauthenticated(reason) => reason.clone(),
            AppError::Forbidden => "not allowed".into(),
            AppError::NotFound => "not found".into(),
            AppError::BadInput(msg) => msg.clone(),
            AppError::Internal(e) => {
                let id = uuid::Uuid::new_v4();
                tracing::error!(error_id = %id, error = ?e, "internal error");
                format!("internal error (id {id})")
            }
        }
    }
}

use async_graphql::ErrorExtensions;

impl From<AppError> for async_graphql::Error {
    fn from(e: AppError) -> Self {
        let code = e.code().as_str();
        async_graphql::Error::new(e.client_message()).extend_with(|_, ext| ext.set("code", code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_reach_the_client() {
        let e: async_graphql::Error = AppError::Internal(anyhow::anyhow!("password=hunter2 at db.internal")).into();
        assert!(!e.message.contains("hunter2"));
        assert!(e.message.starts_with("internal error (id "));
        let code = e.extensions.as_ref().and_then(|x| x.get("code")).cloned();
        assert_eq!(code, Some(async_graphql::Value::from("INTERNAL")));
    }

    #[test]
    fn each_kind_has_its_code() {
        let code = |e: AppError| {
            let g: async_graphql::Error = e.into();
            g.extensions.and_then(|x| x.get("code").cloned())
        };
        assert_eq!(code(AppError::NotFound), Some("NOT_FOUND".into()));
        assert_eq!(code(AppError::Forbidden), Some("FORBIDDEN".into()));
        assert_eq!(code(AppError::bad_input("x")), Some("BAD_USER_INPUT".into()));
        assert_eq!(code(AppError::Unauthenticated("x".into())), Some("UNAUTHENTICATED".into()));
    }

    #[test]
    fn codes_are_spelled_as_clients_see_them() {
        assert_eq!(ErrorCode::GraphqlParseFailed.as_str(), "GRAPHQL_PARSE_FAILED");
        assert_eq!(ErrorCode::QueryTooComplex.as_str(), "QUERY_TOO_COMPLEX");
        assert_eq!(ErrorCode::PayloadTooLarge.http_status().map(|s| s.as_u16()), Some(413));
    }

    /// docs/errors.md is what clients read: every code must be explained there.
    #[test]
    fn every_code_is_documented() {
        use strum::IntoEnumIterator;
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/errors.md")).expect("docs/errors.md");
        for code in ErrorCode::iter() {
            assert!(doc.contains(&format!("`{code}`")), "docs/errors.md does not explain `{code}`");
        }
    }
}
