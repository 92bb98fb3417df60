//! A real Time-Stamp Authority on loopback: `openssl ts -reply` behind tests/tools/tsa_server.py,
//! with a test PKI made at start with the `openssl` command (a root CA, an intermediate CA, TSA
//! certificates with RSA and ECDSA keys, and the wrong ones the refusal tests need).
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

const HOW_TO_GET_THEM: &str = "the timestamp tests need the `openssl` command (OpenSSL 3) and `python3` on PATH: on Debian \
     `apt-get install openssl python3`";

/// Runs a tool, failing the test with how to install it when it is missing.
fn run(program: &str, args: &[&str], dir: &Path) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}\n{HOW_TO_GET_THEM}"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

pub fn openssl(args: &[&str], dir: &Path) -> Vec<u8> {
    run("openssl", args, dir)
}

/// As `openssl`, returning whether it succeeded and its output (for checks expected to fail).
pub fn openssl_status(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("openssl").args(args).current_dir(dir).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run openssl: {e}\n{HOW_TO_GET_THEM}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

const EXTENSIONS: &str = "
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[tsa]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
[tsa_noncritical]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = timeStamping
[signer_no_eku]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
";

fn section(name: &str, signer: &str, certs: &str, digests: &str) -> String {
    format!(
        "[{name}]
dir = .
serial = ./serial-{name}
crypto_device = builtin
signer_cert = ./{signer}.pem
signer_key = ./{signer}.key
certs = ./{certs}
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = {digests}
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"
    )
}

/// Makes the test PKI and the `openssl ts` configuration in `dir`.
fn make_pki(dir: &Path) {
    std::fs::write(dir.join("ext.cnf"), EXTENSIONS).unwrap();
    let key = |name: &str, kind: &str| match kind {
        "rsa" => {
            openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &format!("{name}.key")], dir);
        }
        curve => {
            openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", &format!("ec_paramgen_curve:{curve}"), "-out", &format!("{name}.key")], dir);
        }
    };
    let root = |name: &str, cn: &str| {
        key(name, "rsa");
        openssl(&["req", "-x509", "-new", "-key", &format!("{name}.key"), "-subj", &format!("/CN={cn}"), "-days", "3650", "-sha256", "-config", "ext.cnf", "-extensions", "ca", "-out", &format!("{name}.pem")], dir);
    };
    let issue = |name: &str, cn: &str, kind: &str, issuer: &str, ext: &str| {
        key(name, kind);
        openssl(&["req", "-new", "-key", &format!("{name}.key"), "-subj", &format!("/CN={cn}"), "-out", &format!("{name}.csr")], dir);
        openssl(
            &[
                "x509", "-req", "-in", &format!("{name}.csr"), "-CA", &format!("{issuer}.pem"), "-CAkey", &format!("{issuer}.key"), "-CAcreateserial", "-days", "730", "-sha256",
                "-extfile", "ext.cnf", "-extensions", ext, "-out", &format!("{name}.pem"),
            ],
            dir,
        );
    };
    root("ca", "Archiving Test Root CA");
    issue("int", "Archiving Test Intermediate CA", "P-384", "ca", "ca");
    issue("tsa-rsa", "Archiving Test TSA RSA", "rsa", "int", "tsa");
    issue("tsa-ec", "Archiving Test TSA ECDSA", "P-256", "int", "tsa");
    issue("tsa-noncritical", "Archiving Test TSA non-critical EKU", "P-256", "int", "tsa_noncritical");
    issue("signer-no-eku", "Archiving Test signer without EKU", "P-256", "int", "signer_no_eku");
    root("other-ca", "Some Other Root CA");
    issue("tsa-other", "Archiving Test TSA under another CA", "P-256", "other-ca", "tsa");
    // The certificates a reply carries: the intermediate and the root, root first (the order
    // must not matter to the verifier).
    let chain = [std::fs::read(dir.join("ca.pem")).unwrap(), std::fs::read(dir.join("int.pem")).unwrap()].concat();
    std::fs::write(dir.join("chain.pem"), chain).unwrap();
    let cnf = [
        "[tsa]\ndefault_tsa = tsa_rsa\n".to_string(),
        section("tsa_rsa", "tsa-rsa", "chain.pem", "sha256, sha384, sha512"),
        section("tsa_ec", "tsa-ec", "chain.pem", "sha256, sha384, sha512"),
        section("tsa_other", "tsa-other", "other-ca.pem", "sha256"),
        // Accepts no SHA-256 imprint: our queries are rejected (status rejection, badAlg).
        section("tsa_reject", "tsa-rsa", "chain.pem", "sha512"),
    ]
    .concat();
    std::fs::write(dir.join("openssl.cnf"), cnf).unwrap();
}

/// The running TSA; stops when dropped.
pub struct TestTsa {
    pub dir: tempfile::TempDir,
    pub url: String,
    child: Child,
}

impl TestTsa {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        make_pki(dir.path());
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tools/tsa_server.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg("openssl.cnf")
            .arg(".")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}\n{HOW_TO_GET_THEM}", script.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().strip_prefix("listening ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("the TSA wrapper did not start: {line:?}"));
        Self { url: format!("http://127.0.0.1:{port}/tsa"), dir, child }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The trust anchors file to configure: the test root CA.
    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// `ok`, `down`, `replay`, `section:<name>`, `forged:<cert>:<key>` (see the wrapper).
    pub fn set_mode(&self, mode: &str) {
        std::fs::write(self.path("mode"), mode).unwrap();
    }

    /// Signs with `signer` (a certificate/key pair of the test PKI) outside `openssl ts`.
    pub fn set_forged(&self, signer: &str) {
        self.set_mode(&format!("forged:{signer}.pem:{signer}.key"));
    }

    pub fn require_auth(&self, user: &str, password: &str) {
        std::fs::write(self.path("auth"), format!("{user}:{password}")).unwrap();
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        std::fs::read_to_string(self.path("requests")).map(|s| s.lines().count()).unwrap_or(0)
    }

    /// A reply of `openssl ts -reply` for `query`, signed as `section` says, without HTTP.
    pub fn reply(&self, query: &[u8], section: &str) -> Vec<u8> {
        std::fs::write(self.path("direct.tsq"), query).unwrap();
        openssl(&["ts", "-reply", "-config", "openssl.cnf", "-section", section, "-queryfile", "direct.tsq", "-out", "direct.tsr"], self.dir.path());
        std::fs::read(self.path("direct.tsr")).unwrap()
    }

    /// Whether `openssl ts -verify` accepts `reply` for the file `data` with the test root CA,
    /// and what it said.
    pub fn openssl_verify(&self, data: &Path, reply: &[u8]) -> (bool, String) {
        let tsr = self.path("check.tsr");
        std::fs::write(&tsr, reply).unwrap();
        openssl_status(&["ts", "-verify", "-data", data.to_str().unwrap(), "-in", tsr.to_str().unwrap(), "-CAfile", "ca.pem"], self.dir.path())
    }
}

impl Drop for TestTsa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
