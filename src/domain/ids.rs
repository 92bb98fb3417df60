//! The one encoding of global object ids (base64url of `Type:key`): the API's opaque `ID`s
//! (`graphql::ids`) and the object ids in audit entries are the same strings.
use base64::Engine;

pub fn global_id(type_name: &str, key: impl std::fmt::Display) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{type_name}:{key}"))
}
