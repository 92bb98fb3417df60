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
    JobTimeoutSeconds,
    AutoDelete,
    DeletionApproval,
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
    pub job_timeout_seconds: u32,
    /// Whether files past their retention are deleted without a person starting it. The
    /// retention date itself is fixed per file when it is stored; how expiry is acted on is the
    /// current policy's, so switching on approval stops automatic deletion of older files too.
    pub auto_delete: bool,
    /// With `auto_delete`: expired files wait in a list of pending deletions until approved.
    pub deletion_approval: bool,
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
            // Two hours.
            job_timeout_seconds: 7200,
            auto_delete: true,
            deletion_approval: false,
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
            PolicyField::JobTimeoutSeconds => self.job_timeout_seconds = serde_json::from_value(value).map_err(bad)?,
            PolicyField::AutoDelete => self.auto_delete = serde_json::from_value(value).map_err(bad)?,
            PolicyField::DeletionApproval => self.deletion_approval = serde_json::from_value(value).map_err(bad)?,
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

/// The settings a job runs with: the policy's values, overridden where the job asked and the
/// policy allows. Stored on the job, so later policy changes do not alter it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSettings {
    pub format: ArchiveFormat,
    pub filename_pattern: String,
    pub retention_days: Option<u32>,
    /// Names of the storage backends each package goes to.
    pub storage_backends: Vec<String>,
    pub timestamping: bool,
    pub job_timeout_seconds: u32,
}

/// What a job asks to differ from the policy. `retention_days: Some(None)` asks to keep forever.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsOverrides {
    pub format: Option<ArchiveFormat>,
    pub filename_pattern: Option<String>,
    pub retention_days: Option<Option<u32>>,
    pub storage_backends: Option<Vec<String>>,
    pub timestamping: Option<bool>,
    pub job_timeout_seconds: Option<u32>,
}

impl PolicyValues {
    /// The job's settings, or the fields whose override a lock forbids. Overriding a locked field
    /// with its own value is allowed: it changes nothing.
    pub fn resolve(&self, o: &SettingsOverrides) -> Result<JobSettings, Vec<PolicyField>> {
        let mut locked = Vec::new();
        fn pick<T: Clone + PartialEq>(p: &PolicyValues, f: PolicyField, base: &T, o: &Option<T>, locked: &mut Vec<PolicyField>) -> T {
            match o {
                Some(v) if v != base && p.is_locked(f) => {
                    locked.push(f);
                    base.clone()
                }
                Some(v) => v.clone(),
                None => base.clone(),
            }
        }
        let s = JobSettings {
            format: pick(self, PolicyField::Format, &self.format, &o.format, &mut locked),
            filename_pattern: pick(self, PolicyField::FilenamePattern, &self.filename_pattern, &o.filename_pattern, &mut locked),
            retention_days: pick(self, PolicyField::RetentionDays, &self.retention_days, &o.retention_days, &mut locked),
            storage_backends: pick(self, PolicyField::StorageBackends, &self.storage_backends, &o.storage_backends, &mut locked),
            timestamping: pick(self, PolicyField::Timestamping, &self.timestamping, &o.timestamping, &mut locked),
            job_timeout_seconds: pick(self, PolicyField::JobTimeoutSeconds, &self.job_timeout_seconds, &o.job_timeout_seconds, &mut locked),
        };
        if locked.is_empty() {
            Ok(s)
        } else {
            Err(locked)
        }
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
    fn locked_fields_cannot_be_overridden() {
        let mut p = PolicyValues::default();
        p.apply(PolicyField::Format, json!("TAR_GZ"), true).unwrap();
        let o = SettingsOverrides { format: Some(ArchiveFormat::Zip), timestamping: Some(false), ..Default::default() };
        assert_eq!(p.resolve(&o), Err(vec![PolicyField::Format]));
        let same = SettingsOverrides { format: Some(ArchiveFormat::TarGz), timestamping: Some(false), ..Default::default() };
        let s = p.resolve(&same).unwrap();
        assert_eq!((s.format, s.timestamping), (ArchiveFormat::TarGz, false));
        let keep = SettingsOverrides { retention_days: Some(None), ..Default::default() };
        assert_eq!(p.resolve(&keep).unwrap().retention_days, None);
    }

    #[test]
    fn a_malformed_setting_names_its_field() {
        let err = PolicyValues::default().apply(PolicyField::Timestamping, json!("yes"), false).unwrap_err();
        assert!(err.contains("TIMESTAMPING"), "{err}");
    }
}
