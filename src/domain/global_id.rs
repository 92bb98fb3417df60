//! The opaque global ids clients see (base64url of `Type:key`), made here so that the audit log,
//! written below the API, names objects exactly as the API does (`graphql::ids` uses this).
use base64::Engine;

pub fn encode(type_name: &str, key: impl std::fmt::Display) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{type_name}:{key}"))
}
