//! Activity archiving drivers: one per activity kind ([`quiz`], [`assign`]). A driver says whether an
//! activity can be archived, computes its state fingerprint, and produces the package content:
//! per attempt/submission a JSON report (schema: `src/engine/package/REPORT_SCHEMA.md`), a static
//! HTML page, the files unchanged, and a row of `data/metadata.csv`/`.json`.
//!
//! [`archive_activity`] is what a worker runs for one task. It reads from the [`LmsSource`] one
//! record at a time and streams into a [`PackageWriter`], so memory stays flat.
//!
//! Layout of a package `<name>.zip` (or `.tar.gz`, `.tar.zst`):
//! ```text
//! <name>/bagit.txt  README.txt  report-schema.md  bag-info.txt
//! <name>/manifest-sha256.txt  manifest-sha512.txt  tagmanifest-sha256.txt  tagmanifest-sha512.txt
//! <name>/data/reports/<record>.json  <record>.html
//! <name>/data/files/<record>/submitted/<file>  feedback/<file>
//! <name>/data/metadata.csv  metadata.json
//! ```
//! `<record>` is `${attemptId}_${username}` ([`RECORD_PATTERN`]), sanitized and unique.
pub mod assign;
pub mod chunk;
pub mod quiz;
pub mod report;

pub use chunk::{archive_chunk, assemble_activity, assemble_as_ready, ChunkFeed, ChunkSource, ChunkSpan, ChunkWriter};

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
};

use anyhow::anyhow;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{stream::BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    domain::{
        filename::{record_time, safe_component, FilenamePattern, PatternError, Scope, Var, Vars},
        ActivityKind, ArchiveFormat, Failure, ReportOptions,
    },
    engine::package::{self, Cancelled, MetadataRow, PackageSpec, PackageWriter},
    lms::{FileReader, LmsFile, LmsPerson, LmsRecord, LmsSource, RecordVersion},
};
use report::{ts, FileJson, PersonJson, RecordCtx};

/// The name of a record's report (and of its files' folder) inside the package.
pub const RECORD_PATTERN: &str = "${attemptId}_${username}";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CourseInfo {
    pub lms_id: String,
    pub short_name: String,
    pub full_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityInfo {
    /// The archiving manager's id of the activity.
    pub id: i64,
    pub lms_id: String,
    pub kind: ActivityKind,
    pub name: String,
    pub closes_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRequest {
    pub job_id: uuid::Uuid,
    pub course: CourseInfo,
    pub activity: ActivityInfo,
    /// MANUAL, SCHEDULE, SIGNAL, API.
    pub origin: String,
    pub requested_by: String,
    /// The recorded archive time (bag-info `Bagging-Date`, README, `metadata.json`, mtime of the
    /// tag files). Everything else in the package depends only on the LMS data and the settings.
    pub archived_at: DateTime<Utc>,
    pub retention_until: Option<DateTime<Utc>>,
    pub format: ArchiveFormat,
    /// The package name pattern ([`FilenamePattern`], package scope).
    pub filename_pattern: String,
    /// What the reports contain.
    pub report_options: ReportOptions,
}

/// Which person's data is in the package, and where (for GDPR export and deletion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentEntry {
    pub person_lms_id: String,
    /// `ATTEMPT` or `SUBMISSION`.
    #[serde(deserialize_with = "package::record_kind")]
    pub record_kind: package::RecordKind,
    pub lms_record_id: String,
    /// The JSON report's path inside the package file (`<bag>/data/reports/<record>.json`).
    pub path: String,
    /// The HTML report's path inside the package file; `None` when the report options leave
    /// HTML pages out.
    #[serde(default)]
    pub html_path: Option<String>,
    /// The record's files' paths inside the package file.
    pub files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltPackage {
    /// `out_dir/file_name`: the complete package.
    pub path: PathBuf,
    pub file_name: String,
    pub media_type: String,
    pub size: u64,
    /// SHA-256 (hex) of the package file.
    pub sha256: String,
    /// The state fingerprint of the records as they were read into this package (see
    /// [`archive_activity`]).
    pub fingerprint: String,
    /// Attempts/submissions in the package.
    pub records: u64,
    pub contents: Vec<ContentEntry>,
    /// Payload-Oxum of the bag.
    pub payload_bytes: u64,
    pub payload_files: u64,
}

pub trait Progress: Send + Sync {
    fn report(&self, done: u64, total: u64);
    fn cancelled(&self) -> bool;
}

/// A [`Progress`] that ignores reports and is never cancelled.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&self, _done: u64, _total: u64) {}
    fn cancelled(&self) -> bool {
        false
    }
}

#[derive(Debug)]
pub enum ArchiveError {
    /// `Progress::cancelled` said so; nothing is left behind.
    Cancelled,
    /// Transient (the LMS or the disk failed, the LMS data changed while being read) or
    /// permanent (an invalid file name pattern, an unsupported or vanished activity).
    Failed(Failure),
}

impl std::fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchiveError::Cancelled => f.write_str("cancelled"),
            ArchiveError::Failed(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ArchiveError {}

impl From<Failure> for ArchiveError {
    fn from(f: Failure) -> Self {
        ArchiveError::Failed(f)
    }
}

fn transient(e: impl Into<anyhow::Error>) -> ArchiveError {
    ArchiveError::Failed(Failure::transient(format!("{:#}", e.into())))
}

fn permanent(e: impl Into<anyhow::Error>) -> ArchiveError {
    ArchiveError::Failed(Failure::permanent(format!("{:#}", e.into())))
}

/// Package errors: a cancellation noticed inside a long copy; an I/O error classified by the one
/// classification (a full staging disk is transient and says so); anything else transient.
fn from_package(e: anyhow::Error) -> ArchiveError {
    if e.is::<Cancelled>() {
        return ArchiveError::Cancelled;
    }
    let e = match e.downcast::<ArchiveError>() {
        Ok(classified) => return classified,
        Err(e) => e,
    };
    match e.chain().find_map(|c| c.downcast_ref::<std::io::Error>()) {
        Some(io) => ArchiveError::Failed(crate::domain::failure::io_kind_failure(format!("writing the package: {e:#}"), io.kind())),
        None => transient(e),
    }
}

/// The driver's name for `archive_task.driver`.
pub fn driver_name(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::Quiz => "quiz",
        ActivityKind::Assign => "assign",
    }
}

/// Whether the activity can be archived now; `Err` carries the reason.
///
/// Every supported kind can be archived at any time — also while the activity is still open
/// (no close date or one in the future): the package then holds the attempts/submissions as they
/// are at that moment, in-progress attempts included, and the fingerprint makes the activity
/// CHANGED as soon as anything changes afterwards.
pub fn can_be_archived(activity: &ActivityInfo, _now: DateTime<Utc>) -> Result<(), String> {
    if activity.lms_id.trim().is_empty() {
        return Err("the activity has no LMS id".into());
    }
    match activity.kind {
        ActivityKind::Quiz | ActivityKind::Assign => Ok(()),
    }
}

/// Incremental form of the state fingerprint (DESIGN §4): SHA-256 over the length-prefixed parts
/// kind, activity modification time, then every record's id and modification time in LMS order —
/// the same as `domain::activity::fingerprint` over these parts.
pub struct FingerprintBuilder(Sha256);

impl FingerprintBuilder {
    pub fn new(kind: ActivityKind, activity_modified_at: DateTime<Utc>) -> Self {
        let mut b = Self(Sha256::new());
        b.part(kind.as_ref());
        b.part(&activity_modified_at.to_rfc3339());
        b
    }

    fn part(&mut self, p: &str) {
        self.0.update((p.len() as u64).to_be_bytes());
        self.0.update(p.as_bytes());
    }

    pub fn record(&mut self, id: &str, modified_at: DateTime<Utc>) {
        self.part(id);
        self.part(&modified_at.to_rfc3339());
    }

    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// The fingerprint of an activity's state from its record versions.
pub fn fingerprint_of(kind: ActivityKind, activity_modified_at: DateTime<Utc>, versions: &[RecordVersion]) -> String {
    let mut b = FingerprintBuilder::new(kind, activity_modified_at);
    for v in versions {
        b.record(&v.id, v.modified_at);
    }
    b.finish()
}

/// The current fingerprint of an activity (what `Activity.archiveState` compares with the
/// fingerprints of finished tasks). Reads only the record versions, not the records.
pub async fn fingerprint(
    lms: &dyn LmsSource,
    activity_lms_id: &str,
    kind: ActivityKind,
    activity_modified_at: DateTime<Utc>,
) -> anyhow::Result<String> {
    let versions = lms.record_versions(activity_lms_id).await?;
    Ok(fingerprint_of(kind, activity_modified_at, &versions))
}

/// The variables of a package name.
pub fn package_vars(req: &ArchiveRequest) -> Vars {
    Vars::new()
        .with(Var::CourseId, &req.course.lms_id)
        .with(Var::CourseShortName, &req.course.short_name)
        .with(Var::CourseFullName, &req.course.full_name)
        .with(Var::ActivityId, &req.activity.lms_id)
        .with(Var::ActivityKind, req.activity.kind.to_string())
        .with(Var::ActivityName, &req.activity.name)
        .with(Var::JobId, req.job_id.to_string())
        .with_archive_time(req.archived_at)
}

/// The package's file name: the rendered pattern plus the container's extension.
pub fn package_file_name(req: &ArchiveRequest) -> Result<String, PatternError> {
    let base = FilenamePattern::parse_for(&req.filename_pattern, Scope::Package)?.render(&package_vars(req))?;
    Ok(format!("{base}{}", package::extension(req.format)))
}

/// A name usable inside the package: one safe component, without `%` (which manifests would have
/// to encode and `sha256sum -c` would not decode).
fn package_component(raw: &str) -> Option<String> {
    safe_component(&raw.replace('%', "_"))
}

/// Makes `name` unique among `used` by appending `_2`, `_3`, … before the extension.
fn unique(used: &mut HashSet<String>, name: String) -> String {
    if used.insert(name.clone()) {
        return name;
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name.as_str(), ""),
    };
    (2..)
        .map(|n| format!("{stem}_{n}{ext}"))
        .find(|candidate| used.insert(candidate.clone()))
        .expect("an unused name exists")
}

/// What a driver renders for one record.
pub(crate) struct Rendered {
    pub json: Vec<u8>,
    /// `None` when the report options leave HTML pages out.
    pub html: Option<String>,
    pub row: MetadataRow,
    /// The record's files in package order, each with its LMS source.
    pub files: Vec<FileJson>,
}

/// Where a record's package entries go: straight into the package ([`PackageWriter`], small
/// activities), or to disk for a later assembly ([`ChunkWriter`], one chunk of a large activity).
/// Rendering is the same either way, so both give the same entries.
#[async_trait::async_trait]
pub trait EntrySink: Send {
    /// A payload file from memory; `path` is relative to the bag and starts with `data/`.
    async fn add_bytes(&mut self, path: &str, mtime: DateTime<Utc>, bytes: Bytes) -> anyhow::Result<()>;
    /// A payload file of exactly `size` bytes, streamed; fails with [`Cancelled`] when
    /// `cancelled` says so during a long copy.
    async fn add_reader(&mut self, path: &str, size: u64, mtime: DateTime<Utc>, reader: FileReader, cancelled: &(dyn Fn() -> bool + Sync))
        -> anyhow::Result<()>;
    /// A row of `data/metadata.csv` / `.json`.
    async fn add_metadata(&mut self, row: MetadataRow) -> anyhow::Result<()>;
    /// Called after each record's entries: what an assembly needs besides the entries (the
    /// fingerprint's parts, the record's unique name, the package contents). The package itself
    /// keeps these in memory.
    async fn end_record(&mut self, _id: &str, _modified_at: DateTime<Utc>, _base: &str, _content: &ContentEntry) -> anyhow::Result<()> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl EntrySink for PackageWriter {
    async fn add_bytes(&mut self, path: &str, mtime: DateTime<Utc>, bytes: Bytes) -> anyhow::Result<()> {
        PackageWriter::add_bytes(self, path, mtime, bytes).await
    }
    async fn add_reader(&mut self, path: &str, size: u64, mtime: DateTime<Utc>, reader: FileReader, cancelled: &(dyn Fn() -> bool + Sync))
        -> anyhow::Result<()> {
        PackageWriter::add_reader(self, path, size, mtime, reader, cancelled).await
    }
    async fn add_metadata(&mut self, row: MetadataRow) -> anyhow::Result<()> {
        PackageWriter::add_metadata(self, row).await
    }
}

fn readme(req: &ArchiveRequest, bag: &str, file_name: &str) -> String {
    let kind = match req.activity.kind {
        ActivityKind::Quiz => "quiz (one report per attempt)",
        ActivityKind::Assign => "assignment (one report per submission)",
    };
    let retention = req.retention_until.map_or("no end date set".to_string(), ts);
    format!(
        "ARCHIVE PACKAGE {bag}
{rule}

This is an archive of exam data from a learning management system (LMS), made for legal
long-term retention by the Archiving Manager {version}.

  Package file:   {file_name}
  Course:         {short} - {full} (LMS id {course_id})
  Activity:       {activity} - {kind} (LMS id {activity_id})
  Archive job:    {job} ({origin}, requested by {by})
  Archived at:    {at}
  Keep until:     {retention}
  Report content: {options}

CONTENTS

The folder is a BagIt bag (RFC 8493, BagIt version 1.0):

  bagit.txt                 BagIt version and encoding of the tag files
  bag-info.txt              who archived what and when; Payload-Oxum (bytes.files of data/)
  README.txt                this file
  report-schema.md          the description of the JSON reports (schema version {schema})
  manifest-sha256.txt       SHA-256 of every file under data/
  manifest-sha512.txt       SHA-512 of every file under data/
  tagmanifest-sha256.txt    SHA-256 of the files above (except the tag manifests)
  tagmanifest-sha512.txt    SHA-512 of the same
  data/reports/<record>.json   one report per attempt/submission, machine-readable (UTF-8 JSON)
{html_line}  data/files/<record>/submitted/   files the person submitted, byte for byte as in the LMS
  data/files/<record>/feedback/    feedback files of the graders, byte for byte
  data/metadata.csv         one row per attempt/submission: person, times, grade, report paths
  data/metadata.json        the same rows as JSON

<record> is the attempt/submission id followed by the person's user name.
All times are UTC. The line Report content above lists what the reports hold besides the JSON report;
a section it does not name (HTML pages, right answers, feedback, answer history) was left out
by the institution's settings when the package was made, not lost.

HOW TO VERIFY

1. With any BagIt validator, for example the Library of Congress' bagit-python:

     pip install bagit
     bagit.py --validate {bag}

2. With the standard checksum tools (GNU coreutils), from inside the folder {bag}:

     sha256sum -c manifest-sha256.txt
     sha512sum -c manifest-sha512.txt
     sha256sum -c tagmanifest-sha256.txt

   Every line must say OK. The manifests list every file of data/; a file that is missing,
   added or changed shows up as a failure (or, for an added file, as a file not in the manifest).

3. The SHA-256 of the package file {file_name} itself was recorded by the Archiving Manager
   when the package was made. Compare it with:

     sha256sum {file_name}

4. The package file may be covered by an RFC 3161 time-stamp from a Time-Stamp Authority (TSA):
   a token, kept beside the package (not inside it), that proves this exact file existed at the
   time it states. Download the token as {file_name}.tsr (the Archiving Manager lists it with the
   file) and the CA certificate of the TSA, then:

     openssl ts -verify -data {file_name} -in {file_name}.tsr -CAfile <tsa-ca.pem>

   It must say: Verification: OK. To see the time: openssl ts -reply -in {file_name}.tsr -text
",
        rule = "=".repeat(16 + bag.chars().count()),
        version = env!("CARGO_PKG_VERSION"),
        short = req.course.short_name,
        full = req.course.full_name,
        course_id = req.course.lms_id,
        activity = req.activity.name,
        activity_id = req.activity.lms_id,
        job = req.job_id,
        origin = req.origin,
        by = req.requested_by,
        at = ts(req.archived_at),
        schema = report::SCHEMA_VERSION,
        options = req.report_options.describe(),
        html_line = if req.report_options.html {
            "  data/reports/<record>.html   the same report as a static web page: open it in any web browser;\n                               it needs no network and runs no script\n"
        } else {
            ""
        },
    )
}

fn bag_info(req: &ArchiveRequest, bag: &str) -> Vec<(String, String)> {
    let mut info = vec![
        ("Bagging-Date", req.archived_at.format("%Y-%m-%d").to_string()),
        ("Bag-Software-Agent", report::generator()),
        ("External-Identifier", bag.to_string()),
        (
            "External-Description",
            format!("Archive of the {} '{}' of the course {} ({})", req.activity.kind, req.activity.name, req.course.short_name, req.course.full_name),
        ),
        ("Archive-Job-Id", req.job_id.to_string()),
        ("Archive-Created-At", ts(req.archived_at)),
        ("Archive-Origin", req.origin.clone()),
        ("Archive-Requested-By", req.requested_by.clone()),
        ("Archive-Retention-Until", req.retention_until.map_or("none".into(), ts)),
        ("Archive-Software-Version", env!("CARGO_PKG_VERSION").to_string()),
        ("Archive-Report-Options", req.report_options.describe()),
        ("Course-LMS-Id", req.course.lms_id.clone()),
        ("Course-Short-Name", req.course.short_name.clone()),
        ("Course-Full-Name", req.course.full_name.clone()),
        ("Activity-LMS-Id", req.activity.lms_id.clone()),
        ("Activity-Kind", req.activity.kind.to_string()),
        ("Activity-Name", req.activity.name.clone()),
    ];
    if let Some(c) = req.activity.closes_at {
        info.push(("Activity-Closes-At", ts(c)));
    }
    info.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn metadata_header(req: &ArchiveRequest, bag: &str) -> serde_json::Value {
    serde_json::json!({
        "name": bag,
        "jobId": req.job_id.to_string(),
        "archivedAt": ts(req.archived_at),
        "origin": req.origin,
        "requestedBy": req.requested_by,
        "retentionUntil": req.retention_until.map(ts),
        "generator": report::generator(),
        "reportOptions": req.report_options,
        "course": { "lmsId": req.course.lms_id, "shortName": req.course.short_name, "fullName": req.course.full_name },
        "activity": {
            "lmsId": req.activity.lms_id,
            "kind": req.activity.kind.to_string(),
            "name": req.activity.name,
            "closesAt": req.activity.closes_at.map(ts),
        },
    })
}

/// The state of one run of [`archive_activity`].
struct Run<'a> {
    lms: &'a dyn LmsSource,
    req: &'a ArchiveRequest,
    bag: &'a str,
    persons: HashMap<String, LmsPerson>,
    record_pattern: FilenamePattern,
    used: HashSet<String>,
    fingerprint: FingerprintBuilder,
    contents: Vec<ContentEntry>,
    progress: &'a dyn Progress,
}

impl<'a> Run<'a> {
    fn new(lms: &'a dyn LmsSource, req: &'a ArchiveRequest, bag: &'a str, persons: HashMap<String, LmsPerson>, activity: &crate::lms::LmsActivity, progress: &'a dyn Progress) -> Self {
        Run {
            lms,
            req,
            bag,
            persons,
            record_pattern: FilenamePattern::parse_for(RECORD_PATTERN, Scope::Record).expect("the record pattern is valid"),
            used: HashSet::new(),
            fingerprint: FingerprintBuilder::new(activity.kind, activity.modified_at),
            contents: Vec::new(),
            progress,
        }
    }

    /// Renders every record of `stream` into `sink`, reporting progress out of `total`.
    async fn records(&mut self, sink: &mut dyn EntrySink, mut stream: BoxStream<'a, anyhow::Result<LmsRecord>>, total: u64) -> Result<(), ArchiveError> {
        let mut done = 0u64;
        self.progress.report(0, total);
        loop {
            if self.progress.cancelled() {
                return Err(ArchiveError::Cancelled);
            }
            let Some(record) = stream.next().await else { break };
            self.record(sink, record.map_err(transient)?).await?;
            done += 1;
            self.progress.report(done, total.max(done));
        }
        if self.progress.cancelled() {
            return Err(ArchiveError::Cancelled);
        }
        Ok(())
    }

    async fn record(&mut self, pkg: &mut dyn EntrySink, record: LmsRecord) -> Result<(), ArchiveError> {
        let (id, person_id, modified_at, started, finished, kind, record_kind) = match &record {
            LmsRecord::QuizAttempt(a) => (&a.id, &a.person_lms_id, a.modified_at, Some(a.started_at), a.finished_at, ActivityKind::Quiz, "ATTEMPT"),
            LmsRecord::AssignSubmission(s) => {
                (&s.id, &s.person_lms_id, s.modified_at, None, s.submitted_at, ActivityKind::Assign, "SUBMISSION")
            }
        };
        if kind != self.req.activity.kind {
            return Err(permanent(anyhow!("the LMS returned a {kind} record {id} for the {} activity", self.req.activity.kind)));
        }
        self.fingerprint.record(id, modified_at);
        let person = PersonJson::from_lms(person_id, self.persons.get(person_id.as_str()));
        let mut vars = Vars::new()
            .with(Var::AttemptId, id.as_str())
            .with(Var::Username, person.username.clone().unwrap_or_else(|| format!("person-{person_id}")))
            .with(Var::FirstName, person.first_name.clone().unwrap_or_default())
            .with(Var::LastName, person.last_name.clone().unwrap_or_default())
            .with(Var::IdNumber, person.id_number.clone().unwrap_or_default());
        vars.set(Var::AttemptStartedAt, started.map(record_time).unwrap_or_default());
        vars.set(Var::AttemptFinishedAt, finished.map(record_time).unwrap_or_default());
        let name = self.record_pattern.render(&vars).map_err(permanent)?.replace('%', "_");
        let base = unique(&mut self.used, name);
        let ctx = RecordCtx {
            course: &self.req.course,
            activity: &self.req.activity,
            person,
            json_path: format!("data/reports/{base}.json"),
            html_path: self.req.report_options.html.then(|| format!("data/reports/{base}.html")),
            options: self.req.report_options,
        };
        let rendered = match &record {
            LmsRecord::QuizAttempt(a) => quiz::render(&ctx, a),
            LmsRecord::AssignSubmission(s) => {
                let submitted = files_of(&base, "submitted", &s.files);
                // Feedback files left out by the options are not read from the LMS at all.
                let feedback = if ctx.options.feedback { files_of(&base, "feedback", &s.feedback_files) } else { Vec::new() };
                assign::render(&ctx, s, submitted, feedback)
            }
        }
        .map_err(permanent)?;
        pkg.add_bytes(&ctx.json_path, modified_at, rendered.json.into()).await.map_err(from_package)?;
        if let (Some(path), Some(html)) = (&ctx.html_path, rendered.html) {
            pkg.add_bytes(path, modified_at, html.into()).await.map_err(from_package)?;
        }
        let progress = self.progress;
        for f in &rendered.files {
            let source = f.source.as_ref().expect("files carry their source");
            let reader = self.lms.open_file(source).await.map_err(transient)?;
            pkg.add_reader(&f.path, f.size, modified_at, reader, &|| progress.cancelled()).await.map_err(from_package)?;
        }
        pkg.add_metadata(rendered.row).await.map_err(from_package)?;
        let inside = |p: &str| format!("{}/{p}", self.bag);
        let content = ContentEntry {
            person_lms_id: person_id.clone(),
            record_kind,
            lms_record_id: id.clone(),
            path: inside(&ctx.json_path),
            html_path: ctx.html_path.as_deref().map(inside),
            files: rendered.files.iter().map(|f| inside(&f.path)).collect(),
        };
        pkg.end_record(id, modified_at, &base, &content).await.map_err(from_package)?;
        self.contents.push(content);
        Ok(())
    }
}

/// The files of a record with their (sanitized, unique) paths in `data/files/<record>/<folder>/`.
fn files_of(base: &str, folder: &str, files: &[LmsFile]) -> Vec<FileJson> {
    let mut used = HashSet::new();
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = unique(&mut used, package_component(&f.name).unwrap_or_else(|| format!("file-{}", i + 1)));
            FileJson {
                path: format!("data/files/{base}/{folder}/{name}"),
                name,
                original_name: f.name.clone(),
                media_type: f.media_type.clone(),
                size: f.size,
                source: Some(f.clone()),
            }
        })
        .collect()
}

/// Archives one activity into a package in `out_dir`; see the module doc for the layout.
///
/// The package is written as `<file name>.part` (replacing a leftover of an earlier run) and
/// renamed to its final name only when complete and synced; on error or cancellation nothing is
/// left behind. Progress is reported per record; cancellation is checked between records and
/// every 16 MiB of a file.
///
/// Fingerprint: the LMS's record versions are read first (for the progress total); the
/// fingerprint recorded in [`BuiltPackage::fingerprint`] is computed from the records as they were
/// actually read into the package (kind, activity modification time, then each record's id and
/// modification time — the same formula as [`fingerprint`]). If nothing changed meanwhile both
/// are equal; if the LMS changed during the run, the recorded one describes what the package
/// holds, so the activity shows CHANGED exactly when the LMS differs from the package.
pub async fn archive_activity(
    lms: &dyn LmsSource,
    req: &ArchiveRequest,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<BuiltPackage, ArchiveError> {
    let (file_name, bag) = package_names(req)?;
    if progress.cancelled() {
        return Err(ArchiveError::Cancelled);
    }

    let activity = lms_activity(lms, req).await?;
    let versions = lms.record_versions(&activity.lms_id).await.map_err(transient)?;
    let total = versions.len() as u64;
    let announced = fingerprint_of(activity.kind, activity.modified_at, &versions);
    drop(versions);
    let persons = lms_persons(lms).await?;

    let mut pkg = PackageWriter::create(package_spec(req, out_dir, &file_name, &bag)).map_err(transient)?;
    let mut run = Run::new(lms, req, &bag, persons, &activity, progress);
    if let Err(e) = run.records(&mut pkg, lms.records(&req.activity.lms_id), total).await {
        pkg.abort().await;
        return Err(e);
    }
    let Run { fingerprint, contents, .. } = run;
    let fingerprint = fingerprint.finish();
    if fingerprint != announced {
        tracing::warn!(activity = %activity.lms_id, "the LMS changed while the activity was archived; the package records the state it holds");
    }
    finish_package(pkg, req, file_name, fingerprint, contents).await
}

/// The package's file name and its bag folder's name; checks that the activity can be archived.
fn package_names(req: &ArchiveRequest) -> Result<(String, String), ArchiveError> {
    can_be_archived(&req.activity, req.archived_at).map_err(|r| permanent(anyhow!(r)))?;
    let file_name = package_file_name(req).map_err(permanent)?;
    let bag = file_name.strip_suffix(package::extension(req.format)).unwrap_or(&file_name).to_string();
    Ok((file_name, bag))
}

/// The activity as the LMS has it now (its kind must not have changed).
async fn lms_activity(lms: &dyn LmsSource, req: &ArchiveRequest) -> Result<crate::lms::LmsActivity, ArchiveError> {
    let activity = lms
        .activities()
        .await
        .map_err(transient)?
        .into_iter()
        .find(|a| a.lms_id == req.activity.lms_id)
        .ok_or_else(|| permanent(anyhow!("the LMS no longer has the activity {}", req.activity.lms_id)))?;
    if activity.kind != req.activity.kind {
        return Err(permanent(anyhow!("activity {} is a {} in the LMS, not a {}", activity.lms_id, activity.kind, req.activity.kind)));
    }
    Ok(activity)
}

async fn lms_persons(lms: &dyn LmsSource) -> Result<HashMap<String, LmsPerson>, ArchiveError> {
    Ok(lms.persons().await.map_err(transient)?.into_iter().map(|p| (p.lms_id.clone(), p)).collect())
}

fn package_spec(req: &ArchiveRequest, out_dir: &Path, file_name: &str, bag: &str) -> PackageSpec {
    PackageSpec {
        out_dir: out_dir.to_path_buf(),
        file_name: file_name.to_string(),
        bag_name: bag.to_string(),
        format: req.format,
        created_at: req.archived_at,
        readme: readme(req, bag, file_name),
        tag_files: vec![("report-schema.md".into(), package::REPORT_SCHEMA_DOC.into())],
        bag_info: bag_info(req, bag),
        metadata_header: metadata_header(req, bag),
    }
}

/// Closes the package with the record count and fingerprint in `bag-info.txt`.
async fn finish_package(
    pkg: PackageWriter,
    req: &ArchiveRequest,
    file_name: String,
    fingerprint: String,
    contents: Vec<ContentEntry>,
) -> Result<BuiltPackage, ArchiveError> {
    let records = contents.len() as u64;
    let finished = pkg
        .finish(vec![("Record-Count".into(), records.to_string()), ("Activity-Fingerprint".into(), fingerprint.clone())])
        .await
        .map_err(from_package)?;
    Ok(BuiltPackage {
        path: finished.path,
        file_name,
        media_type: package::media_type(req.format).to_string(),
        size: finished.size,
        sha256: finished.sha256,
        fingerprint,
        records,
        contents,
        payload_bytes: finished.payload_bytes,
        payload_files: finished.payload_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_incremental_fingerprint_is_the_domain_fingerprint() {
        let t = Utc.with_ymd_and_hms(2025, 10, 20, 9, 0, 0).unwrap();
        let versions = vec![RecordVersion { id: "a".into(), modified_at: t }, RecordVersion { id: "b".into(), modified_at: t + chrono::Duration::seconds(5) }];
        let parts: Vec<String> = ["ASSIGN".to_string(), t.to_rfc3339()]
            .into_iter()
            .chain(versions.iter().flat_map(|v| [v.id.clone(), v.modified_at.to_rfc3339()]))
            .collect();
        assert_eq!(fingerprint_of(ActivityKind::Assign, t, &versions), crate::domain::activity::fingerprint(parts.iter().map(String::as_str)));
        assert_ne!(fingerprint_of(ActivityKind::Quiz, t, &versions), fingerprint_of(ActivityKind::Assign, t, &versions));
    }

    #[test]
    fn names_are_made_unique() {
        let mut used = HashSet::new();
        assert_eq!(unique(&mut used, "essay.txt".into()), "essay.txt");
        assert_eq!(unique(&mut used, "essay.txt".into()), "essay_2.txt");
        assert_eq!(unique(&mut used, "essay.txt".into()), "essay_3.txt");
        assert_eq!(unique(&mut used, "README".into()), "README");
        assert_eq!(unique(&mut used, "README".into()), "README_2");
        assert_eq!(package_component("../100%.txt").as_deref(), Some("_100_.txt"));
    }

    #[test]
    fn every_kind_can_be_archived_open_or_closed() {
        let a = ActivityInfo { id: 1, lms_id: "7".into(), kind: ActivityKind::Quiz, name: "Q".into(), closes_at: None };
        assert!(can_be_archived(&a, Utc::now()).is_ok());
        assert!(can_be_archived(&ActivityInfo { lms_id: " ".into(), ..a }, Utc::now()).is_err());
    }
}
