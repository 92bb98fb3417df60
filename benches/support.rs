//! What the benches that drive the release binary share: the binary's path, a data directory
//! that is removed afterwards, and a plain HTTP/1.1 client (hyper, whose features the server's
//! own tree already has, so building the benches rebuilds no dependency).
#![allow(dead_code)]
use std::time::Duration;

use anyhow::{Context, Result};
use sea_orm::{ConnectionTrait, Database};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

/// The release build's binary: `CARGO_TARGET_DIR` or the workspace's `target/`.
pub fn default_bin() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("release/archiving-manager")
}

/// A fresh directory, removed when this is dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("am-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// HTTP/1.1 on kept-alive connections, as a client library would do it.
pub type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The status of `GET url`, or an error when the server does not answer within 10 s.
pub async fn get_status(http: &Http, url: &str) -> Result<u16> {
    let req = hyper::Request::get(url).body(Full::default())?;
    let res = tokio::time::timeout(Duration::from_secs(10), http.request(req)).await.context("no answer within 10 s")??;
    Ok(res.status().as_u16())
}

/// POSTs a GraphQL request with a bearer token; the status and the body.
pub async fn post_graphql(http: &Http, url: &str, token: &str, body: &serde_json::Value, within: Duration) -> Result<(u16, Bytes)> {
    let req = hyper::Request::post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    tokio::time::timeout(within, async {
        let res = http.request(req).await?;
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, bytes))
    })
    .await
    .with_context(|| format!("no answer within {} s", within.as_secs()))?
}

/// Where the benches create their PostgreSQL databases (`ARCHIVING_TEST_POSTGRES_URL`).
pub fn postgres_base() -> String {
    std::env::var("ARCHIVING_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh PostgreSQL database, dropped when this is.
pub struct PgDb(pub String);

impl PgDb {
    pub async fn create() -> Result<Self> {
        let base = postgres_base();
        let admin = Database::connect(format!("{base}/postgres"))
            .await
            .with_context(|| format!("PostgreSQL is not reachable at {base} (set ARCHIVING_TEST_POSTGRES_URL)"))?;
        let name = format!("am_bench_{}", uuid::Uuid::new_v4().simple());
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.context("creating the bench database")?;
        admin.close().await.ok();
        Ok(Self(name))
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // No async in Drop: a thread with its own runtime.
        let (base, name) = (postgres_base(), self.0.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
                if let Ok(admin) = Database::connect(format!("{base}/postgres")).await {
                    let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            })
        })
        .join();
    }
}

