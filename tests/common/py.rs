//! The pinned Python tools the tests use as independent parts (tests/requirements.txt).
use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::OnceLock,
};

const HOW_TO_GET_THEM: &str = "Python 3 with venv and the pinned tools are needed: run `./scripts/py-venv` in the repository \
     (it creates target/py-venv from tests/requirements.txt; needs `python3 -m venv` and PyPI access; on Debian \
     `apt-get install python3-venv`), or set ARCHIVING_TEST_PY_BIN to a directory holding `bagit.py` and `moto_server` \
     (`pip install bagit==1.9.0 'moto[server]==5.2.5'`).";

/// The directory holding the pinned Python tools (`bagit.py`, `moto_server`): from
/// `ARCHIVING_TEST_PY_BIN`, else the virtualenv `./scripts/py-venv` creates (and prints).
pub fn py_bin() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(dir) = std::env::var("ARCHIVING_TEST_PY_BIN") {
            return Ok(PathBuf::from(dir));
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(root.join("scripts/py-venv"))
            .current_dir(&root)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run scripts/py-venv: {e}"))?;
        if !out.status.success() {
            return Err(format!("scripts/py-venv failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let dir = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").trim().to_string();
        Ok(PathBuf::from(dir))
    })
    .clone()
    .unwrap_or_else(|e| panic!("{e}\n{HOW_TO_GET_THEM}"))
}
