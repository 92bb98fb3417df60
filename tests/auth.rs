//! Token attacks: every forged, stale or misdirected token is refused with UNAUTHENTICATED.
mod common;

use std::{path::Path, process::Command};

use archiving_manager::auth::Role;
use base64::Engine;
use common::{error_codes, Backend, TestApp, SECRET};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const Q: &str = "{ viewer { subject } }";

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn claims() -> Value {
    json!({ "sub": "mallory", "iss": "archiving-manager", "aud": "archiving-manager", "iat": now(), "exp": now() + 3600, "roles": ["admin"] })
}

fn with(mut c: Value, key: &str, v: Value) -> Value {
    c[key] = v;
    c
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

async fn refused(app: &TestApp, token: &str, why: &str) {
    let body = app.gql(Some(token), Q, json!({})).await;
    assert_eq!(error_codes(&body), ["UNAUTHENTICATED"], "{why}: {body}");
    assert!(!body.to_string().contains(token), "{why}: the token must not be echoed");
}

async fn forged_and_stale_tokens_are_refused(app: TestApp) {
    // The genuine article works.
    let good = hs256(&claims(), SECRET.as_bytes());
    assert_eq!(app.data(&good, Q, json!({})).await["viewer"]["subject"], "mallory");

    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims()));
    refused(&app, &none, "alg none").await;
    refused(&app, &hs256(&claims(), b"another-secret-another-secret-another-secret"), "wrong key").await;
    refused(&app, &hs256(&with(claims(), "exp", json!(now() - 3600)), SECRET.as_bytes()), "expired").await;
    refused(&app, &hs256(&with(claims(), "nbf", json!(now() + 3600)), SECRET.as_bytes()), "not yet valid").await;
    refused(&app, &hs256(&with(claims(), "iss", json!("someone-else")), SECRET.as_bytes()), "wrong issuer").await;
    refused(&app, &hs256(&with(claims(), "aud", json!("another-service")), SECRET.as_bytes()), "wrong audience").await;
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    refused(&app, &hs256(&no_exp, SECRET.as_bytes()), "no expiry").await;
    refused(&app, &hs256(&with(claims(), "roles", json!(["superuser"])), SECRET.as_bytes()), "unknown role").await;
    refused(&app, &hs256(&with(claims(), "sub", json!("")), SECRET.as_bytes()), "empty subject").await;

    // A teacher's token with its payload swapped for an admin's keeps a signature that no longer matches.
    let teacher = app.token(&[Role::Teacher], &["101"], &[]);
    let parts: Vec<&str> = teacher.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims()), parts[2]);
    refused(&app, &tampered, "tampered payload").await;

    refused(&app, "not.a.jwt", "garbage").await;
    for header in ["Token abc", "Bearer", "Basic dXNlcjpwYXNz", &good] {
        let body = app.gql_raw(Some(header), Q, json!({})).await;
        assert_eq!(error_codes(&body), ["UNAUTHENTICATED"], "header {header:?}: {body}");
    }
    let body = app.gql_raw(Some(&format!("bearer {good}")), Q, json!({})).await;
    assert!(body.get("errors").is_none(), "the scheme is case-insensitive: {body}");
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap_or_else(|e| {
        panic!("this test needs the `openssl` command ({e}); install it with `apt-get install openssl`")
    });
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn keypair(dir: &Path, alg: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let private = dir.join(format!("{alg}.key"));
    let public = dir.join(format!("{alg}.pub"));
    match alg {
        "rsa" => openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", private.to_str().unwrap()]),
        _ => openssl(&["genpkey", "-algorithm", "ed25519", "-out", private.to_str().unwrap()]),
    }
    openssl(&["pkey", "-in", private.to_str().unwrap(), "-pubout", "-out", public.to_str().unwrap()]);
    (private, public)
}

/// With a public key configured, properly signed tokens work, and the classic confusion attack
/// (an HS256 token whose "secret" is the public key) is refused.
async fn public_key_algorithms(backend: Backend) {
    let keys = tempfile::tempdir().unwrap();
    for (alg, name) in [(archiving_manager::config::JwtAlgorithm::RS256, "rsa"), (archiving_manager::config::JwtAlgorithm::EdDSA, "ed25519")] {
        let (private, public) = keypair(keys.path(), name);
        let app = TestApp::start_with(backend, |s| {
            s.jwt_secret = None;
            s.jwt_algorithm = alg;
            s.jwt_public_key_file = Some(public.clone());
        })
        .await;
        let pem = std::fs::read(&private).unwrap();
        let (jalg, key) = match name {
            "rsa" => (Algorithm::RS256, EncodingKey::from_rsa_pem(&pem).unwrap()),
            _ => (Algorithm::EdDSA, EncodingKey::from_ed_pem(&pem).unwrap()),
        };
        let good = encode(&Header::new(jalg), &claims(), &key).unwrap();
        assert_eq!(app.data(&good, Q, json!({})).await["viewer"]["subject"], "mallory", "{name}");
        let confused = hs256(&claims(), &std::fs::read(&public).unwrap());
        refused(&app, &confused, &format!("{name}: HS256 signed with the public key")).await;
        refused(&app, &hs256(&claims(), SECRET.as_bytes()), &format!("{name}: HS256 token")).await;
        // No HS256 secret is generated when a public key is configured.
        assert!(!app.data_dir.path().join("jwt-secret").exists());
    }
}

mod public_keys {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::public_key_algorithms(super::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::public_key_algorithms(super::Backend::Postgres).await
    }
}

on_both_databases!(forged_and_stale_tokens_are_refused);
