//! One settings type: defaults < optional TOML file (`--config`) < `ARCHIVING_*` environment.
//! Checked once at start; an invalid value stops the start with a message naming the setting.
use std::{net::SocketAddr, path::PathBuf};

use figment::{
    providers::{Format, Serialized, Toml},
    Figment,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Environment variables are `ARCHIVING_` + the setting's name in upper case.
pub const ENV_PREFIX: &str = "ARCHIVING_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    HS256,
    RS256,
    EdDSA,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LmsKind {
    Demo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server binds to.
    pub listen: SocketAddr,
    /// Where the SQLite database, the generated JWT secret and local archives live.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: a SQLite file inside `data_dir`.
    pub database_url: Option<String>,
    /// HS256 secret. When unset, a random one is generated on first start and kept in `data_dir`.
    #[serde(serialize_with = "redact")]
    pub jwt_secret: Option<SecretString>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// HS256 (shared secret) or RS256/EdDSA (public key in `jwt_public_key_file`).
    pub jwt_algorithm: JwtAlgorithm,
    /// PEM public key that verifies RS256/EdDSA tokens.
    pub jwt_public_key_file: Option<PathBuf>,
    /// PEM private key that `archiving-manager token` signs RS256/EdDSA tokens with (optional).
    pub jwt_private_key_file: Option<PathBuf>,
    /// Where courses and activity data come from.
    pub lms: LmsKind,
    /// Size of the demo LMS: the large lecture enrols 100 × scale persons.
    pub demo_scale: u32,
    /// tracing filter, e.g. `info` or `archiving_manager=debug,info`.
    pub log: String,
    /// Jobs active at once across all processes.
    pub max_concurrent_jobs: u32,
    /// Activities archived at once by one process.
    pub worker_concurrency: u32,
    /// Retries of a stage after a transient error (storage, network, TSA) before the job fails.
    pub max_retries: u32,
    /// First retry delay in seconds; it doubles with each retry (with jitter), up to `retry_max_seconds`.
    pub retry_base_seconds: u32,
    pub retry_max_seconds: u32,
    /// Seconds a worker's claim on a job or task lasts without renewal; after a crash, work resumes
    /// elsewhere after at most this long.
    pub lease_seconds: u32,
    /// Job log entries below this level are not stored: TRACE, DEBUG, INFO, WARN, ERROR, FATAL.
    pub job_log_level: crate::domain::LogLevel,
    /// Where packages are built before they are stored; default `data_dir/staging`. Must be shared
    /// by all workers of a deployment.
    pub staging_dir: Option<PathBuf>,
    /// Demo LMS only: milliseconds each record takes to read, to simulate a slow LMS.
    pub demo_record_delay_ms: u32,
    /// Demo LMS only: generated courses added to the fixed demo ones (for benchmarks at scale).
    pub demo_extra_courses: u32,
    /// An activity with more attempts/submissions than this is archived in chunks of this many
    /// records, each a queue task of its own, so that one large activity spreads over workers.
    pub chunk_records: u32,
    /// The server's address as clients reach it, for absolute URLs (downloads); default
    /// `http://` + `listen`.
    pub public_url: Option<String>,
    /// Days the job event log keeps events (for subscribers resuming after a reconnect); job
    /// logs and transitions keep the history regardless.
    pub event_retention_days: u32,
    /// Seconds between two runs of the retention sweep (cluster-wide), which deletes stored files
    /// whose retention ended or lists them for approval.
    pub retention_interval_seconds: u64,
    /// Log output: `text` (for people) or `json` (one object per line, for log collectors).
    pub log_format: LogFormat,
    /// Largest request body accepted, in bytes; a larger one is answered 413 without being read.
    pub max_body_bytes: u64,
    /// Seconds a request body may pause (no data arriving) before the request is ended with 408.
    pub request_body_timeout_seconds: u32,
    /// HTTP requests handled at once; more are answered 503 with `Retry-After` at once (health
    /// probes and open WebSockets do not count).
    pub max_concurrent_requests: u32,
    /// Origins (`https://spa.example.org`) whose browser scripts may call the API (CORS). Empty:
    /// no CORS headers, so only same-origin pages can.
    pub cors_allowed_origins: Vec<String>,
    /// Seconds a WebSocket may stay open without `connection_init` before it is closed with 4408.
    pub ws_init_timeout_seconds: u32,
    /// Subscriptions one WebSocket may run at once; a further `subscribe` gets an error.
    pub ws_max_subscriptions: u32,
    /// WebSockets one caller (token subject and claims) may hold open at once; a further
    /// `connection_init` is refused with 4403.
    pub ws_max_connections_per_token: u32,
    /// Seconds a WebSocket may leave its outgoing queue full (the client does not read) before
    /// it is closed with 4503.
    pub ws_slow_client_seconds: u32,
    /// Subscription database work (start checks, snapshots, payloads) done at once across all
    /// WebSockets; the rest waits, so the pool is left to requests and workers.
    pub subscription_db_permits: u32,
    /// Seconds between two health checks of every enabled storage backend (cluster-wide).
    pub storage_health_interval_seconds: u32,
    /// Seconds between two runs of the fixity audit (cluster-wide), which re-reads stored files
    /// due for a check and compares them with their recorded size and SHA-256.
    pub fixity_interval_seconds: u64,
    /// Seconds after its last check that a stored file is due again: each file is re-read once
    /// per period (default 30 days).
    pub fixity_period_seconds: u64,
    /// Bytes per second the fixity audit reads from each storage backend at most; 0 = unlimited.
    pub fixity_max_bytes_per_second: u64,
    /// Files the fixity audit checks per storage backend in one run at most; the rest wait for
    /// the next run, oldest-checked first.
    pub fixity_max_files_per_run: u32,
    /// The RFC 3161 Time-Stamp Authority (`http(s)://…`); unset: packages are not timestamped.
    pub tsa_url: Option<String>,
    /// PEM bundle of the certificates a TSA's signer must chain to (required with `tsa_url`).
    pub tsa_trust_anchors_file: Option<PathBuf>,
    /// HTTP basic auth for the TSA, if it wants it.
    pub tsa_username: Option<String>,
    #[serde(serialize_with = "redact")]
    pub tsa_password: Option<SecretString>,
    pub tsa_connect_timeout_seconds: u32,
    /// The whole request, connection included.
    pub tsa_timeout_seconds: u32,
    /// What a job does when its packages cannot be timestamped after its retries.
    pub tsa_failure_policy: TimestampFailurePolicy,
}

/// What happens to a job whose packages cannot be timestamped once its retries are used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimestampFailurePolicy {
    /// The job fails (its stored files are discarded, as for any failed job).
    #[default]
    Fail,
    /// The job completes; its files stay without a token, with a warning in the job log and a
    /// TIMESTAMP_FAILED event.
    CompleteUnsigned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn redact<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_some(&v.as_ref().map(|_| "<redacted>"))
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid literal"),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            jwt_secret: None,
            jwt_issuer: "archiving-manager".into(),
            jwt_audience: "archiving-manager".into(),
            jwt_algorithm: JwtAlgorithm::HS256,
            jwt_public_key_file: None,
            jwt_private_key_file: None,
            lms: LmsKind::Demo,
            demo_scale: 1,
            log: "info".into(),
            max_concurrent_jobs: 5,
            worker_concurrency: 4,
            max_retries: 5,
            retry_base_seconds: 10,
            retry_max_seconds: 600,
            lease_seconds: 30,
            job_log_level: crate::domain::LogLevel::Info,
            staging_dir: None,
            demo_record_delay_ms: 0,
            demo_extra_courses: 0,
            event_retention_days: 7,
            retention_interval_seconds: 3600,
            log_format: LogFormat::Text,
            chunk_records: 500,
            public_url: None,
            max_body_bytes: 1024 * 1024,
            request_body_timeout_seconds: 30,
            max_concurrent_requests: 256,
            cors_allowed_origins: Vec::new(),
            ws_init_timeout_seconds: 10,
            ws_max_subscriptions: 100,
            ws_max_connections_per_token: 20,
            ws_slow_client_seconds: 30,
            subscription_db_permits: 1,
            storage_health_interval_seconds: 300,
            fixity_interval_seconds: 3600,
            fixity_period_seconds: 30 * 86_400,
            fixity_max_bytes_per_second: 0,
            fixity_max_files_per_run: 1000,
            tsa_url: None,
            tsa_trust_anchors_file: None,
            tsa_username: None,
            tsa_password: None,
            tsa_connect_timeout_seconds: 10,
            tsa_timeout_seconds: 30,
            tsa_failure_policy: TimestampFailurePolicy::Fail,
        }
    }
}

/// A configuration error: names the setting, the variable and what is wrong. Never holds a secret value.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

const KEYS: &[&str] = &[
    "listen", "data_dir", "database_url", "jwt_secret", "jwt_issuer", "jwt_audience", "jwt_algorithm",
    "jwt_public_key_file", "jwt_private_key_file", "lms", "demo_scale", "log", "max_concurrent_jobs", "worker_concurrency",
    "max_retries", "retry_base_seconds", "retry_max_seconds", "lease_seconds", "job_log_level", "staging_dir", "demo_record_delay_ms",
    "demo_extra_courses",
    "public_url", "chunk_records", "event_retention_days", "retention_interval_seconds", "log_format", "max_body_bytes", "request_body_timeout_seconds",
    "max_concurrent_requests", "cors_allowed_origins", "ws_init_timeout_seconds", "ws_max_subscriptions",
    "ws_max_connections_per_token", "ws_slow_client_seconds", "subscription_db_permits",
    "storage_health_interval_seconds", "fixity_interval_seconds", "fixity_period_seconds", "fixity_max_bytes_per_second",
    "fixity_max_files_per_run",
    "tsa_url", "tsa_trust_anchors_file", "tsa_username", "tsa_password",
    "tsa_connect_timeout_seconds", "tsa_timeout_seconds", "tsa_failure_policy",
];

const NUMERIC_KEYS: &[&str] = &[
    "demo_scale", "max_concurrent_jobs", "worker_concurrency", "max_retries", "retry_base_seconds", "retry_max_seconds", "lease_seconds",
    "demo_record_delay_ms", "demo_extra_courses", "chunk_records", "event_retention_days", "retention_interval_seconds", "max_body_bytes", "request_body_timeout_seconds",
    "max_concurrent_requests", "ws_init_timeout_seconds", "ws_max_subscriptions", "ws_max_connections_per_token",
    "ws_slow_client_seconds", "subscription_db_permits", "storage_health_interval_seconds", "fixity_interval_seconds",
    "fixity_period_seconds", "fixity_max_bytes_per_second", "fixity_max_files_per_run",
    "tsa_connect_timeout_seconds", "tsa_timeout_seconds",
];

/// Settings that are lists: comma-separated in the environment.
const LIST_KEYS: &[&str] = &["cors_allowed_origins"];

fn name(key: &str) -> String {
    format!("setting `{key}` ({ENV_PREFIX}{})", key.to_uppercase())
}

impl Settings {
    /// Loads defaults < `file` < the `ARCHIVING_*` variables of `env`, then checks the result.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// As `load`, with the environment given (so tests do not touch the process's).
    pub fn load_from(file: Option<&std::path::Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(f) = file {
            if !f.is_file() {
                return Err(ConfigError(format!("config file {} does not exist", f.display())));
            }
            fig = fig.merge(Toml::file(f));
        }
        // Only known names are read from the environment: other ARCHIVING_* variables (test
        // settings, say) are not configuration. An empty variable counts as unset.
        let vars: Vec<(String, String)> = env
            .into_iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix(ENV_PREFIX)?.to_lowercase();
                (KEYS.contains(&key.as_str()) && !v.is_empty()).then_some((key, v))
            })
            .collect();
        for (k, v) in &vars {
            // Values come as strings; figment parses them like TOML values into the field's type.
            // Text settings stay text even when they look like a number (a numeric secret, say).
            let value: figment::value::Value = if NUMERIC_KEYS.contains(&k.as_str()) {
                v.parse().unwrap_or_else(|never| match never {})
            } else if LIST_KEYS.contains(&k.as_str()) {
                let items: Vec<String> = v.split(',').map(str::trim).filter(|i| !i.is_empty()).map(String::from).collect();
                figment::value::Value::from(items)
            } else {
                figment::value::Value::from(v.clone())
            };
            fig = fig.merge(Serialized::default(k, value));
        }
        let settings: Settings = fig.extract().map_err(|e| {
            let key = e.path.first().cloned().unwrap_or_default();
            let what = match &e.kind {
                figment::error::Kind::UnknownField(f, _) => format!("unknown setting `{f}` in the config file"),
                kind if key.is_empty() => kind.to_string(),
                kind => format!("{}: {kind}", name(&key)),
            };
            ConfigError(what)
        })?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let err = |key: &str, msg: &str| Err(ConfigError(format!("{}: {msg}", name(key))));
        if let Some(url) = &self.database_url {
            if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return err("database_url", "must start with sqlite:, postgres:// or postgresql://");
            }
        }
        if let Some(s) = &self.jwt_secret {
            use secrecy::ExposeSecret;
            if s.expose_secret().len() < 32 {
                return err("jwt_secret", "must be at least 32 characters long");
            }
        }
        if self.jwt_issuer.trim().is_empty() {
            return err("jwt_issuer", "must not be empty");
        }
        if self.jwt_audience.trim().is_empty() {
            return err("jwt_audience", "must not be empty");
        }
        match (self.jwt_algorithm, &self.jwt_public_key_file) {
            (JwtAlgorithm::HS256, Some(_)) => return err("jwt_public_key_file", "is only used with jwt_algorithm RS256 or EdDSA"),
            (JwtAlgorithm::RS256 | JwtAlgorithm::EdDSA, None) => {
                return err("jwt_public_key_file", "is required when jwt_algorithm is RS256 or EdDSA")
            }
            (_, Some(p)) if !p.is_file() => return err("jwt_public_key_file", &format!("{} is not a readable file", p.display())),
            _ => {}
        }
        if !(1..=1000).contains(&self.demo_scale) {
            return err("demo_scale", "must be between 1 and 1000");
        }
        if self.demo_extra_courses > 10_000 {
            return err("demo_extra_courses", "must be at most 10000");
        }
        if self.max_concurrent_jobs == 0 {
            return err("max_concurrent_jobs", "must be at least 1");
        }
        if self.worker_concurrency == 0 {
            return err("worker_concurrency", "must be at least 1");
        }
        if self.retry_base_seconds == 0 || self.retry_max_seconds < self.retry_base_seconds {
            return err("retry_max_seconds", "must be at least retry_base_seconds, which must be at least 1");
        }
        if let Some(u) = &self.public_url {
            if url::Url::parse(u).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true) {
                return err("public_url", "must be an http:// or https:// URL");
            }
        }
        if self.chunk_records == 0 {
            return err("chunk_records", "must be at least 1");
        }
        if self.event_retention_days == 0 {
            return err("event_retention_days", "must be at least 1");
        }
        if self.retention_interval_seconds == 0 {
            return err("retention_interval_seconds", "must be at least 1");
        }
        for (key, value) in [
            ("fixity_interval_seconds", self.fixity_interval_seconds),
            ("fixity_period_seconds", self.fixity_period_seconds),
            ("fixity_max_files_per_run", u64::from(self.fixity_max_files_per_run)),
        ] {
            if value == 0 {
                return err(key, "must be at least 1");
            }
        }
        if self.fixity_period_seconds > 100 * 365 * 86_400 {
            return err("fixity_period_seconds", "must be at most 100 years");
        }
        if self.lease_seconds < 3 {
            return err("lease_seconds", "must be at least 3");
        }
        if self.max_body_bytes < 1024 {
            return err("max_body_bytes", "must be at least 1024");
        }
        if self.request_body_timeout_seconds == 0 {
            return err("request_body_timeout_seconds", "must be at least 1");
        }
        if self.max_concurrent_requests == 0 {
            return err("max_concurrent_requests", "must be at least 1");
        }
        for (key, value) in [
            ("ws_init_timeout_seconds", self.ws_init_timeout_seconds),
            ("ws_max_subscriptions", self.ws_max_subscriptions),
            ("ws_max_connections_per_token", self.ws_max_connections_per_token),
            ("ws_slow_client_seconds", self.ws_slow_client_seconds),
            ("subscription_db_permits", self.subscription_db_permits),
            ("storage_health_interval_seconds", self.storage_health_interval_seconds),
        ] {
            if value == 0 {
                return err(key, "must be at least 1");
            }
        }
        for origin in &self.cors_allowed_origins {
            if let Err(why) = check_origin(origin) {
                return err("cors_allowed_origins", &format!("`{origin}` {why}"));
            }
        }
        self.check_tsa()?;
        if tracing_subscriber::EnvFilter::try_new(&self.log).is_err() {
            return err("log", "is not a valid log filter (e.g. `info` or `archiving_manager=debug,info`)");
        }
        Ok(())
    }

    /// The TSA settings: a URL without credentials (they go in `tsa_username`/`tsa_password`, which
    /// are never shown), readable trust anchors, sane timeouts.
    fn check_tsa(&self) -> Result<(), ConfigError> {
        let err = |key: &str, msg: &str| Err(ConfigError(format!("{}: {msg}", name(key))));
        if self.tsa_connect_timeout_seconds == 0 || self.tsa_timeout_seconds < self.tsa_connect_timeout_seconds {
            return err("tsa_timeout_seconds", "must be at least tsa_connect_timeout_seconds, which must be at least 1");
        }
        let Some(u) = &self.tsa_url else {
            if self.tsa_trust_anchors_file.is_some() || self.tsa_username.is_some() || self.tsa_password.is_some() {
                return err("tsa_url", "is required when other tsa_* settings are given");
            }
            return Ok(());
        };
        match url::Url::parse(u) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                if !url.username().is_empty() || url.password().is_some() {
                    return err("tsa_url", "must not hold credentials: use tsa_username and tsa_password");
                }
            }
            _ => return err("tsa_url", "must be an http:// or https:// URL"),
        }
        if self.tsa_password.is_some() && self.tsa_username.is_none() {
            return err("tsa_username", "is required with tsa_password");
        }
        if let Err(e) = crate::tsp::load_anchors(self) {
            return err("tsa_trust_anchors_file", &format!("{e:#}"));
        }
        Ok(())
    }

    /// How long a request body may pause before the request ends with 408.
    pub fn request_body_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.request_body_timeout_seconds.into())
    }

    pub fn ws_init_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.ws_init_timeout_seconds.into())
    }

    pub fn ws_slow_client(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.ws_slow_client_seconds.into())
    }

    /// The database URL in force: the configured one, or a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("archiving-manager.db").display()),
        }
    }

    /// Base of absolute URLs, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }

    pub fn staging_dir(&self) -> PathBuf {
        self.staging_dir.clone().unwrap_or_else(|| self.data_dir.join("staging"))
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url().starts_with("postgres")
    }
}

/// An origin as browsers send it: `http(s)://host[:port]`, nothing after.
fn check_origin(origin: &str) -> Result<(), &'static str> {
    if origin == "*" {
        return Err("is not allowed: list the origins that may call the API");
    }
    let url = url::Url::parse(origin).map_err(|_| "is not an origin like https://spa.example.org")?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// origin");
    }
    if origin.trim_end_matches('/') != url.origin().ascii_serialization() {
        return Err("must be only scheme, host and port (no path, no trailing slash, default port left out), e.g. https://spa.example.org");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_apply_without_file_or_environment() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert!(s.database_url().starts_with("sqlite://"));
        assert_eq!(s.lms, LmsKind::Demo);
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:9000\"\ndemo_scale = 3\n").unwrap();
        let s = Settings::load_from(Some(&f), env(&[("ARCHIVING_DEMO_SCALE", "7"), ("ARCHIVING_TEST_OTHER", "x")])).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.demo_scale, 7);
    }

    #[test]
    fn a_bad_value_names_the_setting() {
        let e = Settings::load_from(None, env(&[("ARCHIVING_LISTEN", "not-an-address")])).unwrap_err().to_string();
        assert!(e.contains("ARCHIVING_LISTEN"), "{e}");
        let e = Settings::load_from(None, env(&[("ARCHIVING_LMS", "blackboard")])).unwrap_err().to_string();
        assert!(e.contains("ARCHIVING_LMS"), "{e}");
        let e = Settings::load_from(None, env(&[("ARCHIVING_DATABASE_URL", "mysql://x")])).unwrap_err().to_string();
        assert!(e.contains("ARCHIVING_DATABASE_URL"), "{e}");
    }

    #[test]
    fn the_chunk_size_is_read_and_checked() {
        assert_eq!(Settings::load_from(None, env(&[])).unwrap().chunk_records, 500);
        assert_eq!(Settings::load_from(None, env(&[("ARCHIVING_CHUNK_RECORDS", "10")])).unwrap().chunk_records, 10);
        let e = Settings::load_from(None, env(&[("ARCHIVING_CHUNK_RECORDS", "0")])).unwrap_err().to_string();
        assert!(e.contains("ARCHIVING_CHUNK_RECORDS"), "{e}");
    }

    #[test]
    fn the_request_limits_are_read_and_checked() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!((s.max_body_bytes, s.request_body_timeout_seconds, s.max_concurrent_requests), (1024 * 1024, 30, 256));
        assert!(s.cors_allowed_origins.is_empty());
        assert_eq!(s.ws_init_timeout_seconds, 10);
        assert_eq!((s.ws_max_subscriptions, s.ws_max_connections_per_token, s.ws_slow_client_seconds, s.subscription_db_permits), (100, 20, 30, 1));
        let s = Settings::load_from(
            None,
            env(&[
                ("ARCHIVING_MAX_BODY_BYTES", "2048"),
                ("ARCHIVING_CORS_ALLOWED_ORIGINS", "https://spa.example.org, http://localhost:5173"),
            ]),
        )
        .unwrap();
        assert_eq!(s.max_body_bytes, 2048);
        assert_eq!(s.cors_allowed_origins, vec!["https://spa.example.org", "http://localhost:5173"]);
        for (var, value) in [
            ("ARCHIVING_MAX_BODY_BYTES", "10"),
            ("ARCHIVING_MAX_BODY_BYTES", "lots"),
            ("ARCHIVING_REQUEST_BODY_TIMEOUT_SECONDS", "0"),
            ("ARCHIVING_MAX_CONCURRENT_REQUESTS", "0"),
            ("ARCHIVING_WS_INIT_TIMEOUT_SECONDS", "0"),
            ("ARCHIVING_CORS_ALLOWED_ORIGINS", "*"),
            ("ARCHIVING_CORS_ALLOWED_ORIGINS", "https://spa.example.org/app"),
            ("ARCHIVING_CORS_ALLOWED_ORIGINS", "spa.example.org"),
        ] {
            let e = Settings::load_from(None, env(&[(var, value)])).unwrap_err().to_string();
            assert!(e.contains(var), "{var}={value}: {e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "cors_allowed_origins = [\"https://spa.example.org\"]\n").unwrap();
        assert_eq!(Settings::load_from(Some(&f), env(&[])).unwrap().cors_allowed_origins, vec!["https://spa.example.org"]);
    }

    #[test]
    fn a_short_secret_is_refused_without_being_echoed() {
        let e = Settings::load_from(None, env(&[("ARCHIVING_JWT_SECRET", "hunter2")])).unwrap_err().to_string();
        assert!(e.contains("ARCHIVING_JWT_SECRET") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let e = Settings::load_from(Some(&f), env(&[])).unwrap_err().to_string();
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn tsa_settings_are_checked_without_echoing_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!((s.tsa_url.as_deref(), s.tsa_failure_policy), (None, TimestampFailurePolicy::Fail));
        let missing = dir.path().join("none.pem");
        for (pairs, var) in [
            (vec![("ARCHIVING_TSA_URL", "http://127.0.0.1:1/tsa")], "ARCHIVING_TSA_TRUST_ANCHORS_FILE"),
            (vec![("ARCHIVING_TSA_URL", "ftp://tsa")], "ARCHIVING_TSA_URL"),
            (vec![("ARCHIVING_TSA_URL", "http://u:hunter2@tsa.example/")], "ARCHIVING_TSA_URL"),
            (vec![("ARCHIVING_TSA_PASSWORD", "hunter2")], "ARCHIVING_TSA_URL"),
            (vec![("ARCHIVING_TSA_URL", "http://tsa.example/"), ("ARCHIVING_TSA_TRUST_ANCHORS_FILE", missing.to_str().unwrap())], "ARCHIVING_TSA_TRUST_ANCHORS_FILE"),
            (vec![("ARCHIVING_TSA_TIMEOUT_SECONDS", "0")], "ARCHIVING_TSA_TIMEOUT_SECONDS"),
            (vec![("ARCHIVING_TSA_FAILURE_POLICY", "MAYBE")], "ARCHIVING_TSA_FAILURE_POLICY"),
        ] {
            let e = Settings::load_from(None, env(&pairs)).unwrap_err().to_string();
            assert!(e.contains(var) && !e.contains("hunter2"), "{pairs:?}: {e}");
        }
        let s = Settings::load_from(None, env(&[("ARCHIVING_TSA_FAILURE_POLICY", "COMPLETE_UNSIGNED")])).unwrap();
        assert_eq!(s.tsa_failure_policy, TimestampFailurePolicy::CompleteUnsigned);
        let s = Settings { tsa_password: Some("tsa-pass-secret".to_string().into()), ..s };
        assert!(!format!("{s:?}").contains("tsa-pass-secret"));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let s = Settings::load_from(None, env(&[("ARCHIVING_JWT_SECRET", "0123456789abcdef0123456789abcdef-secret")])).unwrap();
        assert!(!format!("{s:?}").contains("abcdef-secret"));
    }
}
