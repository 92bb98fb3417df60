//! The storage driver contract (DESIGN §7), run against every driver: the local directory (in a
//! temporary directory) and S3 (a real `moto_server` on loopback, see tests/common/moto.rs).
//! Each case is an `async fn(&Ctx)` that only sees `Arc<dyn StorageDriver>`; `contract!` turns it
//! into `local::<case>` and `s3::<case>`.
use std::{io::Write, path::PathBuf, sync::Arc};

use archiving_manager::{
    domain::StorageDriverKind,
    storage::{self, GetObject, StorageDriver, StorageError, StoredObject},
};
use futures::StreamExt;
use sha2::{Digest, Sha256};

mod common;

use common::moto;

use moto::MotoServer;

struct Ctx {
    driver: Arc<dyn StorageDriver>,
    /// Source files (and, for the local driver, the storage root under `store/`).
    dir: tempfile::TempDir,
    moto: Option<MotoServer>,
}

impl Ctx {
    async fn local() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let driver = storage::open(StorageDriverKind::LocalDirectory, &serde_json::json!({ "path": dir.path().join("store") })).unwrap();
        Ctx { driver, dir, moto: None }
    }

    async fn s3() -> Self {
        Self::s3_with(|_| {}).await
    }

    async fn s3_with(tweak: impl FnOnce(&mut serde_json::Value)) -> Self {
        let moto = MotoServer::start("archive-test").await;
        let mut settings = moto.settings();
        settings["prefix"] = "tenant-a/".into();
        tweak(&mut settings);
        let driver = storage::open(StorageDriverKind::S3, &settings).unwrap();
        Ctx { driver, dir: tempfile::tempdir().unwrap(), moto: Some(moto) }
    }

    /// Writes a source file.
    fn file(&self, name: &str, bytes: &[u8]) -> (PathBuf, String) {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        (p, hex(bytes))
    }

    /// Writes a big source file chunk by chunk (never whole in memory); returns its SHA-256.
    fn big_file(&self, name: &str, size: usize, seed: u8) -> (PathBuf, String) {
        let p = self.dir.path().join(name);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
        let mut hasher = Sha256::new();
        let mut written = 0;
        let mut chunk = vec![0u8; 1024 * 1024];
        let mut n: u32 = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
        while written < size {
            let len = chunk.len().min(size - written);
            for b in &mut chunk[..len] {
                n ^= n << 13;
                n ^= n >> 17;
                n ^= n << 5;
                *b = n as u8;
            }
            hasher.update(&chunk[..len]);
            f.write_all(&chunk[..len]).unwrap();
            written += len;
        }
        f.flush().unwrap();
        (p, hex::encode(hasher.finalize()))
    }

    fn secret_free(&self, text: &str) {
        for secret in [moto::SECRET_ACCESS_KEY, moto::ACCESS_KEY_ID] {
            assert!(!text.contains(secret), "a secret leaked: {text}");
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn read_all(obj: GetObject) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = obj.stream;
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

async fn get_bytes(d: &dyn StorageDriver, key: &str) -> Vec<u8> {
    read_all(d.get(key, None).await.unwrap()).await
}

macro_rules! contract {
    ($($case:ident),+ $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(&super::Ctx::local().await).await
                }
            )+
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(&super::Ctx::s3().await).await
                }
            )+
        }
    };
}

contract!(
    put_then_get,
    ranges,
    create_only,
    wrong_sha256_leaves_nothing,
    size_and_delete,
    bad_keys_are_rejected,
    health_probe,
    large_file_streams,
    concurrent_creators_one_wins,
    immutable_puts_keep_the_promises,
);

async fn put_then_get(ctx: &Ctx) {
    let d = ctx.driver.as_ref();
    let data = b"exam data \x00\xff for long-term retention".repeat(50);
    let (src, sha) = ctx.file("a.bin", &data);
    let key = "2026/11/0f1e2d3c/quiz-12 Prüfung.zip";
    let stored = d.put_file(key, &src, &sha.to_uppercase()).await.unwrap();
    assert_eq!(stored, StoredObject { size: data.len() as u64, sha256: sha.clone() });
    let obj = d.get(key, None).await.unwrap();
    assert_eq!(obj.total_size, data.len() as u64);
    assert_eq!(obj.range, None);
    assert_eq!(read_all(obj).await, data);
    assert_eq!(d.checksum(key).await.unwrap(), stored);
    // An empty file is an object too.
    let (empty, empty_sha) = ctx.file("empty", b"");
    assert_eq!(d.put_file("2026/11/x/empty.txt", &empty, &empty_sha).await.unwrap().size, 0);
    assert_eq!(get_bytes(d, "2026/11/x/empty.txt").await, b"");
}

async fn ranges(ctx: &Ctx) {
    let d = ctx.driver.as_ref();
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 256) as u8).collect();
    let (src, sha) = ctx.file("r.bin", &data);
    d.put_file("r/obj", &src, &sha).await.unwrap();
    let size = data.len() as u64;
    for (range, expect) in [
        ((0, Some(9)), 0..10usize),       // first bytes
        ((100, Some(199)), 100..200),     // middle
        ((990, None), 990..1000),         // open end
        ((size - 25, None), 975..1000),   // suffix ("-25", resolved with the size)
        ((995, Some(5000)), 995..1000),   // end past the object: clamped
        ((999, Some(999)), 999..1000),    // last byte
    ] {
        let obj = d.get("r/obj", Some(range)).await.unwrap();
        assert_eq!(obj.total_size, size, "{range:?}");
        assert_eq!(obj.range, Some(expect.start as u64..expect.end as u64), "{range:?}");
        assert_eq!(obj.len(), (expect.end - expect.start) as u64);
        assert_eq!(read_all(obj).await, &data[expect], "{range:?}");
    }
    for bad in [(1000, None), (5000, Some(6000)), (10, Some(5))] {
        let err = d.get("r/obj", Some(bad)).await.map(|_| ()).unwrap_err();
        assert!(matches!(err, StorageError::Permanent(_)), "{bad:?}: {err:?}");
    }
    assert!(matches!(d.get("r/missing", Some((0, Some(1)))).await.map(|_| ()), Err(StorageError::NotFound)));
}

async fn create_only(ctx: &Ctx) {
    let d = ctx.driver.as_ref();
    let (first, first_sha) = ctx.file("first", b"the original");
    let (second, second_sha) = ctx.file("second", b"an overwrite attempt");
    d.put_file("k/report.pdf", &first, &first_sha).await.unwrap();
    let err = d.put_file("k/report.pdf", &second, &second_sha).await.unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists), "{err:?}");
    assert_eq!(get_bytes(d, "k/report.pdf").await, b"the original");
    // Not even identical bytes replace it.
    let err = d.put_file("k/report.pdf", &first, &first_sha).await.unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists), "{err:?}");
    assert_eq!(get_bytes(d, "k/report.pdf").await, b"the original");
    assert_eq!(d.checksum("k/report.pdf").await.unwrap().sha256, first_sha);
}

async fn wrong_sha256_leaves_nothing(ctx: &Ctx) {
    let d = ctx.driver.as_ref();
    let (src, sha) = ctx.file("w", b"some bytes");
    let wrong = hex(b"other bytes");
    let err = d.put_file("w/obj", &src, &wrong).await.unwrap_err();
    assert!(matches!(err, StorageError::Integrity(_)), "{err:?}");
    assert_eq!(d.size("w/obj").await.unwrap(), None);
    assert!(matches!(d.get("w/obj", None).await.map(|_| ()), Err(StorageError::NotFound)));
    // Nothing blocks the key afterwards.
    d.put_file("w/obj", &src, &sha).await.unwrap();
    // The streamed (multipart) path refuses before publishing too.
    let (big, _) = ctx.big_file("w-big", 17 * 1024 * 1024 + 3, 9);
    let err = d.put_file("w/big", &big, &wrong).await.unwrap_err();
    assert!(matches!(err, StorageError::Integrity(_)), "{err:?}");
    assert_eq!(d.size("w/big").await.unwrap(), None);
    // A malformed expected hash is refused outright.
    assert!(matches!(d.put_file("w/x", &src, "xyz").await, Err(StorageError::Permanent(_))));
    if ctx.moto.is_none() {
        // No temporary file stays behind.
        let names: Vec<_> = std::fs::read_dir(ctx.dir.path().join("store/w")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("obj")]);
    }
}

async fn size_and_delete(ctx: &Ctx) {
    let d = ctx.driver.as_ref();
    let (src, sha) = ctx.file("s", &[7u8; 4321]);
    assert_eq!(d.size("s/obj").await.unwrap(), None);
    d.put_file("s/obj", &src, &sha).await.unwrap();
    assert_eq!(d.size("s/obj").await.unwrap(), Some(4321));
    d.delete("s/obj").await.unwrap();
    assert_eq!(d.size("s/obj").await.unwrap(), None);
    assert!(matches!(d.get("s/obj", None).await.map(|_| ()), Err(StorageError::NotFound)));
    d.delete("s/obj").await.expect("deleting a missing object succeeds");
    // After a delete the key can be used again (retention expiry, then a new archive).
    d.put_file("s/obj", &src, &sha).await.unwrap();
}

async fn bad_keys_are_rejected(ctx: &Ctx) {
    let d = ctx.driver.as_ref();
    let (src, sha) = ctx.file("b", b"x");
    for key in ["", "/etc/passwd", "../escape", "a/../../b", "a//b", "a\\b", "a/./b", ".health/x", "a/.tmp-123", "trailing/"] {
        let perm = |r: Result<(), StorageError>| matches!(r, Err(StorageError::Permanent(_)));
        assert!(perm(d.put_file(key, &src, &sha).await.map(|_| ())), "put {key:?}");
        assert!(perm(d.get(key, None).await.map(|_| ())), "get {key:?}");
        assert!(perm(d.size(key).await.map(|_| ())), "size {key:?}");
        assert!(perm(d.delete(key).await), "delete {key:?}");
    }
    if ctx.moto.is_none() {
        assert!(!ctx.dir.path().join("escape").exists());
    }
}

async fn health_probe(ctx: &Ctx) {
    let h = ctx.driver.health().await;
    assert!(h.reachable, "{h:?}");
    assert_eq!(h.error, None);
    if ctx.moto.is_none() {
        assert!(h.free_bytes.unwrap() > 0, "{h:?}");
    }
}

async fn large_file_streams(ctx: &Ctx) {
    let d = ctx.driver.as_ref();
    const SIZE: usize = 50 * 1024 * 1024;
    let (src, sha) = ctx.big_file("big", SIZE, 1);
    let stored = d.put_file("big/package.tar.zst", &src, &sha).await.unwrap();
    assert_eq!(stored, StoredObject { size: SIZE as u64, sha256: sha.clone() });
    // Read back chunk by chunk.
    let obj = d.get("big/package.tar.zst", None).await.unwrap();
    assert_eq!(obj.total_size, SIZE as u64);
    let got = storage::hash_stream(obj.stream).await.unwrap();
    assert_eq!(got, stored);
    // A range across a 16 MiB boundary (a part boundary for S3).
    let start = 16 * 1024 * 1024 - 5;
    let obj = d.get("big/package.tar.zst", Some((start, Some(start + 9)))).await.unwrap();
    let bytes = read_all(obj).await;
    let mut f = std::fs::File::open(&src).unwrap();
    let mut expect = vec![0u8; 10];
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start)).unwrap();
    std::io::Read::read_exact(&mut f, &mut expect).unwrap();
    assert_eq!(bytes, expect);
    let err = d.put_file("big/package.tar.zst", &src, &sha).await.unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists), "{err:?}");
}

async fn concurrent_creators_one_wins(ctx: &Ctx) {
    let files: Vec<(PathBuf, String)> = (0..8).map(|i| ctx.file(&format!("c{i}"), format!("creator {i} wrote this").as_bytes())).collect();
    let tasks = files.iter().cloned().map(|(p, sha)| {
        let d = ctx.driver.clone();
        tokio::spawn(async move { d.put_file("race/the-key.zip", &p, &sha).await })
    });
    let results: Vec<_> = futures::future::join_all(tasks).await.into_iter().map(|r| r.unwrap()).collect();
    let winners: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one creator wins: {results:?}");
    for (i, r) in results.iter().enumerate() {
        if i != winners[0] {
            assert!(matches!(r, Err(StorageError::AlreadyExists)), "creator {i}: {r:?}");
        }
    }
    let stored = get_bytes(ctx.driver.as_ref(), "race/the-key.zip").await;
    assert_eq!(stored, format!("creator {} wrote this", winners[0]).as_bytes());
}

/// A put of a file nobody writes again (a staged package) may keep the file itself (the local
/// directory links it): the same promises as a copy.
async fn immutable_puts_keep_the_promises(ctx: &Ctx) {
    let d = ctx.driver.as_ref();
    let (src, sha) = ctx.file("staged.tar.zst", b"a finished package");
    let err = d.put_immutable_file("i/p.tar.zst", &src, &hex(b"other")).await.unwrap_err();
    assert!(matches!(err, StorageError::Integrity(_)), "{err:?}");
    assert_eq!(d.size("i/p.tar.zst").await.unwrap(), None, "a wrong hash publishes nothing");
    let stored = d.put_immutable_file("i/p.tar.zst", &src, &sha).await.unwrap();
    assert_eq!(stored, StoredObject { size: 18, sha256: sha.clone() });
    assert_eq!(d.checksum("i/p.tar.zst").await.unwrap(), stored);
    let (other, other_sha) = ctx.file("other", b"an overwrite attempt");
    assert!(matches!(d.put_immutable_file("i/p.tar.zst", &other, &other_sha).await, Err(StorageError::AlreadyExists)));
    assert!(matches!(d.put_immutable_file("i/p.tar.zst", &src, &sha).await, Err(StorageError::AlreadyExists)), "not even itself");
    // The staging name is removed at CLEANUP; the stored object stays.
    std::fs::remove_file(&src).unwrap();
    assert_eq!(get_bytes(d, "i/p.tar.zst").await, b"a finished package");
    // Concurrent creators of one key: exactly one wins.
    let files: Vec<(PathBuf, String)> = (0..6).map(|i| ctx.file(&format!("ic{i}"), format!("package {i}").as_bytes())).collect();
    let tasks = files.iter().cloned().map(|(p, sha)| {
        let d = ctx.driver.clone();
        tokio::spawn(async move { d.put_immutable_file("i/race.zip", &p, &sha).await })
    });
    let results: Vec<_> = futures::future::join_all(tasks).await.into_iter().map(|r| r.unwrap()).collect();
    let winners: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(StorageError::AlreadyExists))), "{results:?}");
    assert_eq!(get_bytes(d, "i/race.zip").await, format!("package {}", winners[0]).as_bytes());
    if ctx.moto.is_none() {
        let names: Vec<_> = std::fs::read_dir(ctx.dir.path().join("store/i")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "no temporary name stays: {names:?}");
    }
}

// ---- S3 only ----

/// Settings pointing at a port where nothing listens.
fn closed_port_settings() -> serde_json::Value {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    serde_json::json!({
        "bucket": "b", "endpoint": format!("http://127.0.0.1:{port}"), "allow_http": true,
        "access_key_id": moto::ACCESS_KEY_ID, "secret_access_key": moto::SECRET_ACCESS_KEY,
        "max_retries": 1, "connect_timeout_secs": 2,
    })
}

#[tokio::test]
async fn s3_unreachable_is_reported_without_secrets() {
    let ctx = Ctx { driver: storage::open(StorageDriverKind::S3, &closed_port_settings()).unwrap(), dir: tempfile::tempdir().unwrap(), moto: None };
    let h = ctx.driver.health().await;
    assert!(!h.reachable, "{h:?}");
    let error = h.error.clone().expect("an error is reported");
    ctx.secret_free(&format!("{error} {h:?}"));
    let err = ctx.driver.size("a/b").await.unwrap_err();
    assert!(matches!(err, StorageError::Transient(_)), "{err:?}");
    ctx.secret_free(&format!("{err} {err:?}"));
    let (src, sha) = ctx.file("f", b"x");
    let err = ctx.driver.put_file("a/b", &src, &sha).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    ctx.secret_free(&format!("{err} {err:?}"));
    // Nor does the driver's Debug show them.
    let s3 = storage::S3Storage::from_settings(&closed_port_settings()).unwrap();
    ctx.secret_free(&format!("{s3:?} {s3:#?}"));
}

#[tokio::test]
async fn s3_missing_bucket_is_permanent() {
    let moto = MotoServer::start("present").await;
    let mut settings = moto.settings();
    settings["bucket"] = "absent".into();
    let d = storage::open(StorageDriverKind::S3, &settings).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("f");
    std::fs::write(&src, b"x").unwrap();
    let err = d.put_file("a/b", &src, &hex(b"x")).await.unwrap_err();
    assert!(matches!(err, StorageError::Permanent(_)), "{err:?}");
    assert!(!format!("{err}").contains(moto::SECRET_ACCESS_KEY));
    let h = d.health().await;
    assert!(!h.reachable && h.error.is_some(), "{h:?}");
}

/// With every put streamed (threshold 0, 5 MiB parts), concurrent creators race on the
/// conditional copy of their temporary objects: still exactly one wins and no temporary object
/// stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_streamed_puts_are_create_only() {
    let ctx = Ctx::s3_with(|s| {
        s["multipart_threshold_bytes"] = 0.into();
        s["part_size_bytes"] = (5 * 1024 * 1024).into();
    })
    .await;
    let (a, a_sha) = ctx.big_file("a", 6 * 1024 * 1024 + 1, 2);
    let (b, b_sha) = ctx.big_file("b", 6 * 1024 * 1024 + 1, 3);
    ctx.driver.put_file("m/obj", &a, &a_sha).await.unwrap();
    let err = ctx.driver.put_file("m/obj", &b, &b_sha).await.unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists), "{err:?}");
    assert_eq!(ctx.driver.checksum("m/obj").await.unwrap().sha256, a_sha);

    let files: Vec<_> = (0..4).map(|i| ctx.big_file(&format!("r{i}"), 5 * 1024 * 1024 + 10, 10 + i)).collect();
    let tasks = files.iter().cloned().map(|(p, sha)| {
        let d = ctx.driver.clone();
        tokio::spawn(async move { d.put_file("m/race", &p, &sha).await })
    });
    let results: Vec<_> = futures::future::join_all(tasks).await.into_iter().map(|r| r.unwrap()).collect();
    let winners: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(StorageError::AlreadyExists))), "{results:?}");
    assert_eq!(ctx.driver.checksum("m/race").await.unwrap().sha256, files[winners[0]].1);

    // No `.tmp/` object is left in the bucket (moto's ListObjectsV2, unsigned).
    let moto = ctx.moto.as_ref().unwrap();
    let listing = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/{}?list-type=2&prefix=tenant-a/.tmp/", moto.endpoint(), moto.bucket))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listing.contains("<Key>"), "temporary objects left: {listing}");
}
