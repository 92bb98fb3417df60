//! A real S3-compatible server for the tests: `moto_server` (PyPI `moto[server]`, pinned in
//! tests/requirements.txt) on a free loopback port, killed on drop.
//!
//! The tools come from `ARCHIVING_TEST_PY_BIN` if set, otherwise from the virtualenv that
//! `./scripts/py-venv` creates (and prints). Missing tools make the test fail with instructions.
#![allow(dead_code)]

use std::{
    io::Read,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Dummy credentials: moto accepts any.
pub const ACCESS_KEY_ID: &str = "AKIAMOTOTESTKEY0001";
pub const SECRET_ACCESS_KEY: &str = "moto-test-secret-0123456789-DO-NOT-LEAK";

fn how_to_get_it() -> String {
    "Python 3 with venv and the pinned tools are needed: run `./scripts/py-venv` in the repository \
     (it creates target/py-venv from tests/requirements.txt, needs `python3 -m venv` and PyPI access; on Debian \
     `apt-get install python3-venv`), or set ARCHIVING_TEST_PY_BIN to a directory holding `moto_server` \
     (`pip install 'moto[server]==5.2.5'`)."
        .to_string()
}

pub use super::py::py_bin;

pub struct MotoServer {
    pub port: u16,
    pub bucket: String,
    child: Child,
    /// moto's request log (a file, not a pipe: an unread pipe would fill up and stall moto).
    log: tempfile::NamedTempFile,
}

impl MotoServer {
    /// Starts moto on a free port, waits until it answers and creates `bucket`.
    pub async fn start(bucket: &str) -> Self {
        let mut last_err = String::new();
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            match Self::try_start_on(port, bucket).await {
                Ok(server) => return server,
                Err(e) => last_err = e, // e.g. the port was taken meanwhile: try another
            }
        }
        panic!("moto_server did not come up: {last_err}\n{}", how_to_get_it());
    }

    /// Starts moto on `port` (e.g. where an earlier server ran, to simulate storage coming back).
    pub async fn start_on(port: u16, bucket: &str) -> Self {
        Self::try_start_on(port, bucket).await.unwrap_or_else(|e| panic!("moto_server on port {port}: {e}\n{}", how_to_get_it()))
    }

    async fn try_start_on(port: u16, bucket: &str) -> Result<Self, String> {
        let exe = py_bin().join("moto_server");
        assert!(exe.exists(), "{} does not exist.\n{}", exe.display(), how_to_get_it());
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.reopen().unwrap()))
            .stderr(Stdio::from(log.reopen().unwrap()))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}\n{}", exe.display(), how_to_get_it()));
        let mut server = MotoServer { port, bucket: bucket.to_string(), child, log };
        server.wait_ready().await?;
        server.create_bucket(bucket).await;
        Ok(server)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Driver settings for this server's bucket.
    pub fn settings(&self) -> serde_json::Value {
        serde_json::json!({
            "bucket": self.bucket,
            "region": "us-east-1",
            "endpoint": self.endpoint(),
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "allow_http": true,
        })
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).no_proxy().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("moto_server exited with {status}: {}", self.log_text().trim()));
            }
            if http.get(self.endpoint()).send().await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("moto_server did not answer within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What moto logged so far (one line per request).
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        let _ = self.log.reopen().and_then(|mut f| f.read_to_string(&mut text));
        text
    }

    /// CreateBucket: a plain PUT on the bucket (moto does not check signatures).
    pub async fn create_bucket(&self, bucket: &str) {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let res = http.put(format!("{}/{bucket}", self.endpoint())).send().await.expect("CreateBucket request");
        assert!(res.status().is_success(), "CreateBucket {bucket}: HTTP {}", res.status());
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
