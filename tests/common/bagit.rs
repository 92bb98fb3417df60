//! Unpacking packages with the system's tools and validating them with the independent `bagit.py`.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn run(program: &str, args: &[&str], hint: &str) -> std::process::Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program} ({e}): {hint}"))
}

/// Unpacks a package by its file name's extension into `into`; returns the bag directory (the one
/// top-level folder).
pub fn unpack(package: &Path, into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).unwrap();
    let name = package.file_name().unwrap().to_str().unwrap();
    let (p, i) = (package.to_str().unwrap(), into.to_str().unwrap());
    let out = if name.ends_with(".zip") {
        run("unzip", &["-q", p, "-d", i], "install it with `apt-get install unzip`")
    } else if name.ends_with(".tar.gz") {
        run("tar", &["-xzf", p, "-C", i], "install tar")
    } else if name.ends_with(".tar.zst") {
        run("tar", &["--zstd", "-xf", p, "-C", i], "install it with `apt-get install zstd`")
    } else {
        panic!("unknown package type: {name}")
    };
    assert!(out.status.success(), "unpacking {name}: {}", String::from_utf8_lossy(&out.stderr));
    let dirs: Vec<PathBuf> = std::fs::read_dir(into).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(dirs.len(), 1, "one top-level folder: {dirs:?}");
    dirs[0].clone()
}

/// `bagit.py --validate`: Ok, or the validator's complaint.
pub fn validate(bag: &Path) -> Result<(), String> {
    let exe = super::py::py_bin().join("bagit.py");
    assert!(exe.exists(), "{} is missing: run ./scripts/py-venv (it installs the pinned bagit from tests/requirements.txt)", exe.display());
    let out = run(exe.to_str().unwrap(), &["--validate", bag.to_str().unwrap()], "run ./scripts/py-venv");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
