//! The local-directory driver (the default backend).
//!
//! Atomic, create-only writes without `object_store`'s `LocalFileSystem`: that store can only take
//! an in-memory payload for a create-only put, and its streaming (multipart) upload publishes with
//! a `rename`, which replaces an existing file. Here a put streams the source into a hidden
//! temporary file in the destination directory (`.tmp-<uuid>`, never a valid key), hashing as it
//! goes, `fsync`s it, then publishes it with `link(2)` — which fails if the name exists, so an
//! existing object is never replaced — removes the temporary name and `fsync`s the directories.
//! Where the file system has no hard links, `renameat2(RENAME_NOREPLACE)` (Linux) does the same.
//! Readers therefore only ever see complete files. Stored files are made read-only.
//!
//! A file its writer will not touch again (a staged package) is not copied when it is on the same
//! file system: `put_immutable_file` links it under a temporary name, hashes it there, and
//! publishes that link the same way: a copy means writing and syncing every byte again (about
//! 250 MB/s on the development machine) and hashing it twice more (the copy and the read-back).
use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{normalize_sha256, resolve_range, validate_key, GetObject, HealthReport, StorageDriver, StorageError, StoredObject};

const COPY_BUFFER: usize = 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;
const HEALTH_DIR: &str = ".health";

#[derive(Debug, Clone)]
pub struct LocalDirectory {
    root: PathBuf,
}

impl LocalDirectory {
    /// A driver storing under `root` (absolute; created if missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        if !root.is_absolute() {
            return Err(StorageError::Permanent(format!("the local storage path must be absolute: {}", root.display())));
        }
        fs::create_dir_all(&root).map_err(|e| io_error(&format!("creating the storage directory {}", root.display()), e))?;
        Ok(Self { root })
    }

    /// From settings `{"path": "/abs/dir"}`.
    pub fn from_settings(settings: &serde_json::Value) -> Result<Self, StorageError> {
        let path = settings
            .get("path")
            .and_then(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| StorageError::Permanent("local storage settings need `path` (an absolute directory)".into()))?;
        Self::new(path)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn file_path(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

/// Maps an I/O error by the one classification (`domain::failure::io_failure`): a full disk, a
/// read-only file system and a missing permission are transient, with a hint for the operator.
fn io_error(context: &str, e: io::Error) -> StorageError {
    let f = crate::domain::failure::io_failure(context, &e);
    if f.is_transient() {
        StorageError::Transient(f.message)
    } else {
        StorageError::Permanent(f.message)
    }
}

/// Removes the temporary file unless disarmed.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// `fsync` of a directory (a no-op where directories cannot be opened, i.e. not Unix).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// `fsync`s `dir` and its ancestors up to and including `root`, so that directories created for a
/// new object are durable too.
fn sync_dirs_up_to(dir: &Path, root: &Path) -> io::Result<()> {
    let mut cur = Some(dir);
    while let Some(d) = cur {
        sync_dir(d)?;
        if d == root {
            break;
        }
        cur = d.parent().filter(|p| p.starts_with(root));
    }
    Ok(())
}

/// Publishes `tmp` as `dest` unless `dest` exists (`ErrorKind::AlreadyExists`). After a hard link
/// both names exist; the caller removes `tmp`.
fn link_no_replace(tmp: &Path, dest: &Path) -> io::Result<()> {
    match fs::hard_link(tmp, dest) {
        Ok(()) => Ok(()), // the caller removes the temporary name
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(link_err) => {
            // No hard links on this file system (e.g. some FUSE/SMB mounts): rename without replacing.
            #[cfg(target_os = "linux")]
            {
                use rustix::fs::{renameat_with, RenameFlags, CWD};
                match renameat_with(CWD, tmp, CWD, dest, RenameFlags::NOREPLACE) {
                    Ok(()) => Ok(()),
                    Err(e) if e == rustix::io::Errno::EXIST => Err(io::Error::from(e)),
                    Err(_) => Err(link_err),
                }
            }
            #[cfg(not(target_os = "linux"))]
            {
                Err(link_err)
            }
        }
    }
}

/// Identity of a file (device and inode on Unix), to tell our file from one put there by others.
fn file_identity(meta: &fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}


/// The blocking heart of a put: `source` → temp file (hashed) → fsync → link → fsync dirs → read
/// back. `rel` is trusted here (checked by the caller, or a reserved name of the driver).
fn store_blocking(root: &Path, rel: &str, source: &mut dyn Read, expected: &str) -> Result<StoredObject, StorageError> {
    let dest = root.join(rel);
    let dir = dest.parent().expect("a key has a file name").to_path_buf();
    // Cheap early answer; the link below is what guarantees create-only.
    if fs::symlink_metadata(&dest).is_ok() {
        return Err(StorageError::AlreadyExists);
    }
    fs::create_dir_all(&dir).map_err(|e| io_error("creating the object's directory", e))?;
    let tmp_path = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut tmp = TempFile(None);
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp_path)
        .map_err(|e| io_error("creating a temporary file", e))?;
    tmp.0 = Some(tmp_path.clone());
    let ours = out.metadata().ok().as_ref().and_then(file_identity);

    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut written = 0u64;
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("reading the source file", e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| io_error("writing the temporary file", e))?;
        written += n as u64;
    }
    let sha256 = hex::encode(hasher.finalize());
    if sha256 != expected {
        // Nothing was published; the temporary file goes with `tmp`.
        return Err(StorageError::Integrity(format!("the source has SHA-256 {sha256}, expected {expected}")));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        out.set_permissions(fs::Permissions::from_mode(0o444)).map_err(|e| io_error("making the file read-only", e))?;
    }
    out.sync_all().map_err(|e| io_error("syncing the temporary file", e))?;
    drop(out);

    match link_no_replace(&tmp_path, &dest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(StorageError::AlreadyExists),
        Err(e) => return Err(io_error("publishing the object", e)),
    }
    tmp.0 = None;
    let _ = fs::remove_file(&tmp_path); // the second name after a link; already gone after a rename
    sync_dirs_up_to(&dir, root).map_err(|e| io_error("syncing the directory", e))?;

    // Read back what is now stored under the key. It is ours (same inode) unless someone deleted
    // and recreated it meanwhile; only ours may be removed if bad.
    let check = File::open(&dest).and_then(|f| {
        let identity = f.metadata().ok().as_ref().and_then(file_identity);
        super::hash_reader(f).map(|stored| (stored, identity))
    });
    match check {
        Ok((_, found)) if ours.is_some() && found != ours => Err(StorageError::AlreadyExists),
        Ok((stored, _)) if stored.sha256 == expected && stored.size == written => Ok(stored),
        Ok((stored, _)) => {
            let _ = fs::remove_file(&dest);
            let _ = sync_dir(&dir);
            Err(StorageError::Integrity(format!(
                "read back {} bytes with SHA-256 {}, expected {written} bytes with {expected}; the object was removed",
                stored.size, stored.sha256
            )))
        }
        Err(e) => Err(io_error("reading the stored object back", e)),
    }
}

/// A put that keeps the source file itself ([`StorageDriver::put_immutable_file`]): the source is
/// linked to a temporary name beside the key, hashed there, made read-only and synced, and
/// published with the same create-only link as a copy. The key then names the very inode whose
/// bytes were hashed before it became visible, which is checked after publishing instead of
/// reading the bytes a second time. `None` when the source cannot be linked there (another file
/// system, no hard links, not a regular file): the caller copies instead.
fn link_blocking(root: &Path, rel: &str, source: &Path, expected: &str) -> Result<Option<StoredObject>, StorageError> {
    let source_meta = fs::symlink_metadata(source).map_err(|e| io_error(&format!("opening the source file {}", source.display()), e))?;
    if !source_meta.is_file() {
        return Ok(None);
    }
    let dest = root.join(rel);
    let dir = dest.parent().expect("a key has a file name").to_path_buf();
    // Cheap early answer; the link below is what guarantees create-only.
    if fs::symlink_metadata(&dest).is_ok() {
        return Err(StorageError::AlreadyExists);
    }
    fs::create_dir_all(&dir).map_err(|e| io_error("creating the object's directory", e))?;
    let tmp_path = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    if fs::hard_link(source, &tmp_path).is_err() {
        return Ok(None);
    }
    let mut tmp = TempFile(Some(tmp_path.clone()));
    let file = File::open(&tmp_path).map_err(|e| io_error("opening the linked source file", e))?;
    let ours = file.metadata().ok().as_ref().and_then(file_identity);
    let hashed = super::hash_reader(&file).map_err(|e| io_error("reading the source file", e))?;
    if hashed.sha256 != expected {
        // Nothing was published and the source is untouched; the temporary name goes with `tmp`.
        return Err(StorageError::Integrity(format!("the source has SHA-256 {}, expected {expected}", hashed.sha256)));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o444)).map_err(|e| io_error("making the file read-only", e))?;
    }
    // Cheap when the writer synced it already (a staged package is); the promise does not rely on that.
    file.sync_all().map_err(|e| io_error("syncing the file", e))?;
    drop(file);

    match link_no_replace(&tmp_path, &dest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(StorageError::AlreadyExists),
        Err(e) => return Err(io_error("publishing the object", e)),
    }
    tmp.0 = None;
    let _ = fs::remove_file(&tmp_path);
    sync_dirs_up_to(&dir, root).map_err(|e| io_error("syncing the directory", e))?;

    match fs::symlink_metadata(&dest) {
        Ok(m) if ours.is_some() && file_identity(&m) != ours => Err(StorageError::AlreadyExists),
        Ok(m) if m.len() == hashed.size => Ok(Some(hashed)),
        Ok(m) => {
            let _ = fs::remove_file(&dest);
            let _ = sync_dir(&dir);
            Err(StorageError::Integrity(format!("stored {} bytes, hashed {}; the object was removed", m.len(), hashed.size)))
        }
        Err(e) => Err(io_error("checking the stored object", e)),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, StorageError> + Send + 'static) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StorageError::Transient(format!("storage task failed: {e}")))?
}

/// The bytes of the files under `root` (without following symbolic links); `None` when a part
/// of the tree cannot be read, rather than a sum that is too small.
fn used_bytes(root: &Path) -> Option<u64> {
    let mut total = 0u64;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).ok()? {
            let entry = entry.ok()?;
            let meta = entry.metadata().ok()?;
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if meta.is_file() {
                total = total.saturating_add(meta.len());
            }
        }
    }
    Some(total)
}

fn free_bytes(root: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(root).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[async_trait::async_trait]
impl StorageDriver for LocalDirectory {
    async fn put_file(&self, key: &str, path: &Path, expected_sha256: &str) -> Result<StoredObject, StorageError> {
        validate_key(key)?;
        let expected = normalize_sha256(expected_sha256)?;
        let (root, key, path) = (self.root.clone(), key.to_string(), path.to_path_buf());
        blocking(move || {
            let mut source = File::open(&path).map_err(|e| io_error(&format!("opening the source file {}", path.display()), e))?;
            store_blocking(&root, &key, &mut source, &expected)
        })
        .await
    }

    async fn put_immutable_file(&self, key: &str, path: &Path, expected_sha256: &str) -> Result<StoredObject, StorageError> {
        validate_key(key)?;
        let expected = normalize_sha256(expected_sha256)?;
        let (root, key, path) = (self.root.clone(), key.to_string(), path.to_path_buf());
        blocking(move || {
            if let Some(stored) = link_blocking(&root, &key, &path, &expected)? {
                return Ok(stored);
            }
            let mut source = File::open(&path).map_err(|e| io_error(&format!("opening the source file {}", path.display()), e))?;
            store_blocking(&root, &key, &mut source, &expected)
        })
        .await
    }

    async fn get(&self, key: &str, range: Option<(u64, Option<u64>)>) -> Result<GetObject, StorageError> {
        let path = self.file_path(key)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StorageError::NotFound),
            Err(e) => return Err(io_error("opening the object", e)),
        };
        let meta = file.metadata().await.map_err(|e| io_error("reading the object's metadata", e))?;
        if !meta.is_file() {
            return Err(StorageError::NotFound);
        }
        let total = meta.len();
        let (range, len) = match range {
            None => (None, total),
            Some(r) => {
                let r = resolve_range(r, total)?;
                file.seek(io::SeekFrom::Start(r.start)).await.map_err(|e| io_error("seeking in the object", e))?;
                let len = r.end - r.start;
                (Some(r), len)
            }
        };
        let stream = ReaderStream::with_capacity(file.take(len), READ_CHUNK).boxed();
        Ok(GetObject { total_size: total, range, stream })
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let path = self.file_path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("reading the object's metadata", e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.file_path(key)?;
        blocking(move || {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_error("deleting the object", e)),
            }
            if let Some(dir) = path.parent() {
                sync_dir(dir).map_err(|e| io_error("syncing the directory", e))?;
            }
            Ok(())
        })
        .await
    }

    async fn health(&self) -> HealthReport {
        let root = self.root.clone();
        let probe = blocking(move || {
            fs::create_dir_all(&root).map_err(|e| io_error("creating the storage directory", e))?;
            let rel = format!("{HEALTH_DIR}/probe-{}", uuid::Uuid::new_v4().simple());
            let content = format!("archiving-manager health probe {rel}");
            let expected = super::sha256_hex(content.as_bytes());
            let result = store_blocking(&root, &rel, &mut content.as_bytes(), &expected);
            let removed = fs::remove_file(root.join(&rel));
            result?;
            removed.map_err(|e| io_error("deleting the probe", e))?;
            Ok((free_bytes(&root), used_bytes(&root)))
        })
        .await;
        match probe {
            Ok((free, used)) => HealthReport { reachable: true, free_bytes: free, used_bytes: used, error: None },
            Err(e) => HealthReport { reachable: false, free_bytes: free_bytes(&self.root), used_bytes: None, error: Some(e.to_string()) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn storage_local_put_leaves_no_temporary_files_and_is_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDirectory::new(dir.path()).unwrap();
        let src = dir.path().join("src.bin");
        fs::write(&src, b"hello").unwrap();
        let sha = super::super::sha256_hex(b"hello");
        d.put_file("a/b/c.bin", &src, &sha).await.unwrap();
        let names: Vec<_> = fs::read_dir(dir.path().join("a/b")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("c.bin")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(dir.path().join("a/b/c.bin")).unwrap().permissions().mode() & 0o222, 0);
        }
        // A wrong hash leaves no temporary file behind either.
        let err = d.put_file("a/b/d.bin", &src, &"0".repeat(64)).await.unwrap_err();
        assert!(matches!(err, StorageError::Integrity(_)), "{err:?}");
        assert_eq!(fs::read_dir(dir.path().join("a/b")).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn storage_local_settings_are_checked() {
        assert!(matches!(LocalDirectory::from_settings(&serde_json::json!({})), Err(StorageError::Permanent(_))));
        assert!(matches!(LocalDirectory::from_settings(&serde_json::json!({"path": "relative/dir"})), Err(StorageError::Permanent(_))));
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("new/deeper");
        let d = LocalDirectory::from_settings(&serde_json::json!({ "path": sub })).unwrap();
        assert!(sub.is_dir());
        let h = d.health().await;
        assert!(h.reachable && h.free_bytes.is_some(), "{h:?}");
        assert_eq!(h.used_bytes, Some(0), "an empty directory uses nothing; the probe is gone");
        fs::create_dir_all(sub.join("a/b")).unwrap();
        fs::write(sub.join("a/b/c.bin"), [0u8; 1234]).unwrap();
        fs::write(sub.join("a/d.bin"), [0u8; 66]).unwrap();
        assert_eq!(d.health().await.used_bytes, Some(1300));
        assert_eq!(fs::read_dir(sub.join(HEALTH_DIR)).unwrap().count(), 0, "the probe is removed");
    }

    #[cfg(unix)]
    fn inode(p: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(p).unwrap().ino()
    }

    /// On the same file system the staged file itself is stored: no second copy of its bytes.
    #[cfg(unix)]
    #[tokio::test]
    async fn storage_local_immutable_put_links_instead_of_copying() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDirectory::new(dir.path().join("store")).unwrap();
        let src = dir.path().join("package.zip");
        fs::write(&src, b"a finished package").unwrap();
        let sha = super::super::sha256_hex(b"a finished package");
        // A wrong hash publishes nothing and leaves the source as it was.
        let err = d.put_immutable_file("a/p.zip", &src, &"0".repeat(64)).await.unwrap_err();
        assert!(matches!(err, StorageError::Integrity(_)), "{err:?}");
        assert_eq!(fs::read_dir(dir.path().join("store/a")).unwrap().count(), 0, "no temporary name stays");
        assert_ne!(fs::metadata(&src).unwrap().permissions().mode() & 0o222, 0);

        let stored = d.put_immutable_file("a/p.zip", &src, &sha).await.unwrap();
        assert_eq!(stored, StoredObject { size: 18, sha256: sha.clone() });
        let dest = dir.path().join("store/a/p.zip");
        assert_eq!(inode(&dest), inode(&src), "linked, not copied");
        assert_eq!(fs::metadata(&dest).unwrap().permissions().mode() & 0o222, 0, "read-only");
        let names: Vec<_> = fs::read_dir(dir.path().join("store/a")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("p.zip")]);
        assert!(matches!(d.put_immutable_file("a/p.zip", &src, &sha).await, Err(StorageError::AlreadyExists)));
        // The staging name goes away; the stored object stays.
        fs::remove_file(&src).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"a finished package");
    }

    /// Where the source cannot be linked (another file system), it is copied as by `put_file`.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn storage_local_immutable_put_copies_across_file_systems() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let Ok(other) = tempfile::tempdir_in("/dev/shm") else {
            panic!("this test needs /dev/shm (a tmpfs) as a second file system");
        };
        assert_ne!(fs::metadata(other.path()).unwrap().dev(), fs::metadata(dir.path()).unwrap().dev(), "/dev/shm is another file system");
        let d = LocalDirectory::new(dir.path().join("store")).unwrap();
        let src = other.path().join("package.zip");
        fs::write(&src, b"elsewhere").unwrap();
        let sha = super::super::sha256_hex(b"elsewhere");
        d.put_immutable_file("b/p.zip", &src, &sha).await.unwrap();
        let dest = dir.path().join("store/b/p.zip");
        assert_ne!(inode(&dest), inode(&src));
        assert_eq!(fs::read(&dest).unwrap(), b"elsewhere");
    }

    #[tokio::test]
    async fn storage_local_missing_source_is_permanent() {
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDirectory::new(dir.path()).unwrap();
        let err = d.put_file("x", &dir.path().join("nope"), &"0".repeat(64)).await.unwrap_err();
        assert!(matches!(err, StorageError::Permanent(_)), "{err:?}");
        let err = d.put_immutable_file("x", &dir.path().join("nope"), &"0".repeat(64)).await.unwrap_err();
        assert!(matches!(err, StorageError::Permanent(_)), "{err:?}");
    }
}
