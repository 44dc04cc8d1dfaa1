//! The product's binary the campaign drives: `ecs-recycler` beside the
//! campaign's own program in the same target directory (as cargo leaves
//! it), built first when it is missing or older than the product's
//! sources — a campaign against a stale binary would test old code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, bail};

/// The workspace's root: this crate is `crates/campaign` in it.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `ecs-recycler` in the target directory this program (or test) runs from.
fn beside_this_program() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("this program's path")?;
    let mut dir = exe.parent().context("this program's directory")?;
    // Tests run from target/<profile>/deps.
    if dir.ends_with("deps") {
        dir = dir.parent().context("the profile's directory")?;
    }
    Ok(dir.join("ecs-recycler"))
}

/// The newest modification among the files the binary is built from.
fn newest_source(root: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut stack = vec![
        root.join("src"),
        root.join("crates/ecs-sim/src"),
        root.join("crates/api-limits"),
        root.join("Cargo.toml"),
        root.join("Cargo.lock"),
    ];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(modified) = meta.modified() {
            newest = newest.max(modified);
        }
    }
    newest
}

/// The binary to drive: `given`, or the one beside this program, built
/// with cargo (the same profile as this program) when missing or stale.
pub fn product_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    let path = beside_this_program()?;
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    if built.is_some_and(|b| b >= newest_source(&workspace())) {
        return Ok(path);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace())
        .args(["build", "-p", "ecs-recycler", "--bin", "ecs-recycler"]);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let status = command.status().context("run cargo build")?;
    if !status.success() || !path.exists() {
        bail!(
            "could not build {} (cargo build -p ecs-recycler: {status}); build it, or name one with --binary",
            path.display()
        );
    }
    Ok(path)
}
