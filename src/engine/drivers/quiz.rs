//! The quiz driver: one report per attempt with every question, the person's answer, the right
//! answer, feedback, mark and the answer history.
use maud::html;
use serde::Serialize;

use super::report::{self, fmt_duration, fmt_grade, fmt_time, lms_html, opt_text, opt_time, ts, RecordCtx};
use super::Rendered;
use crate::{
    domain::ReportOptions,
    engine::package::MetadataRow,
    lms::{AnswerStep, QuestionAttempt, QuizAttempt},
};

pub const SCHEMA: &str = "archiving-manager.quiz-attempt";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    attempt: AttemptJson<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttemptJson<'a> {
    id: &'a str,
    number: u32,
    state: &'a str,
    started_at: String,
    finished_at: Option<String>,
    modified_at: String,
    duration_seconds: Option<i64>,
    grade: Option<f64>,
    max_grade: f64,
    questions: Vec<QuestionJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QuestionJson<'a> {
    slot: u32,
    name: &'a str,
    text: &'a str,
    answer: Option<&'a str>,
    /// Absent (not null) when the report options leave it out, as are `feedback` and `history`.
    #[serde(skip_serializing_if = "Option::is_none")]
    right_answer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    feedback: Option<Option<&'a str>>,
    mark: Option<f64>,
    max_mark: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<StepJson<'a>>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StepJson<'a> {
    sequence: u32,
    state: &'a str,
    answer: Option<&'a str>,
    at: String,
}

fn duration(a: &QuizAttempt) -> Option<i64> {
    a.finished_at.map(|f| (f - a.started_at).num_seconds())
}

fn question_json<'a>(q: &'a QuestionAttempt, o: &ReportOptions) -> QuestionJson<'a> {
    QuestionJson {
        slot: q.slot,
        name: &q.name,
        text: &q.text,
        answer: q.answer.as_deref(),
        right_answer: o.right_answers.then_some(q.right_answer.as_str()),
        feedback: o.feedback.then_some(q.feedback.as_deref()),
        mark: q.mark,
        max_mark: q.max_mark,
        history: o.answer_history.then(|| {
            q.history.iter().map(|s: &AnswerStep| StepJson { sequence: s.sequence, state: &s.state, answer: s.answer.as_deref(), at: ts(s.at) }).collect()
        }),
    }
}

pub(super) fn render(ctx: &RecordCtx, a: &QuizAttempt) -> anyhow::Result<Rendered> {
    let body = Body {
        attempt: AttemptJson {
            id: &a.id,
            number: a.attempt_number,
            state: &a.state,
            started_at: ts(a.started_at),
            finished_at: a.finished_at.map(ts),
            modified_at: ts(a.modified_at),
            duration_seconds: duration(a),
            grade: a.grade,
            max_grade: a.max_grade,
            questions: a.questions.iter().map(|q| question_json(q, &ctx.options)).collect(),
        },
    };
    let mut json = serde_json::to_vec_pretty(&ctx.envelope(SCHEMA, body))?;
    json.push(b'\n');

    let html = ctx.options.html.then(|| page(ctx, a));
    let row = MetadataRow {
        record_kind: "ATTEMPT",
        record_id: a.id.clone(),
        person_lms_id: a.person_lms_id.clone(),
        username: ctx.person.username.clone(),
        first_name: ctx.person.first_name.clone(),
        last_name: ctx.person.last_name.clone(),
        id_number: ctx.person.id_number.clone(),
        attempt_number: Some(a.attempt_number),
        state: a.state.clone(),
        started_at: Some(ts(a.started_at)),
        finished_at: a.finished_at.map(ts),
        modified_at: ts(a.modified_at),
        duration_seconds: duration(a),
        grade: a.grade,
        max_grade: a.max_grade,
        graded_at: None,
        file_count: 0,
        report_json: ctx.json_path.clone(),
        report_html: ctx.html_path.clone(),
    };
    Ok(Rendered { json, html, row, files: Vec::new() })
}

/// The attempt's HTML page, with the sections the report options include.
fn page(ctx: &RecordCtx, a: &QuizAttempt) -> String {
    let o = &ctx.options;
    let title = format!("{} — attempt {} — {}", ctx.activity.name, a.attempt_number, ctx.person.display_name());
    let page = html! {
        h1 { "Quiz attempt: " (ctx.activity.name) }
        table {
            (report::context_rows(ctx))
            tr { th { "Attempt" } td { "number " (a.attempt_number) " (LMS id " (a.id) ")" } }
            tr { th { "State" } td { (a.state) } }
            tr { th { "Started" } td { (fmt_time(a.started_at)) } }
            tr { th { "Finished" } td { (opt_time(a.finished_at)) } }
            tr { th { "Duration" } td { @match duration(a) { Some(d) => (fmt_duration(d)), None => span.none { "not finished" } } } }
            tr { th { "Last modified" } td { (fmt_time(a.modified_at)) } }
            tr { th { "Grade" } td { (fmt_grade(a.grade, a.max_grade)) } }
        }
        @for q in &a.questions {
            h2 { "Question " (q.slot) ": " (q.name) }
            table {
                tr { th { "Mark" } td { (fmt_grade(q.mark, q.max_mark)) } }
            }
            h3 { "Question" }
            (lms_html(Some(&q.text)))
            h3 { "Answer given" }
            div.text { (opt_text(q.answer.as_deref())) }
            @if o.right_answers {
                h3 { "Right answer" }
                div.text { (q.right_answer) }
            }
            @if o.feedback {
                h3 { "Feedback" }
                (lms_html(q.feedback.as_deref()))
            }
            @if o.answer_history {
                h3 { "Answer history" }
                table.list {
                    tr { th { "Step" } th { "Time" } th { "State" } th { "Answer" } }
                    @for s in &q.history {
                        tr { td { (s.sequence) } td { (fmt_time(s.at)) } td { (s.state) } td { (opt_text(s.answer.as_deref())) } }
                    }
                }
            }
        }
    };
    let json_name = ctx.json_path.rsplit('/').next().unwrap_or_default();
    report::page(&title, page, json_name)
}
