//! BagIt packages (RFC 8493, BagIt 1.0) in ZIP, tar.gz or tar.zst, written by streaming.
//!
//! A [`PackageWriter`] runs a pipeline of three threads, fed from the async side through a
//! bounded channel, so that no heavy work runs on the async runtime and memory stays flat
//! whatever the size of the activity:
//!
//! ```text
//! async driver --(records, file chunks)--> bag writer: SHA-256 + SHA-512 of every file, manifest and
//!     metadata rows spooled to disk --> container writer: ZIP / tar+gzip / tar+zstd --> sink: SHA-256
//!     of the container bytes, written to `<file name>.part`; renamed to `<file name>` when complete.
//! ```
//!
//! Small entries and metadata rows cross each channel in batches, streamed files in chunks.
//! Every channel is bounded (at most a few MiB in flight). What grows with the activity is on disk
//! (spooled manifests and metadata rows) — except ZIP's central directory, which the ZIP format
//! keeps until the end (about 100 bytes per entry).
//!
//! The package layout is described in `README.txt` inside each package (see
//! [`crate::engine::drivers`]) and the report schema in `REPORT_SCHEMA.md` beside this file.
mod bag;
mod container;

use std::{
    path::{Path, PathBuf},
    sync::mpsc::sync_channel,
    thread::JoinHandle,
};

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::domain::ArchiveFormat;

pub use bag::manifest_path;

/// Size of the chunks files are streamed in.
pub const CHUNK: usize = 64 * 1024;
/// Small entries and metadata rows travel between the pipeline's threads in batches of up to this
/// many bytes (as much as one chunk of a streamed file, so the bounds in flight stay the same):
/// a message per entry meant a thread wake-up per few KiB.
const BATCH_BYTES: usize = CHUNK;
/// What a metadata row counts for in a batch (a row of `metadata.csv` and `.json` is about this).
const ROW_BYTES: usize = 512;
/// How often (in bytes) a long file copy checks for cancellation.
const CANCEL_CHECK_BYTES: u64 = 16 * 1024 * 1024;

/// The JSON report schema, documented for readers of the packages.
pub const REPORT_SCHEMA_DOC: &str = include_str!("REPORT_SCHEMA.md");

/// The file name extension of a container format, with its dot.
/// The version of the report schemas (quiz attempt, assignment submission, metadata), described
/// in `REPORT_SCHEMA.md`.
pub const SCHEMA_VERSION: &str = "1.1";

pub fn extension(format: ArchiveFormat) -> &'static str {
    match format {
        ArchiveFormat::Zip => ".zip",
        ArchiveFormat::TarGz => ".tar.gz",
        ArchiveFormat::TarZst => ".tar.zst",
    }
}

/// The media type of a container format.
pub fn media_type(format: ArchiveFormat) -> &'static str {
    match format {
        ArchiveFormat::Zip => "application/zip",
        ArchiveFormat::TarGz => "application/gzip",
        ArchiveFormat::TarZst => "application/zstd",
    }
}

/// The error a copy returns when the job was cancelled meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// Everything the package needs to know up front.
#[derive(Debug, Clone)]
pub struct PackageSpec {
    pub out_dir: PathBuf,
    /// The final file name, with extension.
    pub file_name: String,
    /// The bag's folder inside the container.
    pub bag_name: String,
    pub format: ArchiveFormat,
    /// The recorded archive time: the mtime of tag and metadata files.
    pub created_at: DateTime<Utc>,
    /// The `README.txt` tag file.
    pub readme: String,
    /// More tag files (name in the bag folder, text), written after `README.txt`.
    pub tag_files: Vec<(String, String)>,
    /// Labels of `bag-info.txt` (`Payload-Oxum` is added).
    pub bag_info: Vec<(String, String)>,
    /// The `package` object of `data/metadata.json`.
    pub metadata_header: serde_json::Value,
}

/// The columns of `data/metadata.csv`; the keys of a `data/metadata.json` record are the same.
pub const METADATA_COLUMNS: [&str; 19] = [
    "recordKind",
    "recordId",
    "personLmsId",
    "username",
    "firstName",
    "lastName",
    "idNumber",
    "attemptNumber",
    "state",
    "startedAt",
    "finishedAt",
    "modifiedAt",
    "durationSeconds",
    "grade",
    "maxGrade",
    "gradedAt",
    "fileCount",
    "reportJson",
    "reportHtml",
];

/// One row of `data/metadata.csv` / record of `data/metadata.json`: one attempt or submission.
/// Times are RFC 3339 UTC; paths are relative to the bag folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataRow {
    /// `ATTEMPT` or `SUBMISSION`.
    #[serde(deserialize_with = "record_kind")]
    pub record_kind: RecordKind,
    pub record_id: String,
    pub person_lms_id: String,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub id_number: Option<String>,
    pub attempt_number: Option<u32>,
    /// Quiz attempt state or submission status, as the LMS names it.
    pub state: String,
    pub started_at: Option<String>,
    /// Attempt finish time or submission time.
    pub finished_at: Option<String>,
    pub modified_at: String,
    pub duration_seconds: Option<i64>,
    pub grade: Option<f64>,
    pub max_grade: f64,
    pub graded_at: Option<String>,
    pub file_count: u32,
    pub report_json: String,
    /// Empty when the report options leave HTML pages out.
    pub report_html: Option<String>,
}

/// `ATTEMPT` or `SUBMISSION`. An alias, so that serde does not take the field for a string
/// borrowed from the input (it is read back through [`record_kind`]).
pub type RecordKind = &'static str;

/// Reads a record kind back (chunks of a large activity keep their rows on disk until assembly).
pub fn record_kind<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    match String::deserialize(d)?.as_str() {
        "ATTEMPT" => Ok("ATTEMPT"),
        "SUBMISSION" => Ok("SUBMISSION"),
        other => Err(serde::de::Error::custom(format!("unknown record kind {other}"))),
    }
}

impl MetadataRow {
    fn csv_record(&self) -> [String; 19] {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        let n = |v: Option<f64>| v.map(|g| g.to_string()).unwrap_or_default();
        [
            self.record_kind.to_string(),
            self.record_id.clone(),
            self.person_lms_id.clone(),
            o(&self.username),
            o(&self.first_name),
            o(&self.last_name),
            o(&self.id_number),
            self.attempt_number.map(|n| n.to_string()).unwrap_or_default(),
            self.state.clone(),
            o(&self.started_at),
            o(&self.finished_at),
            self.modified_at.clone(),
            self.duration_seconds.map(|d| d.to_string()).unwrap_or_default(),
            n(self.grade),
            self.max_grade.to_string(),
            o(&self.graded_at),
            self.file_count.to_string(),
            self.report_json.clone(),
            o(&self.report_html),
        ]
    }
}

/// A finished package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub path: PathBuf,
    pub size: u64,
    /// SHA-256 (hex) of the package file, computed while it was written.
    pub sha256: String,
    pub payload_files: u64,
    pub payload_bytes: u64,
}

struct Threads {
    bag: JoinHandle<anyhow::Result<bag::Oxum>>,
    container: JoinHandle<anyhow::Result<()>>,
    sink: JoinHandle<anyhow::Result<(u64, String)>>,
}

impl Threads {
    /// Waits for all three; the first error downstream is the cause of the others.
    fn join(self) -> anyhow::Result<(bag::Oxum, u64, String)> {
        let panicked = |what: &str| anyhow::anyhow!("the package {what} thread panicked");
        let bag = self.bag.join().map_err(|_| panicked("bag"));
        let container = self.container.join().map_err(|_| panicked("container"));
        let sink = self.sink.join().map_err(|_| panicked("sink"));
        let (size, sha) = sink??;
        container??;
        let oxum = bag??;
        Ok((oxum, size, sha))
    }
}

/// Writes one package; see the module doc. Dropping it before [`PackageWriter::finish`] abandons
/// the package and removes its staging files.
pub struct PackageWriter {
    tx: Option<tokio::sync::mpsc::Sender<bag::In>>,
    /// Small entries and rows not sent yet, and their bytes (see [`BATCH_BYTES`]).
    pending: Vec<bag::In>,
    pending_bytes: usize,
    threads: Option<Threads>,
    staging: PathBuf,
    spool: PathBuf,
    final_path: PathBuf,
    /// Set when the package has its final name; until then, dropping removes the staging files.
    done: bool,
}

fn remove_quietly(staging: &Path, spool: &Path) {
    let _ = std::fs::remove_file(staging);
    let _ = std::fs::remove_dir_all(spool);
}

impl PackageWriter {
    /// Starts a package in `spec.out_dir` under the staging name `<file name>.part` (replacing a
    /// leftover of an earlier run), with its spool folder `<file name>.spool`.
    pub fn create(spec: PackageSpec) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&spec.out_dir).with_context(|| format!("creating {}", spec.out_dir.display()))?;
        let staging = spec.out_dir.join(format!("{}.part", spec.file_name));
        let spool = spec.out_dir.join(format!("{}.spool", spec.file_name));
        let final_path = spec.out_dir.join(&spec.file_name);
        let _ = std::fs::remove_dir_all(&spool);
        std::fs::create_dir_all(&spool).with_context(|| format!("creating {}", spool.display()))?;
        let file = std::fs::File::create(&staging).with_context(|| format!("creating {}", staging.display()))?;

        let (tx, rx) = tokio::sync::mpsc::channel(32);
        let (out_tx, out_rx) = sync_channel(32);
        let (sink_tx, sink_rx) = sync_channel(8);
        let format = spec.format;
        let spawn = |name: &str| std::thread::Builder::new().name(format!("package-{name}"));
        let sink = spawn("sink").spawn(move || container::run_sink(sink_rx, file))?;
        let container =
            spawn("container").spawn(move || container::run_container(format, out_rx, container::PipeWriter::new(sink_tx)))?;
        let spool_dir = spool.clone();
        let bag = spawn("bag").spawn(move || bag::run_bag(&spec, spool_dir, rx, out_tx))?;
        Ok(Self {
            tx: Some(tx),
            pending: Vec::new(),
            pending_bytes: 0,
            threads: Some(Threads { bag, container, sink }),
            staging,
            spool,
            final_path,
            done: false,
        })
    }

    /// The path the package will have when finished.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    async fn send(&mut self, msg: bag::In) -> anyhow::Result<()> {
        let Some(tx) = &self.tx else { anyhow::bail!("package already closed") };
        if tx.send(msg).await.is_ok() {
            return Ok(());
        }
        // A thread stopped: its error is the one to report.
        self.tx = None;
        let threads = self.threads.take();
        let err = match threads {
            Some(t) => tokio::task::spawn_blocking(move || t.join()).await?.err(),
            None => None,
        };
        Err(err.unwrap_or_else(|| anyhow::anyhow!("package writing stopped")))
    }

    /// Queues messages of about `bytes` bytes behind the pending ones, sending those first when
    /// the batch would grow beyond [`BATCH_BYTES`].
    async fn queue(&mut self, msgs: impl IntoIterator<Item = bag::In>, bytes: usize) -> anyhow::Result<()> {
        if self.pending_bytes + bytes > BATCH_BYTES {
            self.flush().await?;
        }
        self.pending.extend(msgs);
        self.pending_bytes += bytes;
        Ok(())
    }

    /// Sends the pending messages, as one.
    async fn flush(&mut self) -> anyhow::Result<()> {
        let msg = match self.pending.len() {
            0 => return Ok(()),
            1 => self.pending.pop().expect("one message"),
            _ => bag::In::Batch(std::mem::take(&mut self.pending)),
        };
        self.pending_bytes = 0;
        self.send(msg).await
    }

    /// Adds a payload file from memory. `path` is relative to the bag and starts with `data/`.
    pub async fn add_bytes(&mut self, path: &str, mtime: DateTime<Utc>, bytes: Bytes) -> anyhow::Result<()> {
        let size = bytes.len();
        self.queue([bag::In::Payload { path: path.to_string(), size: size as u64, mtime }, bag::In::Data(bytes), bag::In::End], size).await
    }

    /// Streams a payload file of exactly `size` bytes (anything else is an error). Checks
    /// `cancelled` every 16 MiB and fails with [`Cancelled`] when it says so.
    pub async fn add_reader<R: AsyncRead + Unpin>(
        &mut self,
        path: &str,
        size: u64,
        mtime: DateTime<Utc>,
        mut reader: R,
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> anyhow::Result<()> {
        if size <= CHUNK as u64 {
            // A small file crosses with the batch, like a rendered entry: sent on its own it
            // cost three hand-offs (and wake-ups of the bag thread) for a few KiB. The bag
            // thread receives exactly what streaming it would have sent: one `Data` of it all.
            // Reads until the end or past `size` (the buffer grows): more than announced fails.
            let mut buf = BytesMut::with_capacity(size as usize);
            while (buf.len() as u64) <= size {
                if reader.read_buf(&mut buf).await.with_context(|| format!("reading {path} from the LMS"))? == 0 {
                    break;
                }
            }
            let total = buf.len() as u64;
            anyhow::ensure!(total <= size, "{path}: the LMS sent more than the {size} bytes it announced");
            anyhow::ensure!(total == size, "{path}: the LMS sent {total} bytes, it announced {size}");
            return self.add_bytes(path, mtime, buf.freeze()).await;
        }
        self.flush().await?;
        self.send(bag::In::Payload { path: path.to_string(), size, mtime }).await?;
        let mut total = 0u64;
        let mut next_check = CANCEL_CHECK_BYTES;
        loop {
            let mut buf = BytesMut::with_capacity(CHUNK);
            while buf.len() < CHUNK {
                if reader.read_buf(&mut buf).await.with_context(|| format!("reading {path} from the LMS"))? == 0 {
                    break;
                }
            }
            if buf.is_empty() {
                break;
            }
            total += buf.len() as u64;
            anyhow::ensure!(total <= size, "{path}: the LMS sent more than the {size} bytes it announced");
            self.send(bag::In::Data(buf.freeze())).await?;
            if total >= next_check {
                next_check += CANCEL_CHECK_BYTES;
                if cancelled() {
                    return Err(Cancelled.into());
                }
            }
        }
        anyhow::ensure!(total == size, "{path}: the LMS sent {total} bytes, it announced {size}");
        self.send(bag::In::End).await
    }

    /// Adds a row to `data/metadata.csv` and `data/metadata.json`.
    pub async fn add_metadata(&mut self, row: MetadataRow) -> anyhow::Result<()> {
        self.queue([bag::In::Meta(Box::new(row))], ROW_BYTES).await
    }

    /// Writes the closing files (`bag_info` labels are appended to `bag-info.txt`), waits for the
    /// package to be on disk and renames it to its final name.
    pub async fn finish(mut self, bag_info: Vec<(String, String)>) -> anyhow::Result<Finished> {
        self.flush().await?;
        self.send(bag::In::Finish(bag_info)).await?;
        self.tx = None;
        let threads = self.threads.take().context("package already closed")?;
        let (staging, final_path, spool) = (self.staging.clone(), self.final_path.clone(), self.spool.clone());
        let (oxum, size, sha256) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let r = threads.join()?;
            std::fs::rename(&staging, &final_path).with_context(|| format!("renaming to {}", final_path.display()))?;
            if let Some(dir) = final_path.parent() {
                // Make the rename durable; not every platform can open a directory.
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            let _ = std::fs::remove_dir_all(&spool);
            Ok(r)
        })
        .await??;
        self.done = true;
        Ok(Finished { path: self.final_path.clone(), size, sha256, payload_files: oxum.files, payload_bytes: oxum.bytes })
    }

    /// Abandons the package: stops the threads and removes the staging files.
    pub async fn abort(mut self) {
        self.tx = None;
        if let Some(t) = self.threads.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        remove_quietly(&self.staging, &self.spool);
    }
}

impl Drop for PackageWriter {
    fn drop(&mut self) {
        if !self.done {
            // Not finished: closing the channel stops the threads; they never finish the file.
            self.tx = None;
            remove_quietly(&self.staging, &self.spool);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_columns_match_the_json_keys() {
        let row = MetadataRow {
            record_kind: "ATTEMPT",
            record_id: "1".into(),
            person_lms_id: "2".into(),
            username: None,
            first_name: None,
            last_name: None,
            id_number: None,
            attempt_number: Some(1),
            state: "finished".into(),
            started_at: None,
            finished_at: None,
            modified_at: "t".into(),
            duration_seconds: None,
            grade: Some(1.5),
            max_grade: 2.0,
            graded_at: None,
            file_count: 0,
            report_json: "a".into(),
            report_html: Some("b".into()),
        };
        let v = serde_json::to_value(&row).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = METADATA_COLUMNS.to_vec();
        let mut got = keys.clone();
        expected.sort();
        got.sort();
        assert_eq!(got, expected);
        assert_eq!(row.csv_record()[13], "1.5");
    }

    /// Small files are read whole and large ones streamed: either way a file is exactly the size
    /// the LMS announced, or the package fails.
    #[tokio::test]
    async fn a_file_of_another_size_than_announced_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 1, 2, 3, 4, 5).unwrap();
        let spec = |name: &str| PackageSpec {
            out_dir: tmp.path().to_path_buf(),
            file_name: format!("{name}.tar.zst"),
            bag_name: name.to_string(),
            format: ArchiveFormat::TarZst,
            created_at: at,
            readme: "r".into(),
            tag_files: Vec::new(),
            bag_info: Vec::new(),
            metadata_header: serde_json::json!({}),
        };
        let big = CHUNK + 10;
        for (i, (announced, sent)) in [(10, 10), (10, 9), (10, 11), (0, 1), (big, big), (big, big - 1), (big, big + 1)].into_iter().enumerate() {
            let mut pkg = PackageWriter::create(spec(&format!("p{i}"))).unwrap();
            let bytes = vec![b'x'; sent];
            let result = pkg.add_reader("data/f.txt", announced as u64, at, &bytes[..], &|| false).await;
            if announced == sent {
                result.unwrap();
                pkg.finish(Vec::new()).await.unwrap();
            } else {
                let e = result.expect_err("another size than announced").to_string();
                assert!(e.contains("data/f.txt") && e.contains("announced"), "{e}");
                pkg.abort().await;
            }
        }
    }

    #[test]
    fn formats_have_extensions_and_media_types() {
        assert_eq!(extension(ArchiveFormat::TarZst), ".tar.zst");
        assert_eq!(media_type(ArchiveFormat::TarGz), "application/gzip");
        assert_eq!(media_type(ArchiveFormat::Zip), "application/zip");
    }
}
