//! The assignment driver: one report per submission with status, times, online text, the submitted
//! files (stored unchanged beside the report), grade, feedback comment and feedback files.
use maud::html;
use serde::Serialize;

use super::report::{self, fmt_grade, fmt_time, lms_html, opt_time, ts, FileJson, RecordCtx};
use super::Rendered;
use crate::{engine::package::MetadataRow, lms::AssignSubmission};

pub const SCHEMA: &str = "archiving-manager.assign-submission";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    submission: SubmissionJson<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubmissionJson<'a> {
    id: &'a str,
    status: &'a str,
    submitted_at: Option<String>,
    modified_at: String,
    online_text: Option<&'a str>,
    files: &'a [FileJson],
    grade: Option<f64>,
    max_grade: f64,
    graded_at: Option<String>,
    /// Absent (not null) when the report options leave feedback out.
    #[serde(skip_serializing_if = "Option::is_none")]
    feedback: Option<FeedbackJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FeedbackJson<'a> {
    comment: Option<&'a str>,
    files: &'a [FileJson],
}

/// `submitted` and `feedback` are the record's files with their paths in the package (`feedback`
/// is empty when the report options leave feedback out).
pub(super) fn render(ctx: &RecordCtx, s: &AssignSubmission, submitted: Vec<FileJson>, feedback: Vec<FileJson>) -> anyhow::Result<Rendered> {
    let body = Body {
        submission: SubmissionJson {
            id: &s.id,
            status: &s.status,
            submitted_at: s.submitted_at.map(ts),
            modified_at: ts(s.modified_at),
            online_text: s.online_text.as_deref(),
            files: &submitted,
            grade: s.grade,
            max_grade: s.max_grade,
            graded_at: s.graded_at.map(ts),
            feedback: ctx.options.feedback.then_some(FeedbackJson { comment: s.feedback_comment.as_deref(), files: &feedback }),
        },
    };
    let mut json = serde_json::to_vec_pretty(&ctx.envelope(SCHEMA, body))?;
    json.push(b'\n');

    let html = ctx.options.html.then(|| page(ctx, s, &submitted, &feedback));
    let row = MetadataRow {
        record_kind: "SUBMISSION",
        record_id: s.id.clone(),
        person_lms_id: s.person_lms_id.clone(),
        username: ctx.person.username.clone(),
        first_name: ctx.person.first_name.clone(),
        last_name: ctx.person.last_name.clone(),
        id_number: ctx.person.id_number.clone(),
        attempt_number: None,
        state: s.status.clone(),
        started_at: None,
        finished_at: s.submitted_at.map(ts),
        modified_at: ts(s.modified_at),
        duration_seconds: None,
        grade: s.grade,
        max_grade: s.max_grade,
        graded_at: s.graded_at.map(ts),
        file_count: (submitted.len() + feedback.len()) as u32,
        report_json: ctx.json_path.clone(),
        report_html: ctx.html_path.clone(),
    };
    let files = submitted.into_iter().chain(feedback).collect();
    Ok(Rendered { json, html, row, files })
}

/// The submission's HTML page, with the sections the report options include.
fn page(ctx: &RecordCtx, s: &AssignSubmission, submitted: &[FileJson], feedback: &[FileJson]) -> String {
    let title = format!("{} — submission — {}", ctx.activity.name, ctx.person.display_name());
    let page = html! {
        h1 { "Assignment submission: " (ctx.activity.name) }
        table {
            (report::context_rows(ctx))
            tr { th { "Submission" } td { "LMS id " (s.id) } }
            tr { th { "Status" } td { (s.status) } }
            tr { th { "Submitted" } td { (opt_time(s.submitted_at)) } }
            tr { th { "Last modified" } td { (fmt_time(s.modified_at)) } }
            tr { th { "Grade" } td { (fmt_grade(s.grade, s.max_grade)) } }
            tr { th { "Graded" } td { (opt_time(s.graded_at)) } }
        }
        h2 { "Online text" }
        (lms_html(s.online_text.as_deref()))
        h2 { "Submitted files" }
        (report::files_table(submitted))
        @if ctx.options.feedback {
            h2 { "Feedback" }
            h3 { "Comment" }
            (lms_html(s.feedback_comment.as_deref()))
            h3 { "Feedback files" }
            (report::files_table(feedback))
        }
    };
    let json_name = ctx.json_path.rsplit('/').next().unwrap_or_default();
    report::page(&title, page, json_name)
}
