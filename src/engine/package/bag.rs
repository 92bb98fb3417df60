//! The bag writer (RFC 8493, BagIt 1.0): hashes every payload file (SHA-256 and SHA-512) on its way
//! to the container, spools the manifest lines and the metadata rows to private files so that
//! memory stays flat, and at the end writes `data/metadata.*`, `bag-info.txt`, the manifests and the
//! tag manifests.
//!
//! Entry order (fixed): `bagit.txt`, `README.txt`, further tag files (`report-schema.md`), the payload in the order it was added,
//! `data/metadata.csv`, `data/metadata.json`, `bag-info.txt`, `manifest-sha256.txt`,
//! `manifest-sha512.txt`, `tagmanifest-sha256.txt`, `tagmanifest-sha512.txt`.
use std::{
    fs::File,
    io::{BufWriter, Read, Write},
    path::{Path, PathBuf},
    sync::mpsc::SyncSender,
};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256, Sha512};

use super::{container::Out, MetadataRow, PackageSpec, BATCH_BYTES, CHUNK, METADATA_COLUMNS};

/// What the async side sends to the bag writer.
pub(super) enum In {
    /// A payload file (path relative to the bag, under `data/`) of exactly `size` bytes follows as
    /// `Data` chunks, closed by `End`.
    Payload { path: String, size: u64, mtime: DateTime<Utc> },
    Data(Bytes),
    End,
    Meta(Box<MetadataRow>),
    /// Several of the above, in order (no `Batch`, no `Finish`): small entries and rows cross to
    /// this thread together, since each hand-off can cost a wake-up of a sleeping thread.
    Batch(Vec<In>),
    /// Everything is added: write the closing files. The labels are added to `bag-info.txt`.
    Finish(Vec<(String, String)>),
}

/// What goes to the container writer, gathered into batches of up to [`BATCH_BYTES`] of data
/// (bounded like a single chunk of a streamed file) and sent when full or [`Outbox::flush`]ed.
struct Outbox {
    tx: SyncSender<Out>,
    pending: Vec<Out>,
    bytes: usize,
}

impl Outbox {
    fn send(&mut self, m: Out) -> anyhow::Result<()> {
        let size = match &m {
            Out::Data(b) => b.len(),
            _ => 0,
        };
        if self.bytes + size > BATCH_BYTES {
            self.flush()?;
        }
        self.pending.push(m);
        self.bytes += size;
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let m = match self.pending.len() {
            0 => return Ok(()),
            1 => self.pending.pop().expect("one message"),
            _ => Out::Batch(std::mem::take(&mut self.pending)),
        };
        self.bytes = 0;
        self.tx.send(m).map_err(|_| anyhow::anyhow!("the container writer stopped"))
    }
}

/// Payload-Oxum figures.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Oxum {
    pub bytes: u64,
    pub files: u64,
}

struct Current {
    path: String,
    size: u64,
    written: u64,
    sha256: Sha256,
    sha512: Sha512,
}

struct Bag {
    out: Outbox,
    name: String,
    created_at: DateTime<Utc>,
    current: Option<Current>,
    manifest256: BufWriter<File>,
    manifest512: BufWriter<File>,
    csv: csv::Writer<BufWriter<File>>,
    json: BufWriter<File>,
    rows: u64,
    spool: PathBuf,
    /// (path, sha256, sha512) of every tag file written so far.
    tags: Vec<(String, String, String)>,
    oxum: Oxum,
}

/// RFC 8493 §2.1.3: in manifests, CR, LF and `%` in file paths are percent-encoded.
pub fn manifest_path(path: &str) -> String {
    path.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A bag-info value on one line (labels are ours; values come from users and the LMS).
fn info_value(v: &str) -> String {
    v.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_string()
}

/// A relative path of normal components only: nothing can point outside the bag.
fn check_relative(path: &str) -> anyhow::Result<()> {
    ensure!(
        !path.contains('\\') && path.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.chars().any(char::is_control)),
        "unsafe path in package: {path:?}"
    );
    Ok(())
}

impl Bag {
    fn begin(&mut self, path: &str, size: u64, mtime: DateTime<Utc>) -> anyhow::Result<()> {
        check_relative(path)?;
        ensure!(self.current.is_none(), "package entry {path} started inside another");
        self.out.send(Out::Begin { path: format!("{}/{path}", self.name), size, mtime })?;
        self.current = Some(Current { path: path.to_string(), size, written: 0, sha256: Sha256::new(), sha512: Sha512::new() });
        Ok(())
    }

    fn data(&mut self, b: Bytes) -> anyhow::Result<()> {
        let Some(c) = self.current.as_mut() else { bail!("package data outside an entry") };
        c.written += b.len() as u64;
        ensure!(c.written <= c.size, "{}: more bytes than the declared {}", c.path, c.size);
        c.sha256.update(&b);
        c.sha512.update(&b);
        self.out.send(Out::Data(b))
    }

    /// Closes the current entry; returns (path, sha256, sha512).
    fn end(&mut self) -> anyhow::Result<(String, String, String)> {
        let Some(c) = self.current.take() else { bail!("package entry closed twice") };
        ensure!(c.written == c.size, "{}: {} bytes instead of the declared {}", c.path, c.written, c.size);
        self.out.send(Out::End)?;
        Ok((c.path, hex::encode(c.sha256.finalize()), hex::encode(c.sha512.finalize())))
    }

    fn end_payload(&mut self) -> anyhow::Result<()> {
        let size = self.current.as_ref().map_or(0, |c| c.size);
        let (path, s256, s512) = self.end()?;
        ensure!(path.starts_with("data/"), "payload outside data/: {path}");
        let p = manifest_path(&path);
        writeln!(self.manifest256, "{s256}  {p}")?;
        writeln!(self.manifest512, "{s512}  {p}")?;
        self.oxum.bytes += size;
        self.oxum.files += 1;
        Ok(())
    }

    fn bytes(&mut self, path: &str, mtime: DateTime<Utc>, bytes: Bytes) -> anyhow::Result<(String, String, String)> {
        self.begin(path, bytes.len() as u64, mtime)?;
        let mut rest = bytes;
        while !rest.is_empty() {
            let chunk = rest.split_to(rest.len().min(CHUNK));
            self.data(chunk)?;
        }
        self.end()
    }

    fn file(&mut self, path: &str, mtime: DateTime<Utc>, file: &Path) -> anyhow::Result<(String, String, String)> {
        let mut f = File::open(file).with_context(|| format!("opening spool file {}", file.display()))?;
        let size = f.metadata()?.len();
        self.begin(path, size, mtime)?;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            self.data(Bytes::from(buf))?;
        }
        self.end()
    }

    fn tag_bytes(&mut self, path: &str, text: String) -> anyhow::Result<()> {
        let t = self.bytes(path, self.created_at, Bytes::from(text))?;
        self.tags.push(t);
        Ok(())
    }

    fn tag_file(&mut self, path: &str, file: &Path) -> anyhow::Result<()> {
        let t = self.file(path, self.created_at, file)?;
        self.tags.push(t);
        Ok(())
    }

    fn meta(&mut self, row: &MetadataRow) -> anyhow::Result<()> {
        self.csv.write_record(row.csv_record())?;
        self.json.write_all(if self.rows == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut self.json, row)?;
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self, info: &[(String, String)], spec_info: &[(String, String)]) -> anyhow::Result<Oxum> {
        ensure!(self.current.is_none(), "package finished inside an entry");
        let spool = self.spool.clone();
        self.csv.flush()?;
        self.json.write_all(b"\n]\n}\n")?;
        self.json.flush()?;
        let at = self.created_at;
        for (name, file) in [("data/metadata.csv", "metadata.csv"), ("data/metadata.json", "metadata.json")] {
            self.begin_file_payload(name, at, &spool.join(file))?;
        }
        self.manifest256.flush()?;
        self.manifest512.flush()?;

        let mut bag_info = String::new();
        for (label, value) in spec_info.iter().chain(info) {
            bag_info.push_str(&format!("{label}: {}\n", info_value(value)));
        }
        bag_info.push_str(&format!("Payload-Oxum: {}.{}\n", self.oxum.bytes, self.oxum.files));
        self.tag_bytes("bag-info.txt", bag_info)?;
        self.tag_file("manifest-sha256.txt", &spool.join("manifest-sha256.txt"))?;
        self.tag_file("manifest-sha512.txt", &spool.join("manifest-sha512.txt"))?;
        let mut t256 = String::new();
        let mut t512 = String::new();
        for (path, s256, s512) in &self.tags {
            let p = manifest_path(path);
            t256.push_str(&format!("{s256}  {p}\n"));
            t512.push_str(&format!("{s512}  {p}\n"));
        }
        self.bytes("tagmanifest-sha256.txt", at, Bytes::from(t256))?;
        self.bytes("tagmanifest-sha512.txt", at, Bytes::from(t512))?;
        self.out.send(Out::Finish)?;
        self.out.flush()?;
        Ok(self.oxum)
    }

    fn begin_file_payload(&mut self, path: &str, mtime: DateTime<Utc>, file: &Path) -> anyhow::Result<()> {
        let size = File::open(file)?.metadata()?.len();
        let (p, s256, s512) = self.file(path, mtime, file)?;
        let m = manifest_path(&p);
        writeln!(self.manifest256, "{s256}  {m}")?;
        writeln!(self.manifest512, "{s512}  {m}")?;
        self.oxum.bytes += size;
        self.oxum.files += 1;
        Ok(())
    }
}

/// Runs the bag writer until `Finish` (returns the payload figures) or until the async side goes
/// away (returns an error; nothing is finished).
pub(super) fn run_bag(
    spec: &PackageSpec,
    spool: PathBuf,
    mut rx: tokio::sync::mpsc::Receiver<In>,
    out: SyncSender<Out>,
) -> anyhow::Result<Oxum> {
    let create = |name: &str| -> anyhow::Result<BufWriter<File>> {
        let p = spool.join(name);
        Ok(BufWriter::new(File::create(&p).with_context(|| format!("creating spool file {}", p.display()))?))
    };
    let mut csv = csv::WriterBuilder::new().has_headers(false).from_writer(create("metadata.csv")?);
    csv.write_record(METADATA_COLUMNS)?;
    let mut json = create("metadata.json")?;
    write!(json, "{{\n\"schema\": \"archiving-manager.metadata\",\n\"schemaVersion\": \"{}\",\n\"package\": ", super::SCHEMA_VERSION)?;
    serde_json::to_writer(&mut json, &spec.metadata_header)?;
    json.write_all(b",\n\"records\": [")?;
    let mut bag = Bag {
        out: Outbox { tx: out, pending: Vec::new(), bytes: 0 },
        name: spec.bag_name.clone(),
        created_at: spec.created_at,
        current: None,
        manifest256: create("manifest-sha256.txt")?,
        manifest512: create("manifest-sha512.txt")?,
        csv,
        json,
        rows: 0,
        spool: spool.clone(),
        tags: Vec::new(),
        oxum: Oxum::default(),
    };
    bag.tag_bytes("bagit.txt", "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n".into())?;
    bag.tag_bytes("README.txt", spec.readme.clone())?;
    for (name, text) in &spec.tag_files {
        ensure!(!name.contains('/') && !name.starts_with("data"), "tag file {name} must be in the bag folder");
        bag.tag_bytes(name, text.clone())?;
    }
    bag.out.flush()?;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            In::Finish(info) => return bag.finish(&info, &spec.bag_info),
            In::Batch(batch) => batch.into_iter().try_for_each(|m| bag.step(m))?,
            m => bag.step(m)?,
        }
        // Before waiting for more: the container writer must not wait for what is here.
        bag.out.flush()?;
    }
    bail!("package writing was abandoned")
}

impl Bag {
    fn step(&mut self, msg: In) -> anyhow::Result<()> {
        match msg {
            In::Payload { path, size, mtime } => {
                ensure!(path.starts_with("data/"), "payload outside data/: {path}");
                self.begin(&path, size, mtime)
            }
            In::Data(b) => self.data(b),
            In::End => self.end_payload(),
            In::Meta(row) => self.meta(&row),
            In::Batch(_) | In::Finish(_) => bail!("a batch of package entries holds a batch or the end"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_are_percent_encoded() {
        assert_eq!(manifest_path("data/a%b\nc\rd"), "data/a%25b%0Ac%0Dd");
        assert_eq!(manifest_path("data/plain.txt"), "data/plain.txt");
    }

    #[test]
    fn only_plain_relative_paths_are_accepted() {
        assert!(check_relative("data/reports/x.json").is_ok());
        for bad in ["", "/etc/passwd", "data/../x", "./data/x", "data\\x", "data//x", "data/x/", "data/x/..", "data/\nx"] {
            assert!(check_relative(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bag_info_values_stay_on_one_line() {
        assert_eq!(info_value(" a\nb\rc\t "), "a b c");
    }
}
