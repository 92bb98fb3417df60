//! Opaque global ids: base64url of `Type:key`. Clients must not parse them.
use async_graphql::ID;
use base64::Engine;
use strum::{AsRefStr, EnumString};

use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, AsRefStr, EnumString)]
pub enum NodeType {
    Course,
    CourseCategory,
    Activity,
    StorageBackend,
    ArchiveJob,
    ArchiveTask,
    ArchiveFile,
}

pub fn encode(t: NodeType, key: impl std::fmt::Display) -> ID {
    ID(crate::domain::global_id::encode(t.as_ref(), key))
}

/// Splits a global id into its type and key. A malformed id is bad input.
pub fn decode_any(id: &ID) -> AppResult<(NodeType, String)> {
    let bad = || AppError::bad_input(format!("invalid ID {:?}", id.as_str()));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id.as_str()).map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    let (t, key) = s.split_once(':').ok_or_else(bad)?;
    Ok((t.parse().map_err(|_| bad())?, key.to_string()))
}

/// Decodes an id that must be of type `t` with an integer key.
pub fn decode(id: &ID, t: NodeType) -> AppResult<i64> {
    match decode_any(id)? {
        (found, key) if found == t => key.parse().map_err(|_| AppError::bad_input(format!("invalid ID {:?}", id.as_str()))),
        _ => Err(AppError::bad_input(format!("ID {:?} is not a {} id", id.as_str(), t.as_ref()))),
    }
}

/// Decodes an id that must be of type `t` with a UUID key.
pub fn decode_uuid(id: &ID, t: NodeType) -> AppResult<uuid::Uuid> {
    match decode_any(id)? {
        (found, key) if found == t => key.parse().map_err(|_| AppError::bad_input(format!("invalid ID {:?}", id.as_str()))),
        _ => Err(AppError::bad_input(format!("ID {:?} is not a {} id", id.as_str(), t.as_ref()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_check_their_type() {
        let id = encode(NodeType::Course, 42);
        assert_eq!(decode(&id, NodeType::Course).unwrap(), 42);
        assert!(matches!(decode(&id, NodeType::Activity), Err(AppError::BadInput(_))));
        assert!(matches!(decode(&ID("%%%".into()), NodeType::Course), Err(AppError::BadInput(_))));
        assert!(matches!(decode_any(&ID(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("Nope:1"))), Err(AppError::BadInput(_))));
    }
}
