//! The container formats (ZIP, tar.gz, tar.zst), written deterministically and without seeking, and
//! the sink that hashes the container bytes while writing them to the staging file.
//!
//! Determinism: entries are written in the order they arrive; every entry has mode 0644, uid/gid 0,
//! no user/group names, the mtime it is given, and no extra fields. ZIP: deflate level 6, DOS time
//! only (no extended timestamp field), "made by" Unix, data descriptors (streaming). gzip: level 6,
//! no file name, mtime 0, OS "unknown". zstd: level 3, single-threaded, with a content checksum.
use std::{
    collections::VecDeque,
    fs::File,
    io::{self, Read, Write},
    sync::mpsc::{Receiver, RecvError, SyncSender},
};

use anyhow::{bail, Context};
use bytes::Bytes;
use chrono::{DateTime, Datelike, Timelike, Utc};
use sha2::{Digest, Sha256};

use crate::domain::ArchiveFormat;

/// Size of the buffers handed from the container writer to the sink.
const SINK_BUFFER: usize = 256 * 1024;

/// What the bag writer sends to the container writer.
pub(super) enum Out {
    /// A new entry of exactly `size` bytes follows as `Data` chunks, closed by `End`.
    Begin { path: String, size: u64, mtime: DateTime<Utc> },
    Data(Bytes),
    End,
    /// All entries are written: finish the container. Without it the container is abandoned.
    Finish,
    /// Several of the above, in order (never a `Batch`): small entries cross to this thread
    /// together, since each hand-off can cost a wake-up of a sleeping thread.
    Batch(Vec<Out>),
}

/// The container writer's end of the channel: gives the messages one by one, batches unpacked.
struct Inbox {
    rx: Receiver<Out>,
    queue: VecDeque<Out>,
}

impl Inbox {
    fn new(rx: Receiver<Out>) -> Self {
        Self { rx, queue: VecDeque::new() }
    }

    fn recv(&mut self) -> Result<Out, RecvError> {
        loop {
            if let Some(m) = self.queue.pop_front() {
                return Ok(m);
            }
            match self.rx.recv()? {
                Out::Batch(batch) => self.queue.extend(batch),
                m => return Ok(m),
            }
        }
    }
}

/// What the container writer sends to the sink.
pub(super) enum SinkMsg {
    Data(Vec<u8>),
    Done,
}

/// A `Write` that hands full buffers to the sink thread.
pub(super) struct PipeWriter {
    tx: SyncSender<SinkMsg>,
    buf: Vec<u8>,
}

impl PipeWriter {
    pub(super) fn new(tx: SyncSender<SinkMsg>) -> Self {
        Self { tx, buf: Vec::with_capacity(SINK_BUFFER) }
    }

    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(SINK_BUFFER));
        self.tx.send(SinkMsg::Data(full)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the package sink stopped"))
    }

    /// Sends what is buffered and tells the sink that the container is complete.
    fn finish(mut self) -> io::Result<()> {
        self.send_buf()?;
        self.tx.send(SinkMsg::Done).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the package sink stopped"))
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = SINK_BUFFER - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == SINK_BUFFER {
            self.send_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How many bytes of the package are written between two requests to start writing them to disk.
const WRITEBACK_EVERY: u64 = 8 * 1024 * 1024;

/// Has the kernel start writing the package to disk while it is built. Left alone, it writes
/// nothing back before the final sync (the page cache takes gigabytes before it writes back on
/// its own, or 30 s), which then waits for the whole package at once, after all the CPU work:
/// little for the 14–42 MB packages of the whole-job bench, seconds for the 1 GB packages of the
/// packaging bench (the development machine syncs about 250 MB/s). Only a start: the final
/// `sync_all` is what makes the package durable.
struct Writeback {
    requested: u64,
}

impl Writeback {
    fn written(&mut self, file: &File, size: u64) {
        if size - self.requested < WRITEBACK_EVERY {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let (offset, len) = (self.requested as libc::off64_t, (size - self.requested) as libc::off64_t);
            // SAFETY: the descriptor belongs to `file`, open while it is borrowed; the call only
            // starts the write-back of a byte range of it and touches no memory of ours. A failure
            // only means no early start, so it is ignored.
            let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
        }
        #[cfg(not(target_os = "linux"))]
        let _ = file;
        self.requested = size;
    }
}

/// Writes the container bytes to the staging file and hashes them on the way: returns the size
/// and SHA-256 (hex) of the package. Syncs the file to disk before reporting success.
pub(super) fn run_sink(rx: Receiver<SinkMsg>, mut file: File) -> anyhow::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut writeback = Writeback { requested: 0 };
    loop {
        match rx.recv() {
            Ok(SinkMsg::Data(buf)) => {
                hasher.update(&buf);
                file.write_all(&buf).context("writing the package file")?;
                size += buf.len() as u64;
                writeback.written(&file, size);
            }
            Ok(SinkMsg::Done) => break,
            Err(_) => bail!("package writing was abandoned"),
        }
    }
    file.sync_all().context("syncing the package file")?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// Reads one entry's `Data` chunks up to its `End`, checking the declared size.
struct EntryReader<'a> {
    rx: &'a mut Inbox,
    path: &'a str,
    remaining: u64,
    chunk: Bytes,
    ended: bool,
}

impl EntryReader<'_> {
    fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        if !self.chunk.is_empty() {
            return Ok(Some(std::mem::take(&mut self.chunk)));
        }
        if self.ended {
            return Ok(None);
        }
        let bad = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
        match self.rx.recv() {
            Ok(Out::Data(b)) => {
                if b.len() as u64 > self.remaining {
                    return Err(bad(format!("{}: more bytes than declared", self.path)));
                }
                self.remaining -= b.len() as u64;
                Ok(Some(b))
            }
            Ok(Out::End) if self.remaining == 0 => {
                self.ended = true;
                Ok(None)
            }
            Ok(Out::End) => Err(bad(format!("{}: {} bytes fewer than declared", self.path, self.remaining))),
            Ok(_) => Err(bad(format!("{}: entry not closed", self.path))),
            Err(_) => Err(io::Error::new(io::ErrorKind::BrokenPipe, "package writing was abandoned")),
        }
    }

    /// Consumes the rest of the entry (after a writer that stopped reading early).
    fn drain(&mut self) -> io::Result<()> {
        while self.next_chunk()?.is_some() {}
        Ok(())
    }
}

impl Read for EntryReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Some(mut chunk) = self.next_chunk()? else { return Ok(0) };
        let n = chunk.len().min(out.len());
        out[..n].copy_from_slice(&chunk[..n]);
        self.chunk = chunk.split_off(n);
        Ok(n)
    }
}

enum Container {
    Zip(Box<zip::ZipWriter<zip::write::StreamWriter<PipeWriter>>>),
    TarGz(tar::Builder<flate2::write::GzEncoder<PipeWriter>>),
    TarZst(tar::Builder<zstd::Encoder<'static, PipeWriter>>),
}

/// The DOS time of a ZIP entry (UTC, clamped to the range ZIP can express).
fn zip_time(t: DateTime<Utc>) -> zip::DateTime {
    let result = match t.year() {
        ..1980 => zip::DateTime::from_date_and_time(1980, 1, 1, 0, 0, 0),
        2108.. => zip::DateTime::from_date_and_time(2107, 12, 31, 23, 59, 58),
        y => zip::DateTime::from_date_and_time(y as u16, t.month() as u8, t.day() as u8, t.hour() as u8, t.minute() as u8, t.second() as u8),
    };
    result.unwrap_or_default()
}

fn tar_header(size: u64, mtime: DateTime<Utc>) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime.timestamp().max(0) as u64);
    h
}

impl Container {
    fn new(format: ArchiveFormat, pipe: PipeWriter) -> anyhow::Result<Self> {
        Ok(match format {
            ArchiveFormat::Zip => Container::Zip(Box::new(zip::ZipWriter::new_stream(pipe))),
            ArchiveFormat::TarGz => {
                let gz = flate2::GzBuilder::new().mtime(0).operating_system(255).write(pipe, flate2::Compression::new(6));
                Container::TarGz(tar::Builder::new(gz))
            }
            ArchiveFormat::TarZst => {
                let mut z = zstd::Encoder::new(pipe, 3).context("starting zstd")?;
                z.include_checksum(true).context("configuring zstd")?;
                z.include_contentsize(false).context("configuring zstd")?;
                Container::TarZst(tar::Builder::new(z))
            }
        })
    }

    fn entry(&mut self, path: &str, size: u64, mtime: DateTime<Utc>, rx: &mut Inbox) -> anyhow::Result<()> {
        let mut reader = EntryReader { rx, path, remaining: size, chunk: Bytes::new(), ended: false };
        match self {
            Container::Zip(z) => {
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .compression_level(Some(6))
                    .last_modified_time(zip_time(mtime))
                    .unix_permissions(0o644)
                    .system(zip::System::Unix)
                    .large_file(size >= zip::ZIP64_BYTES_THR);
                z.start_file(path, options).with_context(|| format!("adding {path} to the ZIP"))?;
                while let Some(chunk) = reader.next_chunk()? {
                    z.write_all(&chunk).with_context(|| format!("writing {path}"))?;
                }
            }
            Container::TarGz(t) => t.append_data(&mut tar_header(size, mtime), path, &mut reader).with_context(|| format!("adding {path}"))?,
            Container::TarZst(t) => t.append_data(&mut tar_header(size, mtime), path, &mut reader).with_context(|| format!("adding {path}"))?,
        }
        reader.drain()?;
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        let pipe = match self {
            Container::Zip(z) => z.finish().context("finishing the ZIP")?.into_inner(),
            Container::TarGz(t) => t.into_inner().context("finishing the tar")?.finish().context("finishing gzip")?,
            Container::TarZst(t) => t.into_inner().context("finishing the tar")?.finish().context("finishing zstd")?,
        };
        pipe.finish()?;
        Ok(())
    }
}

/// The container writer: turns the entries it receives into the container bytes for the sink.
pub(super) fn run_container(format: ArchiveFormat, rx: Receiver<Out>, pipe: PipeWriter) -> anyhow::Result<()> {
    let mut container = Container::new(format, pipe)?;
    let mut rx = Inbox::new(rx);
    loop {
        match rx.recv() {
            Ok(Out::Begin { path, size, mtime }) => container.entry(&path, size, mtime, &mut rx)?,
            Ok(Out::Finish) => return container.finish(),
            Ok(_) => bail!("package entries out of order"),
            Err(_) => bail!("package writing was abandoned"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn zip_times_are_clamped_to_the_dos_range() {
        let t = |y| Utc.with_ymd_and_hms(y, 6, 1, 12, 30, 31).unwrap();
        let z = zip_time(t(2025));
        assert_eq!((z.year(), z.month(), z.day(), z.hour(), z.minute()), (2025, 6, 1, 12, 30));
        assert_eq!(zip_time(t(1970)).year(), 1980);
        assert_eq!(zip_time(t(2200)).year(), 2107);
    }
}
