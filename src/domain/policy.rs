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
    MaxConcurrentJobs,
    JobLogLevel,
    ReportOptions,
}

/// What the reports of a package contain besides the JSON report, which is always there.
/// Everything is on by default: leaving something out is the institution's decision (some do
/// not keep the right answers of a question pool, for instance), and it is recorded in every
/// package (`bag-info.txt`, `metadata.json`), so that a reader knows an absent section was left
/// out on purpose, not lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReportOptions {
    /// A static HTML page beside each JSON report.
    pub html: bool,
    /// Quiz: the right answer of each question.
    pub right_answers: bool,
    /// Quiz: the feedback of each question; assignment: the graders' feedback comment and files.
    pub feedback: bool,
    /// Quiz: the steps of each answer (what was entered when).
    pub answer_history: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self { html: true, right_answers: true, feedback: true, answer_history: true }
    }
}

impl ReportOptions {
    /// The options as `bag-info.txt` and the README name them: the sections included, comma
    /// separated (`json` is always first).
    pub fn describe(&self) -> String {
        let mut parts = vec!["json"];
        for (on, name) in [(self.html, "html"), (self.right_answers, "rightAnswers"), (self.feedback, "feedback"), (self.answer_history, "answerHistory")] {
            if on {
                parts.push(name);
            }
        }
        parts.join(", ")
    }
}

/// A change of some report options; `None` leaves an option as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportOptionsPatch {
    pub html: Option<bool>,
    pub right_answers: Option<bool>,
    pub feedback: Option<bool>,
    pub answer_history: Option<bool>,
}

impl ReportOptionsPatch {
    pub fn apply(&self, base: ReportOptions) -> ReportOptions {
        ReportOptions {
            html: self.html.unwrap_or(base.html),
            right_answers: self.right_answers.unwrap_or(base.right_answers),
            feedback: self.feedback.unwrap_or(base.feedback),
            answer_history: self.answer_history.unwrap_or(base.answer_history),
        }
    }
}

impl PolicyField {
    /// The field's name in the API (`UpdatePolicyInput`, `createArchiveJob`'s input) and in
    /// the audit log.
    pub fn api_name(self) -> &'static str {
        match self {
            Self::Format => "format",
            Self::FilenamePattern => "filenamePattern",
            Self::RetentionDays => "retentionDays",
            Self::StorageBackends => "storageBackendIds",
            Self::Timestamping => "timestamping",
            Self::JobTimeoutSeconds => "jobTimeoutSeconds",
            Self::AutoDelete => "autoDelete",
            Self::DeletionApproval => "deletionApproval",
            Self::MaxConcurrentJobs => "maxConcurrentJobs",
            Self::JobLogLevel => "jobLogLevel",
            Self::ReportOptions => "reportOptions",
        }
    }

    /// Whether a job can ask for another value than the policy's, which a lock then forbids.
    /// Locking any other field would change nothing.
    pub fn lockable(self) -> bool {
        matches!(self, Self::Format | Self::FilenamePattern | Self::RetentionDays | Self::StorageBackends | Self::Timestamping | Self::JobTimeoutSeconds | Self::ReportOptions)
    }
}

/// The longest retention: a hundred years (beyond any legal retention period, and far from the
/// date arithmetic's limits).
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// The longest job deadline: 31 days.
pub const MAX_JOB_TIMEOUT_SECONDS: u32 = 31 * 24 * 3600;
/// The most archive jobs active at once that a policy may allow.
pub const MAX_CONCURRENT_JOBS: u32 = 1000;

/// The effective values of the global policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyValues {
    pub format: ArchiveFormat,
    pub filename_pattern: String,
    /// `None`: keep forever.
    pub retention_days: Option<u32>,
    /// Ids of the storage backends each package goes to (one copy on each; ids, so that renaming
    /// a backend does not change the policy); empty: the default backend.
    pub storage_backends: Vec<i64>,
    pub timestamping: bool,
    pub job_timeout_seconds: u32,
    /// Archive jobs active at once across all processes; `None`: the server setting
    /// (`max_concurrent_jobs`).
    pub max_concurrent_jobs: Option<u32>,
    /// Job log entries below this level are not stored; `None`: the server setting
    /// (`job_log_level`). Fixed per job when it is created, like every job setting.
    pub job_log_level: Option<super::LogLevel>,
    /// Whether files past their retention are deleted without a person starting it. The
    /// retention date itself is fixed per file when it is stored; how expiry is acted on is the
    /// current policy's, so switching on approval stops automatic deletion of older files too.
    pub auto_delete: bool,
    /// With `auto_delete`: expired files wait in a list of pending deletions until approved.
    pub deletion_approval: bool,
    pub report_options: ReportOptions,
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
            max_concurrent_jobs: None,
            job_log_level: None,
            report_options: ReportOptions::default(),
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
            PolicyField::MaxConcurrentJobs => self.max_concurrent_jobs = serde_json::from_value(value).map_err(bad)?,
            PolicyField::JobLogLevel => self.job_log_level = serde_json::from_value(value).map_err(bad)?,
            PolicyField::ReportOptions => self.report_options = serde_json::from_value(value).map_err(bad)?,
        }
        self.locked.retain(|f| *f != field);
        if locked {
            self.locked.push(field);
        }
        Ok(())
    }

    /// A field's value as it is stored (and shown in the audit log).
    pub fn value(&self, field: PolicyField) -> serde_json::Value {
        use serde_json::json;
        match field {
            PolicyField::Format => json!(self.format),
            PolicyField::FilenamePattern => json!(self.filename_pattern),
            PolicyField::RetentionDays => json!(self.retention_days),
            PolicyField::StorageBackends => json!(self.storage_backends),
            PolicyField::Timestamping => json!(self.timestamping),
            PolicyField::JobTimeoutSeconds => json!(self.job_timeout_seconds),
            PolicyField::AutoDelete => json!(self.auto_delete),
            PolicyField::DeletionApproval => json!(self.deletion_approval),
            PolicyField::MaxConcurrentJobs => json!(self.max_concurrent_jobs),
            PolicyField::JobLogLevel => json!(self.job_log_level),
            PolicyField::ReportOptions => json!(self.report_options),
        }
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
    /// Ids of the backends in `storage_backends` (empty for jobs created before they were kept).
    #[serde(default)]
    pub storage_backend_ids: Vec<i64>,
    /// The lowest level of the job's log entries that is stored; `None` (jobs created before the
    /// policy had one): the server setting.
    #[serde(default)]
    pub log_level: Option<super::LogLevel>,
    /// What the reports contain (jobs created before the options existed: everything, which is
    /// what they produced).
    #[serde(default)]
    pub report_options: ReportOptions,
}

/// What a job asks to differ from the policy. `retention_days: Some(None)` asks to keep forever.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsOverrides {
    pub format: Option<ArchiveFormat>,
    pub filename_pattern: Option<String>,
    pub retention_days: Option<Option<u32>>,
    /// Backend ids.
    pub storage_backends: Option<Vec<i64>>,
    pub timestamping: Option<bool>,
    pub job_timeout_seconds: Option<u32>,
    /// Applied to the policy's report options.
    pub report_options: Option<ReportOptionsPatch>,
}

impl PolicyValues {
    /// The job's settings, or the fields whose override a lock forbids. Overriding a locked field
    /// with its own value is allowed: it changes nothing. The backends are resolved as ids
    /// (`storage_backend_ids`); their names (`storage_backends`) are the caller's to fill in, and
    /// `log_level` is the policy's (`None`: the caller fills in the server setting).
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
            storage_backends: Vec::new(),
            storage_backend_ids: pick(self, PolicyField::StorageBackends, &self.storage_backends, &o.storage_backends, &mut locked),
            timestamping: pick(self, PolicyField::Timestamping, &self.timestamping, &o.timestamping, &mut locked),
            job_timeout_seconds: pick(self, PolicyField::JobTimeoutSeconds, &self.job_timeout_seconds, &o.job_timeout_seconds, &mut locked),
            log_level: self.job_log_level,
            report_options: pick(
                self,
                PolicyField::ReportOptions,
                &self.report_options,
                &o.report_options.map(|patch| patch.apply(self.report_options)),
                &mut locked,
            ),
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
    fn report_options_are_patched_onto_the_policy_and_locked_as_a_whole() {
        let mut p = PolicyValues::default();
        p.apply(PolicyField::ReportOptions, json!({"html": false, "rightAnswers": true, "feedback": true, "answerHistory": false}), false).unwrap();
        let o = SettingsOverrides { report_options: Some(ReportOptionsPatch { right_answers: Some(false), ..Default::default() }), ..Default::default() };
        let s = p.resolve(&o).unwrap();
        assert_eq!(s.report_options, ReportOptions { html: false, right_answers: false, feedback: true, answer_history: false });
        assert_eq!(s.report_options.describe(), "json, feedback");
        p.locked.push(PolicyField::ReportOptions);
        assert_eq!(p.resolve(&o), Err(vec![PolicyField::ReportOptions]));
        // Asking for what the locked policy says anyway changes nothing, so it is allowed.
        let same = SettingsOverrides { report_options: Some(ReportOptionsPatch { html: Some(false), ..Default::default() }), ..Default::default() };
        assert_eq!(p.resolve(&same).unwrap().report_options, p.report_options);
    }

    #[test]
    fn jobs_stored_before_report_options_existed_had_full_reports() {
        let s: JobSettings = serde_json::from_value(json!({
            "format": "ZIP", "filenamePattern": "x", "retentionDays": null, "storageBackends": [], "timestamping": false, "jobTimeoutSeconds": 60
        }))
        .unwrap();
        assert_eq!(s.report_options, ReportOptions::default());
    }

    #[test]
    fn every_field_is_stored_as_it_is_read() {
        let mut p = PolicyValues::default();
        p.max_concurrent_jobs = Some(3);
        p.job_log_level = Some(crate::domain::LogLevel::Warn);
        p.storage_backends = vec![4, 2];
        p.retention_days = None;
        p.report_options.feedback = false;
        let mut q = PolicyValues::default();
        for f in PolicyValues::fields() {
            q.apply(f, p.value(f), f == PolicyField::Format).unwrap();
        }
        assert_eq!(q, PolicyValues { locked: vec![PolicyField::Format], ..p });
        q.apply(PolicyField::Format, json!("ZIP"), false).unwrap();
        assert!(!q.is_locked(PolicyField::Format), "a stored unlocked row unlocks");
    }

    #[test]
    fn a_malformed_setting_names_its_field() {
        let err = PolicyValues::default().apply(PolicyField::Timestamping, json!("yes"), false).unwrap_err();
        assert!(err.contains("TIMESTAMPING"), "{err}");
    }
}
