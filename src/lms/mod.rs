//! Where courses and activity data come from. The demo source is the default; a Moodle Web
//! Services client implements the same trait.
pub mod demo;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::Serialize;

use crate::domain::ActivityKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmsCategory {
    pub lms_id: String,
    /// Listed before its children.
    pub parent_lms_id: Option<String>,
    pub name: String,
    pub sort_order: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmsCourse {
    pub lms_id: String,
    pub category_lms_id: String,
    pub short_name: String,
    pub full_name: String,
    pub visible: bool,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmsActivity {
    pub lms_id: String,
    pub course_lms_id: String,
    pub kind: ActivityKind,
    pub name: String,
    pub opens_at: Option<DateTime<Utc>>,
    pub closes_at: Option<DateTime<Utc>>,
    pub modified_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LmsPerson {
    pub lms_id: String,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub id_number: Option<String>,
}

/// Identity and version of one attempt/submission: enough to fingerprint an activity without
/// loading the records themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordVersion {
    pub id: String,
    pub modified_at: DateTime<Utc>,
}

/// A file attached to a record (a submitted file, a feedback file). Its bytes are read through
/// `LmsSource::open_file`, so that large files stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LmsFile {
    pub id: String,
    pub name: String,
    pub media_type: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerStep {
    pub sequence: u32,
    pub state: String,
    pub answer: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuestionAttempt {
    pub slot: u32,
    pub name: String,
    /// HTML as the LMS renders it.
    pub text: String,
    pub answer: Option<String>,
    pub right_answer: String,
    pub feedback: Option<String>,
    pub mark: Option<f64>,
    pub max_mark: f64,
    pub history: Vec<AnswerStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuizAttempt {
    pub id: String,
    pub person_lms_id: String,
    pub attempt_number: u32,
    /// `finished`, `inprogress` or `abandoned`, as Moodle names them.
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub modified_at: DateTime<Utc>,
    pub grade: Option<f64>,
    pub max_grade: f64,
    pub questions: Vec<QuestionAttempt>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssignSubmission {
    pub id: String,
    pub person_lms_id: String,
    /// `new`, `draft` or `submitted`.
    pub status: String,
    pub submitted_at: Option<DateTime<Utc>>,
    pub modified_at: DateTime<Utc>,
    pub online_text: Option<String>,
    pub files: Vec<LmsFile>,
    pub grade: Option<f64>,
    pub max_grade: f64,
    pub graded_at: Option<DateTime<Utc>>,
    pub feedback_comment: Option<String>,
    pub feedback_files: Vec<LmsFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LmsRecord {
    QuizAttempt(QuizAttempt),
    AssignSubmission(AssignSubmission),
}

pub type FileReader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

#[async_trait]
pub trait LmsSource: Send + Sync {
    /// A short name for logs, e.g. `demo`.
    fn name(&self) -> &str;
    /// Parents come before their children.
    async fn categories(&self) -> anyhow::Result<Vec<LmsCategory>>;
    async fn courses(&self) -> anyhow::Result<Vec<LmsCourse>>;
    async fn activities(&self) -> anyhow::Result<Vec<LmsActivity>>;
    async fn persons(&self) -> anyhow::Result<Vec<LmsPerson>>;
    /// Identity and version of every attempt/submission of an activity, in a stable order.
    async fn record_versions(&self, activity_lms_id: &str) -> anyhow::Result<Vec<RecordVersion>>;
    /// The attempts/submissions of an activity, streamed in a stable order.
    fn records<'a>(&'a self, activity_lms_id: &'a str) -> BoxStream<'a, anyhow::Result<LmsRecord>>;
    /// The records `offset .. offset + limit` of [`LmsSource::records`], in the same order: what
    /// one chunk of a large activity reads. Sources that can page should override this; the
    /// default reads and drops the records before `offset`.
    fn records_from<'a>(&'a self, activity_lms_id: &'a str, offset: u64, limit: u64) -> BoxStream<'a, anyhow::Result<LmsRecord>> {
        use futures::StreamExt;
        self.records(activity_lms_id).skip(offset as usize).take(limit as usize).boxed()
    }
    /// The bytes of a file, unchanged.
    async fn open_file(&self, file: &LmsFile) -> anyhow::Result<FileReader>;
}
