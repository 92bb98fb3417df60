//! Global archiving defaults. Each field can be locked, so that a job cannot override it.
use serde::{Deserialize, Serialize};
use strum::{AsRefStr, Display, EnumIter, EnumString, IntoEnumIterator};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, AsRefStr, Serialize, Deserialize)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ArchiveFormat {
    Zip,
    TarGz,
    TarZst,
}

/// The settings a policy holds; the key each is stored under is its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, AsRefStr, EnumIter)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum PolicyField {
    Format,
    FilenamePattern,
    RetentionDays,
    StorageBackends,
    Timestamping,
    JobTimeoutMinutes,
}

/// The effective values of the global policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyValues {
    pub format: ArchiveFormat,
    pub filename_pattern: String,
    /// `None`: keep forever.
    pub retention_days: Option<u32>,
    /// Names of the storage backends each package goes to; empty: the default backend.
    pub storage_backends: Vec<String>,
    pub timestamping: bool,
    pub job_timeout_minutes: u32,
    pub locked: Vec<PolicyField>,
}

impl Default for PolicyValues {
    fn default() -> Self {
        Self {
            format: ArchiveFormat::Zip,
            filename_pattern: "${courseShortName}_${activityKind}_${activityId}_${date}_${time}".into(),
            // Ten years: a common retention period for exam records.
            retention_days: Some(3650),
            storage_backends: Vec::new(),
            timestamping: true,
            job_timeout_minutes: 120,
            locked: Vec::new(),
        }
    }
}

impl PolicyValues {
    /// Applies one stored setting. A value of the wrong shape is an error naming the field, so a
    /// corrupted row is reported instead of silently replaced by a default.
    pub fn apply(&mut self, field: PolicyField, value: serde_json::Value, locked: bool) -> Result<(), String> {
        let bad = |e: serde_json::Error| format!("policy setting {field}: {e}");
        match field {
            PolicyField::Format => self.format = serde_json::from_value(value).map_err(bad)?,
            PolicyField::FilenamePattern => self.filename_pattern = serde_json::from_value(value).map_err(bad)?,
            PolicyField::RetentionDays => self.retention_days = serde_json::from_value(value).map_err(bad)?,
            PolicyField::StorageBackends => self.storage_backends = serde_json::from_value(value).map_err(bad)?,
            PolicyField::Timestamping => self.timestamping = serde_json::from_value(value).map_err(bad)?,
            PolicyField::JobTimeoutMinutes => self.job_timeout_minutes = serde_json::from_value(value).map_err(bad)?,
        }
        if locked && !self.locked.contains(&field) {
            self.locked.push(field);
        }
        Ok(())
    }

    pub fn is_locked(&self, field: PolicyField) -> bool {
        self.locked.contains(&field)
    }

    pub fn fields() -> impl Iterator<Item = PolicyField> {
        PolicyField::iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_settings_override_defaults() {
        let mut p = PolicyValues::default();
        p.apply(PolicyField::Format, json!("TAR_ZST"), true).unwrap();
        p.apply(PolicyField::RetentionDays, json!(null), false).unwrap();
        assert_eq!(p.format, ArchiveFormat::TarZst);
        assert_eq!(p.retention_days, None);
        assert!(p.is_locked(PolicyField::Format));
        assert!(!p.is_locked(PolicyField::RetentionDays));
    }

    #[test]
    fn a_malformed_setting_names_its_field() {
        let err = PolicyValues::default().apply(PolicyField::Timestamping, json!("yes"), false).unwrap_err();
        assert!(err.contains("TIMESTAMPING"), "{err}");
    }
}
