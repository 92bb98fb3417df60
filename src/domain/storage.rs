//! Storage backend kinds and tiers.
use strum::{AsRefStr, Display, EnumString};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, AsRefStr)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum StorageDriverKind {
    LocalDirectory,
    S3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, AsRefStr)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum StorageTier {
    Local,
    RemoteFast,
    RemoteSlow,
}

/// What a secret setting's value is replaced with wherever settings leave the server's memory
/// (audit entries, logs, error messages). API answers never carry settings at all.
pub const REDACTED: &str = "***";

/// The setting keys of a driver whose values are secrets: write-only, never shown, logged or
/// audited. The one list; everything that lets settings out goes through [`redact_settings`] or
/// [`redact_message`].
pub fn secret_settings(kind: StorageDriverKind) -> &'static [&'static str] {
    match kind {
        StorageDriverKind::LocalDirectory => &[],
        // The key id too: with the secret it is a credential, and the driver scrubs it as well.
        StorageDriverKind::S3 => &["access_key_id", "secret_access_key", "session_token"],
    }
}

pub fn is_secret_setting(kind: StorageDriverKind, key: &str) -> bool {
    secret_settings(kind).contains(&key)
}

/// Settings fit to be shown: each secret that has a value is replaced with [`REDACTED`]. A value
/// that is not an object is replaced whole (it cannot be told apart).
pub fn redact_settings(kind: StorageDriverKind, settings: &serde_json::Value) -> serde_json::Value {
    match settings.as_object() {
        Some(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let shown = if is_secret_setting(kind, k) && !v.is_null() { serde_json::Value::from(REDACTED) } else { v.clone() };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        None if settings.is_null() => serde_json::Value::Null,
        None => serde_json::Value::from(REDACTED),
    }
}

/// A message with every secret value of `settings` in it replaced by [`REDACTED`] (defence in
/// depth: drivers keep secrets out of their messages already).
pub fn redact_message(kind: StorageDriverKind, settings: &serde_json::Value, message: &str) -> String {
    let mut message = message.to_string();
    for key in secret_settings(kind) {
        if let Some(s) = settings.get(*key).and_then(|v| v.as_str()).filter(|s| !s.is_empty()) {
            message = message.replace(s, REDACTED);
        }
    }
    message
}

/// The settings after an update: `new` as given, except that a secret key absent from `new`
/// keeps its stored value (secrets are write-only, so a client that edits other settings cannot
/// send them back). A secret given as `null` is removed.
pub fn merge_settings(kind: StorageDriverKind, old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else { return new.clone() };
    let mut merged = new.clone();
    for key in secret_settings(kind) {
        match (new.get(*key), old.get(*key)) {
            (None, Some(kept)) => {
                merged.insert((*key).to_string(), kept.clone());
            }
            (Some(serde_json::Value::Null), _) => {
                merged.remove(*key);
            }
            _ => {}
        }
    }
    serde_json::Value::Object(merged)
}

/// The audit record of a settings change: `{"before": …, "after": …}` with secrets redacted,
/// and a secret whose value changed shown as `"(changed)"` in `after`.
pub fn settings_change(kind: StorageDriverKind, before: &serde_json::Value, after: &serde_json::Value) -> serde_json::Value {
    let mut shown_after = redact_settings(kind, after);
    if let Some(map) = shown_after.as_object_mut() {
        for key in secret_settings(kind) {
            let (b, a) = (before.get(*key), after.get(*key));
            if a.is_some_and(|v| !v.is_null()) && b != a {
                map.insert((*key).to_string(), serde_json::Value::from("(changed)"));
            }
        }
    }
    serde_json::json!({ "before": redact_settings(kind, before), "after": shown_after })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const S: &str = "sEcReT-0123456789";

    #[test]
    fn secrets_are_redacted_per_driver() {
        let s3 = json!({"bucket": "b", "access_key_id": "AKIA0123", "secret_access_key": S, "session_token": null});
        let shown = redact_settings(StorageDriverKind::S3, &s3);
        assert_eq!(shown, json!({"bucket": "b", "access_key_id": REDACTED, "secret_access_key": REDACTED, "session_token": null}));
        // The local directory has no secrets: its path is shown.
        let local = json!({"path": "/srv/archives"});
        assert_eq!(redact_settings(StorageDriverKind::LocalDirectory, &local), local);
        assert_eq!(redact_settings(StorageDriverKind::S3, &json!(S)), json!(REDACTED));
        assert_eq!(redact_message(StorageDriverKind::S3, &s3, &format!("auth failed with {S} and AKIA0123")), "auth failed with *** and ***");
    }

    #[test]
    fn an_omitted_secret_keeps_its_value_and_null_removes_it() {
        let old = json!({"bucket": "a", "prefix": "p", "access_key_id": "K", "secret_access_key": S});
        let merged = merge_settings(StorageDriverKind::S3, &old, &json!({"bucket": "b"}));
        assert_eq!(merged, json!({"bucket": "b", "access_key_id": "K", "secret_access_key": S}), "prefix dropped, secrets kept");
        let merged = merge_settings(StorageDriverKind::S3, &old, &json!({"bucket": "b", "secret_access_key": "new"}));
        assert_eq!(merged["secret_access_key"], "new");
        let merged = merge_settings(StorageDriverKind::S3, &old, &json!({"bucket": "b", "access_key_id": null, "secret_access_key": null}));
        assert_eq!(merged, json!({"bucket": "b"}));
        // Non-secret keys are not kept: the new settings are the whole settings.
        let merged = merge_settings(StorageDriverKind::LocalDirectory, &json!({"path": "/a"}), &json!({}));
        assert_eq!(merged, json!({}));
    }

    #[test]
    fn a_settings_change_shows_which_secret_changed_not_its_value() {
        let before = json!({"bucket": "a", "access_key_id": "K", "secret_access_key": S});
        let after = json!({"bucket": "b", "access_key_id": "K", "secret_access_key": "other-secret-value"});
        let c = settings_change(StorageDriverKind::S3, &before, &after);
        assert_eq!(c["before"], json!({"bucket": "a", "access_key_id": REDACTED, "secret_access_key": REDACTED}));
        assert_eq!(c["after"], json!({"bucket": "b", "access_key_id": REDACTED, "secret_access_key": "(changed)"}));
        assert!(!c.to_string().contains(S) && !c.to_string().contains("other-secret-value"));
    }
}
