//! RFC 3161 timestamps against a real Time-Stamp Authority on loopback (`openssl ts -reply`
//! behind tests/tools/tsa_server.py, with a test PKI made by `openssl` at start).
//!
//! - The verifier, on real replies: RSA and ECDSA signers are accepted, and every reply it
//!   accepts also passes `openssl ts -verify`; tampered packages, wrong nonces and imprints,
//!   untrusted CAs, signers without the critical timeStamping EKU and rejection statuses are
//!   refused (the tampered package by OpenSSL too).
//! - Jobs with signing on complete with a verified token per package, and the downloaded `.tsr`
//!   verifies with `openssl ts -verify` against the downloaded package.
//! - A TSA outage during a job: retried with backoff, then the failure policy decides.
//! - `signArchiveFile`: manual signing and re-timestamping, its permission and refusals;
//!   re-verification; files whose TSA certificate expires soon.
mod common;

use std::time::Duration;

use archiving_manager::{
    auth::Role,
    config::{Settings, TimestampFailurePolicy},
    entity::{archive_file, job_event},
    tsp::{self, Expected, Refusal, TrustAnchors, TsaClient},
};
use common::{tsa::TestTsa, Backend, TestApp};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

// ---------- the verifier on real replies (no database) ----------

fn anchors(tsa: &TestTsa, file: &str) -> TrustAnchors {
    TrustAnchors::from_pem(&std::fs::read(tsa.path(file)).unwrap()).unwrap()
}

/// A package on disk, its hash and a query for it.
fn package(tsa: &TestTsa, name: &str, content: &[u8]) -> (std::path::PathBuf, [u8; 32], tsp::Query) {
    let path = tsa.path(name);
    std::fs::write(&path, content).unwrap();
    let sha: [u8; 32] = Sha256::digest(content).into();
    (path.clone(), sha, tsp::request::build(&sha))
}

async fn fetch(tsa: &TestTsa, query: &tsp::Query) -> Vec<u8> {
    let client = tsp::HttpTsaClient::new(tsa.url.parse().unwrap(), None, Duration::from_secs(5), Duration::from_secs(60)).unwrap();
    client.timestamp(&query.der).await.expect("the TSA answers")
}

#[tokio::test]
async fn replies_of_a_real_tsa_are_accepted_only_when_openssl_accepts_them_too() {
    let tsa = TestTsa::start();
    let trusted = anchors(&tsa, "ca.pem");
    for (section, key) in [("tsa_rsa", "RSA"), ("tsa_ec", "ECDSA P-256")] {
        tsa.set_mode(&format!("section:{section}"));
        let (pkg, sha, query) = package(&tsa, &format!("{section}.zip"), format!("package signed by {key}").as_bytes());
        let reply = fetch(&tsa, &query).await;
        let expected = Expected { sha256: sha, nonce: query.nonce.clone() };
        let v = tsp::verify_reply(&reply, &expected, &trusted).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!((v.hash_algorithm, v.message_imprint.as_str(), v.policy_oid.as_str()), ("SHA-256", hex::encode(sha).as_str(), "1.2.3.4.1"));
        assert!(v.tsa_name.contains("Archiving Test TSA"), "{}", v.tsa_name);
        assert_eq!(v.chain_pem.matches("BEGIN CERTIFICATE").count(), 3, "signer, intermediate, root");
        let (ok, said) = tsa.openssl_verify(&pkg, &reply);
        assert!(ok, "{key}: openssl refuses what we accept: {said}");
        // The stored query gives back what the reply is checked against.
        assert_eq!(tsp::request::expected_of(&query.der).unwrap(), expected);
    }
}

#[tokio::test]
async fn bad_replies_are_refused_with_the_reason() {
    let tsa = TestTsa::start();
    let trusted = anchors(&tsa, "ca.pem");
    let (pkg, sha, query) = package(&tsa, "p.zip", b"the package");
    let good = Expected { sha256: sha, nonce: query.nonce.clone() };
    tsa.set_mode("ok");
    let reply = fetch(&tsa, &query).await;
    tsp::verify_reply(&reply, &good, &trusted).unwrap();

    // A tampered package: its hash is not the imprint, for us and for OpenSSL.
    let tampered = tsa.path("tampered.zip");
    std::fs::write(&tampered, b"the packagE").unwrap();
    let tampered_sha: [u8; 32] = Sha256::digest(b"the packagE").into();
    assert_eq!(tsp::verify_reply(&reply, &Expected { sha256: tampered_sha, ..good.clone() }, &trusted), Err(Refusal::ImprintMismatch));
    let (ok, said) = tsa.openssl_verify(&tampered, &reply);
    assert!(!ok, "openssl accepted a tampered package: {said}");
    assert!(tsa.openssl_verify(&pkg, &reply).0);

    // Another nonce: a replayed reply.
    let mut other_nonce = good.nonce.clone();
    other_nonce[7] ^= 1;
    assert_eq!(tsp::verify_reply(&reply, &Expected { nonce: other_nonce, ..good.clone() }, &trusted), Err(Refusal::NonceMismatch));

    // Anchors that did not issue the TSA's chain.
    let refusal = tsp::verify_reply(&reply, &good, &anchors(&tsa, "other-ca.pem")).unwrap_err();
    assert!(matches!(refusal, Refusal::Untrusted(_)), "{refusal}");

    // A TSA certified by an untrusted CA.
    tsa.set_mode("section:tsa_other");
    let (_, sha2, q2) = package(&tsa, "p2.zip", b"another package");
    let refusal = tsp::verify_reply(&fetch(&tsa, &q2).await, &Expected { sha256: sha2, nonce: q2.nonce.clone() }, &trusted).unwrap_err();
    assert!(matches!(refusal, Refusal::Untrusted(_)), "{refusal}");

    // A rejection status.
    tsa.set_mode("section:tsa_reject");
    let refusal = tsp::verify_reply(&fetch(&tsa, &q2).await, &Expected { sha256: sha2, nonce: q2.nonce.clone() }, &trusted).unwrap_err();
    assert!(matches!(&refusal, Refusal::NotGranted { status, .. } if status == "Rejection"), "{refusal}");

    // Signers without the critical timeStamping EKU (a token `openssl ts` would not make:
    // signed with `openssl cms` instead). OpenSSL refuses them as well.
    for signer in ["tsa-noncritical", "signer-no-eku"] {
        tsa.set_forged(signer);
        let (pkg3, sha3, q3) = package(&tsa, &format!("{signer}.zip"), signer.as_bytes());
        let forged = fetch(&tsa, &q3).await;
        let refusal = tsp::verify_reply(&forged, &Expected { sha256: sha3, nonce: q3.nonce.clone() }, &trusted).unwrap_err();
        assert!(matches!(refusal, Refusal::NotTimestampingCertificate(_)), "{signer}: {refusal}");
        assert!(!tsa.openssl_verify(&pkg3, &forged).0, "{signer}: openssl accepted it");
    }

    // A changed TSTInfo (its policy 1.2.3.4.1 made 1.2.3.4.5): the message digest no longer matches.
    let policy = [0x06, 0x04, 0x2a, 0x03, 0x04, 0x01];
    let at = reply.windows(policy.len()).position(|w| w == policy).expect("the policy OID is in the TSTInfo") + policy.len() - 1;
    let mut changed = reply.clone();
    changed[at] = 0x05;
    let refusal = tsp::verify_reply(&changed, &good, &trusted).unwrap_err();
    assert!(matches!(&refusal, Refusal::BadSignature(m) if m.contains("message-digest")), "{refusal}");
    // A flipped bit in the signature (the last field of the reply).
    let mut broken = reply.clone();
    let last = broken.len() - 10;
    broken[last] ^= 0x01;
    let refusal = tsp::verify_reply(&broken, &good, &trusted).unwrap_err();
    assert!(matches!(&refusal, Refusal::BadSignature(m) if m.contains("does not verify")), "{refusal}");
    assert!(matches!(tsp::verify_reply(b"not DER", &good, &trusted), Err(Refusal::Malformed(_))));
}

// ---------- jobs and the API, on SQLite and PostgreSQL ----------

fn with_tsa(tsa: &TestTsa, policy: TimestampFailurePolicy, max_retries: u32) -> impl FnOnce(&mut Settings) {
    let (url, ca) = (tsa.url.clone(), tsa.ca());
    move |s: &mut Settings| {
        s.tsa_url = Some(url);
        s.tsa_trust_anchors_file = Some(ca);
        s.tsa_failure_policy = policy;
        s.max_retries = max_retries;
        s.tsa_connect_timeout_seconds = 2;
        s.tsa_timeout_seconds = 20;
    }
}

const TOKEN: &str = "genTime serialNumber policyOid tsaName tsaUrl hashAlgorithm messageImprint verified verifiedAt failureReason tsaCertificateExpiresAt requestedBy tsqUrl tsrUrl certificateChainUrl";

async fn create(app: &TestApp, input: Value) -> String {
    let acts = common::jobs::activity_ids(app, &["1001", "1003"]).await;
    let mut i = json!({"activityIds": acts});
    i.as_object_mut().unwrap().extend(input.as_object().unwrap().clone());
    let body = common::jobs::create(app, &app.admin(), i).await;
    body["data"]["createArchiveJob"]["job"]["id"].as_str().unwrap_or_else(|| panic!("{body}")).to_string()
}

async fn job(app: &TestApp, id: &str) -> Value {
    let q = format!("query($id: ID!) {{ archiveJob(id: $id) {{ status error retries files {{ id fileName sha256 downloadUrl timestamps {{ {TOKEN} }} }} logs(first: 100) {{ edges {{ node {{ level message }} }} }} }} }}");
    app.data(&app.admin(), &q, json!({"id": id})).await["archiveJob"].clone()
}

/// Waits until `done` holds for the job (as `common::jobs` reads it), then reads it with its tokens.
async fn wait(app: &TestApp, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    common::jobs::wait_for(app, id, what, done).await;
    job(app, id).await
}

fn final_status(j: &Value) -> bool {
    matches!(j["status"].as_str(), Some("COMPLETED" | "FAILURE" | "TIMEOUT" | "CANCELED"))
}

fn logs(j: &Value) -> String {
    j["logs"]["edges"].as_array().unwrap().iter().map(|e| format!("{} {}\n", e["node"]["level"].as_str().unwrap(), e["node"]["message"].as_str().unwrap())).collect()
}

async fn get(app: &TestApp, url: &Value) -> reqwest::Response {
    app.http().get(url.as_str().unwrap_or_else(|| panic!("no URL: {url}"))).send().await.unwrap()
}

/// The key inside an opaque global id (`Type:key`).
fn key_of(id: &str) -> String {
    use base64::Engine;
    let raw = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id).unwrap()).unwrap();
    raw.split_once(':').unwrap().1.to_string()
}

async fn event_kinds(app: &TestApp, job_id: &str) -> Vec<String> {
    let uuid: uuid::Uuid = key_of(job_id).parse().unwrap();
    job_event::Entity::find().filter(job_event::Column::JobId.eq(uuid)).all(&app.state.db).await.unwrap().into_iter().map(|e| e.kind).collect()
}

async fn jobs_with_signing_complete_with_a_verified_token_per_package(backend: Backend) {
    let tsa = TestTsa::start();
    let app = TestApp::start_with(backend, with_tsa(&tsa, TimestampFailurePolicy::Fail, 2)).await;
    let id = create(&app, json!({})).await;
    let j = wait(&app, &id, "a final state", final_status).await;
    assert_eq!(j["status"], "COMPLETED", "{j:#}");
    let files = j["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{j:#}");
    assert_eq!(tsa.requests(), 2, "one TSA request per package");
    let work = tempfile::tempdir().unwrap();
    for f in files {
        let stamps = f["timestamps"].as_array().unwrap();
        assert_eq!(stamps.len(), 1, "{f:#}");
        let t = &stamps[0];
        assert_eq!(t["verified"], true, "{t:#}");
        assert_eq!((&t["hashAlgorithm"], &t["messageImprint"], &t["policyOid"]), (&json!("SHA-256"), &f["sha256"], &json!("1.2.3.4.1")));
        assert_eq!((&t["tsaUrl"], &t["requestedBy"], &t["failureReason"]), (&json!(tsa.url), &json!("system:engine"), &Value::Null));
        assert!(t["genTime"].is_string() && t["verifiedAt"].is_string() && t["serialNumber"].is_string() && t["tsaCertificateExpiresAt"].is_string(), "{t:#}");
        assert!(t["tsaName"].as_str().unwrap().contains("Archiving Test TSA"), "{t:#}");
        // The package and its token as a user downloads them, checked by OpenSSL.
        let name = f["fileName"].as_str().unwrap();
        let pkg = work.path().join(name);
        std::fs::write(&pkg, get(&app, &f["downloadUrl"]).await.bytes().await.unwrap()).unwrap();
        let res = get(&app, &t["tsrUrl"]).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/timestamp-reply");
        assert!(res.headers()["content-disposition"].to_str().unwrap().contains(&format!("{name}.tsr")));
        let tsr = res.bytes().await.unwrap();
        let (ok, said) = tsa.openssl_verify(&pkg, &tsr);
        assert!(ok, "openssl ts -verify refused the downloaded token: {said}");
        let tsq = get(&app, &t["tsqUrl"]).await;
        assert_eq!(tsq.headers()["content-type"], "application/timestamp-query");
        assert_eq!(tsp::request::expected_of(&tsq.bytes().await.unwrap()).unwrap().sha256.to_vec(), hex::decode(f["sha256"].as_str().unwrap()).unwrap());
        let chain = get(&app, &t["certificateChainUrl"]).await.text().await.unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 3, "{chain}");
        // A signed URL is for its part only.
        let forged = t["tsrUrl"].as_str().unwrap().replace(".tsr?", ".tsq?");
        assert_eq!(app.http().get(forged).send().await.unwrap().status(), 403);
    }
    assert!(logs(&j).contains("timestamped by"), "{}", logs(&j));
    // The policy shows the TSA, never its secrets.
    let p = app.data(&app.admin(), "{ policy { timestampAuthority { configured url trustAnchorSubjects failurePolicy basicAuth maxRetries } } }", json!({})).await;
    let ta = &p["policy"]["timestampAuthority"];
    assert_eq!((&ta["configured"], &ta["url"], &ta["failurePolicy"], &ta["basicAuth"]), (&json!(true), &json!(tsa.url), &json!("FAIL"), &json!(false)));
    assert!(ta["trustAnchorSubjects"][0].as_str().unwrap().contains("Archiving Test Root CA"), "{ta}");
}

/// `verifyArchiveFile` on a signed package changed on disk after signing: the file shows
/// MISMATCH and its token is re-verified against the bytes now stored, so it is no longer
/// verified and says why; put back, both are good again.
async fn verify_archive_file_reverifies_the_tokens_of_a_changed_package(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let tsa = TestTsa::start();
    let app = TestApp::start_with(backend, with_tsa(&tsa, TimestampFailurePolicy::Fail, 2)).await;
    let id = create(&app, json!({})).await;
    let j = wait(&app, &id, "a final state", final_status).await;
    assert_eq!(j["status"], "COMPLETED", "{j:#}");
    let f = &j["files"][0];
    assert_eq!(f["timestamps"][0]["verified"], true, "{f:#}");
    let model = archive_file::Entity::find_by_id(key_of(f["id"].as_str().unwrap()).parse::<i64>().unwrap()).one(&app.state.db).await.unwrap().unwrap();
    let b = archiving_manager::entity::storage_backend::Entity::find_by_id(model.storage_backend_id).one(&app.state.db).await.unwrap().unwrap();
    let path = std::path::Path::new(b.settings["path"].as_str().unwrap()).join(&model.storage_key);
    let original = std::fs::read(&path).unwrap();
    let mut changed = original.clone();
    let mid = changed.len() / 2;
    changed[mid] ^= 0x01;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&path, &changed).unwrap();

    let q = format!("mutation($i: VerifyArchiveFileInput!) {{ verifyArchiveFile(input: $i) {{ result file {{ lastVerification timestamps {{ {TOKEN} }} }} userErrors {{ code message }} }} }}");
    let v = app.data(&app.admin(), &q, json!({"i": {"fileId": f["id"]}})).await["verifyArchiveFile"].clone();
    assert_eq!((&v["result"], &v["file"]["lastVerification"], &v["userErrors"]), (&json!("MISMATCH"), &json!("MISMATCH"), &json!([])), "{v:#}");
    let t = &v["file"]["timestamps"][0];
    assert_eq!(t["verified"], false, "the token no longer matches what is stored: {t:#}");
    assert!(t["failureReason"].as_str().is_some_and(|r| !r.is_empty()), "{t:#}");
    assert!(t["verifiedAt"].is_string(), "{t:#}");

    std::fs::write(&path, &original).unwrap();
    let v = app.data(&app.admin(), &q, json!({"i": {"fileId": f["id"]}})).await["verifyArchiveFile"].clone();
    assert_eq!(v["result"], "OK", "{v:#}");
    assert_eq!((&v["file"]["timestamps"][0]["verified"], &v["file"]["timestamps"][0]["failureReason"]), (&json!(true), &Value::Null), "{v:#}");
}

async fn a_tsa_outage_is_retried_and_then_the_failure_policy_decides(backend: Backend) {
    let tsa = TestTsa::start();
    // Retried: the TSA comes back while the job waits for its retry.
    {
        let app = TestApp::start_with(backend, with_tsa(&tsa, TimestampFailurePolicy::Fail, 5)).await;
        tsa.set_mode("down");
        let id = create(&app, json!({})).await;
        let j = common::jobs::wait_for(&app, &id, "a retry of SIGN", |j| j["status"] == "RECOVERABLE_ERROR" || final_status(j)).await;
        assert_eq!(j["status"], "RECOVERABLE_ERROR", "{j:#}");
        assert!(j["error"].as_str().unwrap().contains("HTTP 503"), "{j:#}");
        tsa.set_mode("ok");
        let j = wait(&app, &id, "a final state", final_status).await;
        assert_eq!(j["status"], "COMPLETED", "{j:#}");
        assert!(j["files"].as_array().unwrap().iter().all(|f| f["timestamps"][0]["verified"] == true), "{j:#}");
        assert!(!event_kinds(&app, &id).await.contains(&"TIMESTAMP_FAILED".to_string()));
    }
    // FAIL: the retries run out and the job fails, with the event.
    {
        let app = TestApp::start_with(backend, with_tsa(&tsa, TimestampFailurePolicy::Fail, 1)).await;
        tsa.set_mode("down");
        let before = tsa.requests();
        let id = create(&app, json!({})).await;
        let j = wait(&app, &id, "a final state", final_status).await;
        assert_eq!(j["status"], "FAILURE", "{j:#}");
        assert!(j["error"].as_str().unwrap().contains("HTTP 503"), "{j:#}");
        assert!(tsa.requests() - before >= 2, "the first try and one retry");
        assert!(logs(&j).contains("the job fails (tsa_failure_policy FAIL)"), "{}", logs(&j));
        assert!(event_kinds(&app, &id).await.contains(&"TIMESTAMP_FAILED".to_string()));
    }
    // COMPLETE_UNSIGNED: the job completes, the files stay without token, with a warning and the event.
    {
        let app = TestApp::start_with(backend, with_tsa(&tsa, TimestampFailurePolicy::CompleteUnsigned, 1)).await;
        tsa.set_mode("down");
        let id = create(&app, json!({})).await;
        let j = wait(&app, &id, "a final state", final_status).await;
        assert_eq!(j["status"], "COMPLETED", "{j:#}");
        assert!(j["files"].as_array().unwrap().iter().all(|f| f["timestamps"] == json!([])), "{j:#}");
        assert!(logs(&j).contains("WARN") && logs(&j).contains("COMPLETE_UNSIGNED"), "{}", logs(&j));
        assert!(event_kinds(&app, &id).await.contains(&"TIMESTAMP_FAILED".to_string()));
    }
}

const SIGN: &str = "mutation($i: SignArchiveFileInput!) { signArchiveFile(input: $i) { file { timestamps { serialNumber verified } } timestamp { verified serialNumber requestedBy } userErrors { code message } } }";

async fn sign(app: &TestApp, token: &str, file_id: &Value) -> Value {
    app.gql(Some(token), SIGN, json!({"i": {"fileId": file_id}})).await
}

async fn files_are_signed_by_hand_refused_when_bad_and_reverified(backend: Backend) {
    let tsa = TestTsa::start();
    let app = TestApp::start_with(backend, with_tsa(&tsa, TimestampFailurePolicy::Fail, 2)).await;
    let id = create(&app, json!({"timestamping": false})).await;
    let j = wait(&app, &id, "a final state", final_status).await;
    assert_eq!(j["status"], "COMPLETED", "{j:#}");
    let f = j["files"][0].clone();
    assert_eq!(f["timestamps"], json!([]), "timestamping off: no token");
    assert_eq!(tsa.requests(), 0);

    // Only MANAGE may sign.
    let teacher = app.token(&[Role::Teacher], &["101"], &[]);
    assert_eq!(common::error_codes(&sign(&app, &teacher, &f["id"]).await), ["FORBIDDEN"]);

    let admin = app.admin();
    let first = sign(&app, &admin, &f["id"]).await;
    let s = &first["data"]["signArchiveFile"];
    assert_eq!(s["userErrors"], json!([]), "{first}");
    assert_eq!((&s["timestamp"]["verified"], &s["timestamp"]["requestedBy"]), (&json!(true), &json!("test-admin")));
    // Re-timestamping keeps the older token.
    let second = sign(&app, &admin, &f["id"]).await;
    let stamps = second["data"]["signArchiveFile"]["file"]["timestamps"].as_array().unwrap().clone();
    assert_eq!(stamps.len(), 2, "{second}");
    assert_ne!(stamps[0]["serialNumber"], stamps[1]["serialNumber"]);

    // Bad replies are refused, nothing is stored, the reason is given.
    for (mode, reason) in [
        ("replay", "nonce"),
        ("section:tsa_other", "not trusted"),
        ("section:tsa_reject", "did not grant"),
        ("forged:tsa-noncritical.pem:tsa-noncritical.key", "may not sign timestamps"),
        ("down", "HTTP 503"),
    ] {
        tsa.set_mode(mode);
        let body = sign(&app, &admin, &f["id"]).await;
        let errs = &body["data"]["signArchiveFile"]["userErrors"];
        assert_eq!(errs[0]["code"], "TIMESTAMP_FAILED", "{mode}: {body}");
        assert!(errs[0]["message"].as_str().unwrap().contains(reason), "{mode}: {body}");
    }
    tsa.set_mode("ok");
    let now = job(&app, &id).await;
    assert_eq!(now["files"][0]["timestamps"].as_array().unwrap().len(), 2, "refused replies are not stored");

    // The audit log records manual signing.
    let audit = app.data(&admin, "{ auditLog(first: 10) { edges { node { action actor } } } }", json!({})).await;
    assert!(audit.to_string().contains("FILE_TIMESTAMPED"), "{audit}");

    // Re-verification (what verifyArchiveFile calls): the recorded hash passes, another fails.
    let model = archive_file::Entity::find_by_id(key_of(f["id"].as_str().unwrap()).parse::<i64>().unwrap()).one(&app.state.db).await.unwrap().unwrap();
    let services = archiving_manager::service::Services::new(app.state.engine.clone());
    let sha = tsp::sha256_of_hex(&model.sha256).unwrap();
    let ok = services.reverify_tokens(&model, &sha).await.unwrap();
    assert!(ok.iter().all(|t| t.verified && t.verification_error.is_none() && t.verified_at.is_some()), "{ok:?}");
    let mut changed = sha;
    changed[0] ^= 1;
    let bad = services.reverify_tokens(&model, &changed).await.unwrap();
    assert!(bad.iter().all(|t| !t.verified && t.verification_error.as_deref().unwrap().contains("SHA-256")), "{bad:?}");
    let shown = job(&app, &id).await;
    assert_eq!(shown["files"][0]["timestamps"][0]["verified"], false, "persisted");
    services.reverify_tokens(&model, &sha).await.unwrap();

    // The TSA certificate of the test PKI lives 730 days: files to re-timestamp within 800, not within 1.
    let q = "query($d: Int!) { filesToRetimestamp(withinDays: $d) { totalCount edges { node { id } } } }";
    let soon = app.data(&admin, q, json!({"d": 800})).await;
    assert!(soon["filesToRetimestamp"]["edges"].to_string().contains(f["id"].as_str().unwrap()), "{soon}");
    let none = app.data(&admin, q, json!({"d": 1})).await;
    assert_eq!(none["filesToRetimestamp"]["totalCount"], 0, "{none}");

    // Deleting the file (the one deletion path) removes the tokens' data: the record stays.
    let tsr = job(&app, &id).await["files"][0]["timestamps"][0]["tsrUrl"].clone();
    assert_eq!(get(&app, &tsr).await.status(), 200);
    let del = "mutation($i: DeleteArchiveFileInput!) { deleteArchiveFile(input: $i) { userErrors { code } } }";
    app.data(&admin, del, json!({"i": {"id": f["id"], "reason": "test"}})).await;
    assert_eq!(get(&app, &tsr).await.status(), 404);
    let gone = job(&app, &id).await["files"][0]["timestamps"][0].clone();
    assert_eq!((&gone["tsrUrl"], &gone["certificateChainUrl"]), (&Value::Null, &Value::Null), "{gone}");
}

async fn basic_auth_reaches_the_tsa_and_stays_secret(backend: Backend) {
    let tsa = TestTsa::start();
    tsa.require_auth("archiver", "tsa-secret-pw");
    let (url, ca) = (tsa.url.clone(), tsa.ca());
    let app = TestApp::start_with(backend, move |s| {
        s.tsa_url = Some(url);
        s.tsa_trust_anchors_file = Some(ca);
        s.tsa_username = Some("archiver".into());
        s.tsa_password = Some("tsa-secret-pw".to_string().into());
        s.max_retries = 1;
    })
    .await;
    let id = create(&app, json!({})).await;
    let j = wait(&app, &id, "a final state", final_status).await;
    assert_eq!(j["status"], "COMPLETED", "{j:#}");
    assert!(j["files"].as_array().unwrap().iter().all(|f| f["timestamps"][0]["verified"] == true), "{j:#}");
    let p = app.data(&app.admin(), "{ policy { timestampAuthority { basicAuth url } } }", json!({})).await;
    assert_eq!(p["policy"]["timestampAuthority"]["basicAuth"], true);
    assert!(!format!("{p}{j}").contains("tsa-secret-pw"));
}

with_each_backend!(
    jobs_with_signing_complete_with_a_verified_token_per_package,
    a_tsa_outage_is_retried_and_then_the_failure_policy_decides,
    files_are_signed_by_hand_refused_when_bad_and_reverified,
    verify_archive_file_reverifies_the_tokens_of_a_changed_package,
    basic_auth_reaches_the_tsa_and_stays_secret,
);
