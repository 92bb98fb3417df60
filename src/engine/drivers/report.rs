//! What the reports of all drivers share: the JSON envelope (schema in
//! `src/engine/package/REPORT_SCHEMA.md`) and the static HTML page.
//!
//! HTML pages are self-contained: inline CSS, no script, no remote resource, and a
//! Content-Security-Policy that forbids loading anything even if a browser were tricked. Every
//! value is escaped (maud). Text that the LMS delivers as HTML (question texts, feedback, online
//! text) is NEVER injected as markup: it is converted to plain text (tags dropped, `<script>` and
//! `<style>` contents dropped, entities decoded, block elements become line breaks) and escaped,
//! and its original source is shown escaped under "LMS HTML source". The JSON keeps the original.
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Serialize;

use super::{ActivityInfo, CourseInfo};
use crate::domain::ReportOptions;
use crate::lms::{LmsFile, LmsPerson};

pub use crate::engine::package::SCHEMA_VERSION;

pub fn generator() -> String {
    format!("archiving-manager {}", env!("CARGO_PKG_VERSION"))
}

/// RFC 3339, UTC, whole seconds: `2025-11-10T09:00:00Z`.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CourseJson<'a> {
    pub lms_id: &'a str,
    pub short_name: &'a str,
    pub full_name: &'a str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityJson<'a> {
    pub lms_id: &'a str,
    pub kind: String,
    pub name: &'a str,
    pub closes_at: Option<String>,
}

/// The person a record belongs to. Only `lmsId` is certain: the others are null when the LMS no
/// longer knows the person.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonJson {
    pub lms_id: String,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub id_number: Option<String>,
}

impl PersonJson {
    pub fn from_lms(lms_id: &str, p: Option<&LmsPerson>) -> Self {
        Self {
            lms_id: lms_id.to_string(),
            username: p.map(|p| p.username.clone()),
            first_name: p.map(|p| p.first_name.clone()),
            last_name: p.map(|p| p.last_name.clone()),
            email: p.and_then(|p| p.email.clone()),
            id_number: p.and_then(|p| p.id_number.clone()),
        }
    }

    pub fn display_name(&self) -> String {
        match (&self.first_name, &self.last_name) {
            (Some(f), Some(l)) => format!("{f} {l}"),
            _ => format!("person {}", self.lms_id),
        }
    }
}

/// The common head of every report; the body (`attempt` or `submission`) is flattened in.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a, T: Serialize> {
    pub schema: &'static str,
    pub schema_version: &'static str,
    pub generator: String,
    pub course: CourseJson<'a>,
    pub activity: ActivityJson<'a>,
    pub person: &'a PersonJson,
    #[serde(flatten)]
    pub body: T,
}

/// A file of a record as the report lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileJson {
    /// The name inside the package (sanitized, unique within its folder).
    pub name: String,
    /// The name the LMS gave.
    pub original_name: String,
    pub media_type: String,
    pub size: u64,
    /// Path of the file relative to the bag folder.
    pub path: String,
    #[serde(skip)]
    pub source: Option<LmsFile>,
}

/// Everything a driver needs to render one record.
pub struct RecordCtx<'a> {
    pub course: &'a CourseInfo,
    pub activity: &'a ActivityInfo,
    pub person: PersonJson,
    /// Report paths relative to the bag folder; no HTML path when the options leave HTML out.
    pub json_path: String,
    pub html_path: Option<String>,
    /// What the reports contain; a driver leaves out of both the JSON and the HTML what they
    /// exclude.
    pub options: ReportOptions,
}

impl<'a> RecordCtx<'a> {
    pub fn envelope<T: Serialize>(&'a self, schema: &'static str, body: T) -> Envelope<'a, T> {
        Envelope {
            schema,
            schema_version: SCHEMA_VERSION,
            generator: generator(),
            course: CourseJson {
                lms_id: &self.course.lms_id,
                short_name: &self.course.short_name,
                full_name: &self.course.full_name,
            },
            activity: ActivityJson {
                lms_id: &self.activity.lms_id,
                kind: self.activity.kind.to_string(),
                name: &self.activity.name,
                closes_at: self.activity.closes_at.map(ts),
            },
            person: &self.person,
            body,
        }
    }
}

const CSS: &str = "\
body{font-family:Georgia,'Times New Roman',serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#111;background:#fff;line-height:1.45}\
h1{font-size:1.5rem;border-bottom:2px solid #333;padding-bottom:.3rem}\
h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #999}\
h3{font-size:1rem;margin:1rem 0 .3rem}\
table{border-collapse:collapse;width:100%;margin:.5rem 0}\
th,td{border:1px solid #bbb;padding:.25rem .5rem;text-align:left;vertical-align:top}\
th{background:#eee;width:14rem}\
table.list th{width:auto}\
.text{white-space:pre-wrap;border-left:3px solid #bbb;padding:.2rem .6rem;margin:.3rem 0}\
pre{white-space:pre-wrap;word-break:break-all;background:#f6f6f6;padding:.4rem;font-size:.85rem}\
details summary{cursor:pointer;color:#555;font-size:.85rem}\
.none{color:#777;font-style:italic}\
footer{margin-top:3rem;border-top:1px solid #999;font-size:.85rem;color:#444}\
@media print{details{display:none}body{margin:0}}";

/// A complete, self-contained HTML page.
pub fn page(title: &str, body: Markup, json_name: &str) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="generator" content=(generator());
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                (body)
                footer {
                    p { "Archived by " (generator()) ". The machine-readable version of this report is the file "
                        code { (json_name) } " beside this page (schema version " (SCHEMA_VERSION) "). "
                        "The checksums of all files of the archive are in the manifests at the top of the archive folder." }
                }
            }
        }
    }
    .into_string()
}

/// Text the LMS delivers as HTML: as plain text, with the escaped source below.
pub fn lms_html(source: Option<&str>) -> Markup {
    match source {
        None => html! { span.none { "none" } },
        Some(s) => html! {
            div.text { (html_to_text(s)) }
            details { summary { "LMS HTML source" } pre { (s) } }
        },
    }
}

pub fn opt_text(v: Option<&str>) -> Markup {
    match v {
        Some(v) if !v.is_empty() => html! { (v) },
        _ => html! { span.none { "none" } },
    }
}

pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn opt_time(t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => html! { (fmt_time(t)) },
        None => html! { span.none { "none" } },
    }
}

pub fn fmt_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

pub fn fmt_grade(grade: Option<f64>, max: f64) -> Markup {
    match grade {
        Some(g) => html! { (fmt_number(g)) " / " (fmt_number(max)) },
        None => html! { span.none { "not graded" } " (maximum " (fmt_number(max)) ")" },
    }
}

pub fn fmt_duration(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h} h {m:02} min {s:02} s")
    } else {
        format!("{m} min {s:02} s")
    }
}

pub fn fmt_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB ({b} bytes)", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB ({b} bytes)", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB ({b} bytes)", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

/// The table rows describing course, activity and person.
pub fn context_rows(ctx: &RecordCtx) -> Markup {
    let p = &ctx.person;
    html! {
        tr { th { "Course" } td { (ctx.course.short_name) " — " (ctx.course.full_name) " (LMS id " (ctx.course.lms_id) ")" } }
        tr { th { "Activity" } td { (ctx.activity.name) " (" (ctx.activity.kind) ", LMS id " (ctx.activity.lms_id) ")" } }
        tr { th { "Activity closes" } td { (opt_time(ctx.activity.closes_at)) } }
        tr { th { "Person" } td { (p.display_name()) } }
        tr { th { "User name" } td { (opt_text(p.username.as_deref())) } }
        tr { th { "ID number" } td { (opt_text(p.id_number.as_deref())) } }
        tr { th { "E-mail" } td { (opt_text(p.email.as_deref())) } }
        tr { th { "Person LMS id" } td { (p.lms_id) } }
    }
}

/// A table of files with relative links (from the report folder `data/reports/`).
pub fn files_table(files: &[FileJson]) -> Markup {
    if files.is_empty() {
        return html! { p.none { "No files." } };
    }
    html! {
        table.list {
            tr { th { "File" } th { "Type" } th { "Size" } th { "Name in the LMS" } }
            @for f in files {
                tr {
                    td { a href=(relative_href(&f.path)) { (f.name) } }
                    td { (f.media_type) }
                    td { (fmt_size(f.size)) }
                    td { (f.original_name) }
                }
            }
        }
    }
}

/// A link from `data/reports/x.html` to `path` (relative to the bag), percent-encoded.
pub fn relative_href(path: &str) -> String {
    let rel = path.strip_prefix("data/").map(|p| format!("../{p}")).unwrap_or_else(|| format!("../../{path}"));
    let mut out = String::new();
    for b in rel.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Plain text from LMS HTML: see the module doc.
pub fn html_to_text(html: &str) -> String {
    let lower = html.to_ascii_lowercase(); // same byte offsets as `html`
    let mut out = String::new();
    let mut i = 0;
    while i < html.len() {
        let Some(lt) = html[i..].find('<').map(|k| i + k) else {
            out.push_str(&decode_entities(&html[i..]));
            break;
        };
        out.push_str(&decode_entities(&html[i..lt]));
        let Some(gt) = html[lt..].find('>').map(|k| lt + k) else {
            out.push_str(&decode_entities(&html[lt..]));
            break;
        };
        let tag = &lower[lt + 1..gt];
        let closing = tag.starts_with('/');
        let name: String = tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        i = gt + 1;
        match name.as_str() {
            "script" | "style" if !closing => {
                let end = format!("</{name}");
                i = lower[i..].find(&end).map_or(html.len(), |k| {
                    let after = i + k;
                    lower[after..].find('>').map_or(html.len(), |g| after + g + 1)
                });
            }
            "br" | "p" | "div" | "tr" | "table" | "ul" | "ol" | "pre" | "blockquote" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                out.push('\n')
            }
            "li" if !closing => out.push_str("\n• "),
            "td" | "th" if closing => out.push('\t'),
            _ => {}
        }
    }
    // Tidy: no trailing spaces, at most one empty line in a row.
    let mut tidy = String::new();
    let mut empty = 0;
    for line in out.lines().map(str::trim_end) {
        if line.trim().is_empty() {
            empty += 1;
            if empty > 1 {
                continue;
            }
        } else {
            empty = 0;
        }
        tidy.push_str(line);
        tidy.push('\n');
    }
    tidy.trim().to_string()
}

fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest[1..].find(';').filter(|&k| k <= 10).and_then(|k| {
            let ent = &rest[1..1 + k];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ if ent.starts_with("#x") || ent.starts_with("#X") => u32::from_str_radix(&ent[2..], 16).ok().and_then(char::from_u32),
                _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            c.map(|c| (c, k + 2))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lms_html_becomes_plain_text() {
        assert_eq!(html_to_text("<p>What is the derivative of <em>x</em>²?</p>"), "What is the derivative of x²?");
        assert_eq!(html_to_text("<p>a &amp; b &lt;c&gt; &#65;&#x42; &bogus; & x</p><p>next</p>"), "a & b <c> AB &bogus; & x\n\nnext");
        assert_eq!(html_to_text("x<script>alert('<p>')</script>y<STYLE>p{}</STYLE>z"), "xyz");
        assert_eq!(html_to_text("<ul><li>one</li><li>two</li></ul>"), "• one\n• two");
        assert_eq!(html_to_text("broken < tag"), "broken < tag");
        assert_eq!(html_to_text("a<br/>b"), "a\nb");
    }

    #[test]
    fn lms_html_is_never_markup_in_the_page() {
        let m = lms_html(Some("<img src=\"https://evil.example/x.png\" onerror=alert(1)><script>alert(1)</script>hi")).into_string();
        assert!(!m.contains("<img") && !m.contains("<script"), "{m}");
        assert!(m.contains("&lt;img src=&quot;https://evil.example/x.png&quot;"), "{m}");
    }

    #[test]
    fn hrefs_are_relative_and_encoded() {
        assert_eq!(relative_href("data/files/a b/submitted/ü.txt"), "../files/a%20b/submitted/%C3%BC.txt");
    }

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(fmt_number(4.0), "4");
        assert_eq!(fmt_number(4.25), "4.25");
        assert_eq!(fmt_number(1.0 / 3.0), "0.33");
        assert_eq!(fmt_duration(3725), "1 h 02 min 05 s");
        assert_eq!(fmt_duration(65), "1 min 05 s");
    }
}
