//! Large activities in chunks: each chunk (records `first .. first + n` in the LMS's order) is
//! fetched and rendered by a queue task of its own, on any worker, into a folder of the shared
//! staging area; [`assemble_activity`] then feeds the chunks' entries, in order,
//! into one [`PackageWriter`]. A chunk nobody has started when the assembly gets to it is not
//! staged at all: the assembly renders its records straight into the package
//! ([`ChunkSource::Render`]), which saves writing, syncing and reading back its bytes. The package
//! is byte-identical to the one [`archive_activity`] builds directly from the same data, because
//! rendering is the same code ([`Run`] writing to an [`EntrySink`]) and the package receives the
//! same entries in the same order, whichever way each chunk came.
//!
//! A chunk folder `staging/<job>/<task>/chunks/<idx>/`:
//! ```text
//! entries.bin      every payload file of the chunk, back to back, as it goes into the package
//! manifest.jsonl   one JSON object per line: header, entries (offset and size in entries.bin),
//!                  metadata rows, records
//! done.json        written last (temporary file + rename): the chunk is complete
//! ```
//! One data file, not one file per entry: a chunk of 500 submissions has some 2,000 entries, most
//! of them a few KiB, and creating a file for each (plus a hand-off to tokio's blocking pool per
//! file operation) cost more than the rest of the archiving. Both files are written through
//! buffers of a few hundred KiB, so a chunk costs a few writes per MiB; the assembly reads
//! `entries.bin` front to back.
//!
//! [`archive_activity`]: super::archive_activity
use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, Context};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};

use super::{
    finish_package, from_package, lms_activity, lms_persons, package_names, package_spec, permanent, transient, ArchiveError,
    ArchiveRequest, BuiltPackage, ContentEntry, EntrySink, FingerprintBuilder, Progress, Run,
};
use crate::{
    engine::package::{Cancelled, MetadataRow, PackageWriter, CHUNK},
    lms::{FileReader, LmsSource},
};

const MANIFEST: &str = "manifest.jsonl";
const DONE: &str = "done.json";
const ENTRIES: &str = "entries.bin";
/// The layout of chunk folders that `done.json` vouches for. A chunk of another layout (left by
/// an older version, e.g. across an upgrade mid-job) counts as not complete and is rendered again.
const LAYOUT: u32 = 2;
/// The buffer of each chunk file, for writing and for reading back: tokio hands every file
/// operation to its blocking pool, so the fewer and larger, the better, up to a point: two of
/// them per chunk rendered at once and per assembly count in the server's peak memory, and
/// beyond 256 KiB the hand-offs no longer showed in profiles.
const STAGING_BUFFER: usize = 256 * 1024;
/// How often (in bytes) a long file copy checks for cancellation, as the package does.
const CANCEL_CHECK_BYTES: u64 = 16 * 1024 * 1024;

/// One line of a chunk's manifest.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "line", rename_all = "camelCase")]
enum Line {
    /// First line: the activity's modification time, which the fingerprint starts with.
    Header { activity_modified_at: DateTime<Utc> },
    /// A payload file: its path in the bag, and where its bytes are in `entries.bin` (entries
    /// follow each other there in manifest order, so `offset` is checked rather than sought).
    /// `inline` entries were added from memory, the others streamed: the assembly adds them the
    /// same way, so the package receives exactly what the direct path sends it.
    Entry { path: String, mtime: DateTime<Utc>, offset: u64, size: u64, inline: bool },
    /// A metadata row. Grades travel as their bits too: JSON text does not promise to give back
    /// every `f64` exactly, and the rows are written into the package as numbers.
    Meta { row: MetadataRow, grade_bits: Option<u64>, max_grade_bits: u64 },
    /// The end of a record: what the fingerprint, name uniqueness and package contents need.
    Record { id: String, modified_at: DateTime<Utc>, base: String, content: ContentEntry },
}

/// `done.json`: the chunk is complete.
#[derive(Debug, Serialize, Deserialize)]
struct Done {
    records: u64,
    /// Absent in chunks of the first layout (a file per entry).
    #[serde(default)]
    layout: u32,
}

/// Writes one chunk's entries into one data file plus a manifest (see the module doc).
pub struct ChunkWriter {
    dir: PathBuf,
    manifest: BufWriter<tokio::fs::File>,
    entries: BufWriter<tokio::fs::File>,
    /// Bytes written to `entries.bin` so far: where the next entry starts.
    offset: u64,
    /// The copy buffer of streamed files, kept: a fresh zeroed one per file cost more than the copy.
    copy_buf: Vec<u8>,
}

impl ChunkWriter {
    /// Starts the chunk in `dir`, removing whatever an earlier run of it left there.
    pub async fn create(dir: &Path) -> anyhow::Result<Self> {
        match tokio::fs::remove_dir_all(dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
        }
        tokio::fs::create_dir_all(dir).await.with_context(|| format!("creating {}", dir.display()))?;
        let manifest = tokio::fs::File::create(dir.join(MANIFEST)).await.context("creating the chunk manifest")?;
        let entries = tokio::fs::File::create(dir.join(ENTRIES)).await.context("creating the chunk's data file")?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest: BufWriter::with_capacity(STAGING_BUFFER, manifest),
            entries: BufWriter::with_capacity(STAGING_BUFFER, entries),
            offset: 0,
            copy_buf: Vec::new(),
        })
    }

    async fn line(&mut self, line: &Line) -> anyhow::Result<()> {
        let mut bytes = serde_json::to_vec(line)?;
        bytes.push(b'\n');
        self.manifest.write_all(&bytes).await?;
        Ok(())
    }

    /// Syncs the data and the manifest, then marks the chunk complete: `done.json` appears
    /// atomically, last.
    async fn finish(mut self, records: u64) -> anyhow::Result<()> {
        self.entries.flush().await?;
        self.entries.get_mut().sync_all().await?;
        self.manifest.flush().await?;
        self.manifest.get_mut().sync_all().await?;
        let tmp = self.dir.join(format!(".{DONE}.tmp"));
        tokio::fs::write(&tmp, serde_json::to_vec(&Done { records, layout: LAYOUT })?).await?;
        tokio::fs::rename(&tmp, self.dir.join(DONE)).await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl EntrySink for ChunkWriter {
    async fn add_bytes(&mut self, path: &str, mtime: DateTime<Utc>, bytes: Bytes) -> anyhow::Result<()> {
        let (offset, size) = (self.offset, bytes.len() as u64);
        self.entries.write_all(&bytes).await.context("writing the chunk's data file")?;
        self.offset += size;
        self.line(&Line::Entry { path: path.to_string(), mtime, offset, size, inline: true }).await
    }

    async fn add_reader(&mut self, path: &str, size: u64, mtime: DateTime<Utc>, mut reader: FileReader, cancelled: &(dyn Fn() -> bool + Sync))
        -> anyhow::Result<()> {
        let offset = self.offset;
        let mut buf = std::mem::take(&mut self.copy_buf);
        buf.resize(CHUNK, 0);
        let (mut total, mut next_check) = (0u64, CANCEL_CHECK_BYTES);
        loop {
            let n = reader.read(&mut buf).await.with_context(|| format!("reading {path} from the LMS"))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            anyhow::ensure!(total <= size, "{path}: the LMS sent more than the {size} bytes it announced");
            self.entries.write_all(&buf[..n]).await.context("writing the chunk's data file")?;
            self.offset += n as u64;
            if total >= next_check {
                next_check += CANCEL_CHECK_BYTES;
                if cancelled() {
                    return Err(Cancelled.into());
                }
            }
        }
        anyhow::ensure!(total == size, "{path}: the LMS sent {total} bytes, it announced {size}");
        self.copy_buf = buf;
        self.line(&Line::Entry { path: path.to_string(), mtime, offset, size, inline: false }).await
    }

    async fn add_metadata(&mut self, row: MetadataRow) -> anyhow::Result<()> {
        let (grade_bits, max_grade_bits) = (row.grade.map(f64::to_bits), row.max_grade.to_bits());
        self.line(&Line::Meta { row, grade_bits, max_grade_bits }).await
    }

    async fn end_record(&mut self, id: &str, modified_at: DateTime<Utc>, base: &str, content: &ContentEntry) -> anyhow::Result<()> {
        self.line(&Line::Record { id: id.to_string(), modified_at, base: base.to_string(), content: content.clone() }).await
    }
}

/// Fetches and renders the records `first_record .. first_record + records` of the activity into
/// the chunk folder `dir` (replacing an earlier run's). Returns the number of records. On error
/// or cancellation the folder is removed. Fewer records than asked for means the LMS changed
/// meanwhile (records shifted between chunks): a transient error, the job's retry starts over.
pub async fn archive_chunk(
    lms: &dyn LmsSource,
    req: &ArchiveRequest,
    dir: &Path,
    first_record: u64,
    records: u64,
    progress: &dyn Progress,
) -> Result<u64, ArchiveError> {
    let (_, bag) = package_names(req)?;
    if progress.cancelled() {
        return Err(ArchiveError::Cancelled);
    }
    let activity = lms_activity(lms, req).await?;
    let persons = lms_persons(lms).await?;
    let mut sink = ChunkWriter::create(dir).await.map_err(transient)?;
    let rendered = async {
        sink.line(&Line::Header { activity_modified_at: activity.modified_at }).await.map_err(transient)?;
        let mut run = Run::new(lms, req, &bag, persons, &activity, progress);
        run.records(&mut sink, lms.records_from(&req.activity.lms_id, first_record, records), records).await?;
        let n = run.contents.len() as u64;
        if n != records {
            return Err(transient(anyhow!("the LMS changed while the activity was archived in chunks: records {first_record}.. held {n} records, not {records}")));
        }
        Ok(n)
    }
    .await;
    let finished = match rendered {
        Ok(n) => sink.finish(n).await.map(|()| n).map_err(transient),
        Err(e) => Err(e),
    };
    if finished.is_err() {
        let _ = tokio::fs::remove_dir_all(dir).await;
    }
    finished
}

/// Whether a chunk folder holds a complete chunk of the current layout.
pub fn chunk_complete(dir: &Path) -> bool {
    std::fs::read(dir.join(DONE)).ok().and_then(|b| serde_json::from_slice::<Done>(&b).ok()).is_some_and(|d| d.layout == LAYOUT)
}

/// One chunk of an assembly: its records in the LMS's order, and its staging folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkSpan {
    pub dir: PathBuf,
    pub first_record: u64,
    pub records: u64,
}

/// Where the assembly takes a chunk from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkSource {
    /// Complete in its folder: its entries are read from there.
    Staged,
    /// Nobody has rendered it, and now nobody else will (the feed claimed it): the assembly
    /// renders its records straight into the package.
    Render,
}

/// Says when and how each chunk of an assembly can be added: the assembly follows the chunks as
/// they finish instead of waiting for the last one, so that building the package overlaps
/// rendering, and renders itself the chunks nobody has started.
#[async_trait::async_trait]
pub trait ChunkFeed: Send + Sync {
    /// Returns when chunk `idx` is complete in its folder, or claimed for the assembly to render;
    /// fails with the chunk's failure, or [`ArchiveError::Cancelled`].
    async fn ready(&self, idx: usize) -> Result<ChunkSource, ArchiveError>;
    /// After a chunk given as [`ChunkSource::Render`]: `Some(records)` when its records are in the
    /// package, `None` when rendering it failed or stopped (the claim is given up).
    async fn rendered(&self, idx: usize, records: Option<u64>) -> Result<(), ArchiveError>;
}

/// The feed of chunks that are all complete already: it only checks.
struct AllDone<'a>(&'a [ChunkSpan]);

#[async_trait::async_trait]
impl ChunkFeed for AllDone<'_> {
    async fn ready(&self, idx: usize) -> Result<ChunkSource, ArchiveError> {
        read_done(&self.0[idx].dir).await.map(|_| ChunkSource::Staged)
    }
    async fn rendered(&self, _idx: usize, _records: Option<u64>) -> Result<(), ArchiveError> {
        Ok(())
    }
}

/// A complete chunk's `done.json`, of the current layout.
async fn read_done(dir: &Path) -> Result<Done, ArchiveError> {
    let done = tokio::fs::read(dir.join(DONE)).await.with_context(|| format!("chunk {} is not complete", dir.display())).map_err(transient)?;
    let done = serde_json::from_slice::<Done>(&done).map_err(transient)?;
    if done.layout != LAYOUT {
        return Err(transient(anyhow!("chunk {} was written in another layout ({}, not {LAYOUT})", dir.display(), done.layout)));
    }
    Ok(done)
}

/// Builds the activity's package in `out_dir` from its complete chunks, in order: the same
/// package as [`super::archive_activity`] builds from the same records (see the module doc).
/// Progress is reported per record assembled.
pub async fn assemble_activity(
    lms: &dyn LmsSource,
    req: &ArchiveRequest,
    out_dir: &Path,
    chunk_dirs: &[PathBuf],
    progress: &dyn Progress,
) -> Result<BuiltPackage, ArchiveError> {
    let mut spans = Vec::new();
    let mut first_record = 0;
    for dir in chunk_dirs {
        let records = read_done(dir).await?.records;
        spans.push(ChunkSpan { dir: dir.clone(), first_record, records });
        first_record += records;
    }
    assemble_as_ready(lms, req, out_dir, &spans, &AllDone(&spans), progress).await
}

/// As [`assemble_activity`], each chunk added as soon as `feed` says it is complete, or rendered
/// straight into the package when `feed` claimed it for the assembly.
pub async fn assemble_as_ready(
    lms: &dyn LmsSource,
    req: &ArchiveRequest,
    out_dir: &Path,
    chunks: &[ChunkSpan],
    feed: &dyn ChunkFeed,
    progress: &dyn Progress,
) -> Result<BuiltPackage, ArchiveError> {
    let (file_name, bag) = package_names(req)?;
    let mut pkg = PackageWriter::create(package_spec(req, out_dir, &file_name, &bag)).map_err(transient)?;
    let total = chunks.iter().map(|c| c.records).sum();
    let mut asm = Assembly { fingerprint: None, ids: HashSet::new(), used: HashSet::new(), contents: Vec::new(), done: 0, total };
    for (idx, chunk) in chunks.iter().enumerate() {
        let step = async {
            match feed.ready(idx).await? {
                ChunkSource::Staged => {
                    read_done(&chunk.dir).await?;
                    asm.chunk(&mut pkg, req, &chunk.dir, progress).await
                }
                ChunkSource::Render => {
                    let rendered = asm.render(lms, req, &bag, &mut pkg, chunk, progress).await;
                    feed.rendered(idx, rendered.as_ref().ok().copied()).await?;
                    rendered.map(|_| ())
                }
            }
        };
        if let Err(e) = step.await {
            pkg.abort().await;
            return Err(e);
        }
    }
    let Some(fingerprint) = asm.fingerprint else {
        pkg.abort().await;
        return Err(transient(anyhow!("an activity in chunks without chunks")));
    };
    finish_package(pkg, req, file_name, fingerprint.finish(), asm.contents).await
}

/// A chunk's `entries.bin` while it is read back, and where the next entry starts.
struct EntryData {
    file: BufReader<tokio::fs::File>,
    offset: u64,
}

/// The state of one assembly, across chunks.
struct Assembly {
    fingerprint: Option<FingerprintBuilder>,
    /// Record ids seen: a record read twice means records shifted between chunks.
    ids: HashSet<String>,
    /// Record names used, across chunks (each chunk made its names unique within itself).
    used: HashSet<String>,
    contents: Vec<ContentEntry>,
    done: u64,
    total: u64,
}

/// A progress that passes on cancellation only.
struct CancelOf<'a>(&'a dyn Progress);

impl Progress for CancelOf<'_> {
    fn report(&self, _done: u64, _total: u64) {}
    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}

/// Where a chunk the assembly renders itself goes: entries into the package, the end of each
/// record into the assembly's state, as a staged chunk's manifest line would.
struct Direct<'p> {
    pkg: &'p mut PackageWriter,
    asm: &'p mut Assembly,
    progress: &'p dyn Progress,
}

#[async_trait::async_trait]
impl EntrySink for Direct<'_> {
    async fn add_bytes(&mut self, path: &str, mtime: DateTime<Utc>, bytes: Bytes) -> anyhow::Result<()> {
        self.pkg.add_bytes(path, mtime, bytes).await
    }
    async fn add_reader(&mut self, path: &str, size: u64, mtime: DateTime<Utc>, reader: FileReader, cancelled: &(dyn Fn() -> bool + Sync))
        -> anyhow::Result<()> {
        self.pkg.add_reader(path, size, mtime, reader, cancelled).await
    }
    async fn add_metadata(&mut self, row: MetadataRow) -> anyhow::Result<()> {
        self.pkg.add_metadata(row).await
    }
    async fn end_record(&mut self, id: &str, modified_at: DateTime<Utc>, base: &str, content: &ContentEntry) -> anyhow::Result<()> {
        // Kept as it is (permanent or transient) through `from_package`.
        self.asm.record(id.to_string(), modified_at, base.to_string(), content.clone(), self.progress).map_err(anyhow::Error::from)
    }
}

impl Assembly {
    /// Renders the chunk's records straight into the package, as [`archive_chunk`] renders them
    /// into its folder; returns the number of records.
    async fn render(&mut self, lms: &dyn LmsSource, req: &ArchiveRequest, bag: &str, pkg: &mut PackageWriter, chunk: &ChunkSpan, progress: &dyn Progress)
        -> Result<u64, ArchiveError> {
        let activity = lms_activity(lms, req).await?;
        let persons = lms_persons(lms).await?;
        // The first chunk's time counts, as with staged chunks' headers.
        self.fingerprint.get_or_insert_with(|| FingerprintBuilder::new(req.activity.kind, activity.modified_at));
        let (first, records) = (chunk.first_record, chunk.records);
        // The run counts within the chunk; the assembly reports progress over all chunks.
        let within = CancelOf(progress);
        let mut run = Run::new(lms, req, bag, persons, &activity, &within);
        let mut sink = Direct { pkg, asm: self, progress };
        run.records(&mut sink, lms.records_from(&req.activity.lms_id, first, records), records).await?;
        let n = run.contents.len() as u64;
        if n != records {
            return Err(transient(anyhow!("the LMS changed while the activity was archived in chunks: records {first}.. held {n} records, not {records}")));
        }
        Ok(n)
    }

    /// The end of a record, staged or rendered here: checked against the other chunks' records,
    /// then counted in the fingerprint, the contents and the progress.
    fn record(&mut self, id: String, modified_at: DateTime<Utc>, base: String, content: ContentEntry, progress: &dyn Progress) -> Result<(), ArchiveError> {
        if !self.ids.insert(id.clone()) {
            return Err(transient(anyhow!("the LMS changed while the activity was archived in chunks: record {id} was read twice")));
        }
        if !self.used.insert(base.clone()) {
            // The direct path would have renamed it; the chunk could not know. The default
            // record pattern contains the record id, so real data never gets here.
            return Err(permanent(anyhow!("record {id}: its name {base} is also the name of another record of the activity")));
        }
        let fingerprint = self.fingerprint.as_mut().ok_or_else(|| transient(anyhow!("a chunk manifest without a header")))?;
        fingerprint.record(&id, modified_at);
        self.contents.push(content);
        self.done += 1;
        progress.report(self.done, self.total.max(self.done));
        Ok(())
    }

    async fn chunk(&mut self, pkg: &mut PackageWriter, req: &ArchiveRequest, dir: &Path, progress: &dyn Progress) -> Result<(), ArchiveError> {
        let open = |name: &'static str| async move {
            let file = tokio::fs::File::open(dir.join(name)).await.with_context(|| format!("opening {name} of {}", dir.display())).map_err(transient)?;
            Ok::<_, ArchiveError>(BufReader::with_capacity(STAGING_BUFFER, file))
        };
        let mut lines = open(MANIFEST).await?.lines();
        let mut data = EntryData { file: open(ENTRIES).await?, offset: 0 };
        while let Some(text) = lines.next_line().await.map_err(transient)? {
            if progress.cancelled() {
                return Err(ArchiveError::Cancelled);
            }
            let line: Line = serde_json::from_str(&text).with_context(|| format!("a bad line in the manifest of {}", dir.display())).map_err(transient)?;
            self.line(pkg, req, &mut data, line, progress).await.map_err(|e| match e {
                ArchiveError::Failed(f) => ArchiveError::Failed(f.context(format!("chunk {}", dir.display()))),
                cancelled => cancelled,
            })?;
        }
        Ok(())
    }

    async fn line(&mut self, pkg: &mut PackageWriter, req: &ArchiveRequest, data: &mut EntryData, line: Line, progress: &dyn Progress) -> Result<(), ArchiveError> {
        match line {
            // The first chunk's time counts: the direct path reads it once, before any record.
            Line::Header { activity_modified_at } => {
                self.fingerprint.get_or_insert_with(|| FingerprintBuilder::new(req.activity.kind, activity_modified_at));
            }
            Line::Entry { path, mtime, offset, size, inline } => {
                if offset != data.offset {
                    return Err(transient(anyhow!("{path}: at {offset} of {ENTRIES} in the manifest, the entries before it end at {}", data.offset)));
                }
                // Bounded by `size`: a short file fails below (the package checks the size), and
                // a streamed entry is never in memory as a whole.
                let mut reader = (&mut data.file).take(size);
                if inline {
                    // Rendered reports: the direct path holds them in memory too.
                    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                    reader.read_to_end(&mut bytes).await.with_context(|| format!("reading {path} from {ENTRIES}")).map_err(transient)?;
                    if bytes.len() as u64 != size {
                        return Err(transient(anyhow!("{path}: {ENTRIES} ends within it")));
                    }
                    pkg.add_bytes(&path, mtime, bytes.into()).await.map_err(from_package)?;
                } else {
                    pkg.add_reader(&path, size, mtime, reader, &|| progress.cancelled()).await.map_err(from_package)?;
                }
                data.offset += size;
            }
            Line::Meta { mut row, grade_bits, max_grade_bits } => {
                row.grade = grade_bits.map(f64::from_bits);
                row.max_grade = f64::from_bits(max_grade_bits);
                pkg.add_metadata(row).await.map_err(from_package)?;
            }
            Line::Record { id, modified_at, base, content } => self.record(id, modified_at, base, content, progress)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_chunk_of_the_current_layout_is_complete() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!chunk_complete(tmp.path()), "no done.json");
        // What the first layout (a file per entry) wrote: its manifest names files, not offsets.
        std::fs::write(tmp.path().join(DONE), br#"{"records":7}"#).unwrap();
        assert!(!chunk_complete(tmp.path()), "an older layout is rendered again");
        std::fs::write(tmp.path().join(DONE), serde_json::to_vec(&Done { records: 7, layout: LAYOUT }).unwrap()).unwrap();
        assert!(chunk_complete(tmp.path()));
    }
}
