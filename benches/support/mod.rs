//! What both benchmarks need: the optimised binary and the machine's name.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `wallet` of the `profiling` profile (the release build with line
/// tables, so a profile of a benchmark names source lines), built if it is
/// missing.
pub(crate) fn release_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--profile",
            "profiling",
            "--quiet",
            "--bin",
            "wallet",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo build");
    assert!(status.success(), "building the release binary failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("profiling").join("wallet")
}

/// The CPU's model name and how many cores this process may use.
pub(crate) fn cpu() -> (String, usize) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    (model, cores)
}
