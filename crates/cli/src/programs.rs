//! Finding the sibling programs a command starts: the demo starts `eventd`
//! and `event-sched`, the integration tests start every binary.
//!
//! They are looked up in one directory: next to the running executable,
//! which is where cargo puts every binary of the workspace
//! (`target/<profile>/`) and where an installation puts them
//! (`/usr/local/bin`, ...). Cargo does not build other packages' binaries
//! when it builds one package, so on a fresh clone `cargo run -p tbevents
//! -- demo` finds them missing: when the directory is a cargo target
//! directory of this workspace, we build them once with the same profile,
//! printing what we do. Anywhere else a missing program is an error that
//! says how to get it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A program could not be found or built; the text says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProgramsError(String);

/// A program and the package that builds it (empty: let cargo find the
/// binary in any package of the workspace).
pub type Program<'a> = (&'a str, &'a str);

/// The directory holding the running executable.
pub fn own_dir() -> Result<PathBuf, ProgramsError> {
    let exe = std::env::current_exe()
        .map_err(|e| ProgramsError(format!("cannot find this program's own path: {e}")))?;
    exe.parent()
        .map(Path::to_owned)
        .ok_or_else(|| ProgramsError("this program's path has no parent directory".into()))
}

/// The workspace root this crate was built from and whether `dir` is its
/// release profile, if `dir` is a cargo target directory of that
/// workspace (so building into it makes sense).
fn workspace_for(dir: &Path) -> Option<(PathBuf, bool)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.parent()?;
    let release = match dir.file_name()?.to_str()? {
        "release" => true,
        "debug" => false,
        _ => return None,
    };
    // target/<profile>, with target anywhere (CARGO_TARGET_DIR) as long as
    // the workspace that built us still exists.
    if dir.parent()?.file_name()? != "target" && std::env::var_os("CARGO_TARGET_DIR").is_none() {
        return None;
    }
    root.join("Cargo.toml")
        .is_file()
        .then(|| (root.to_owned(), release))
}

/// Paths of `programs` next to the running executable, building missing
/// ones when this is a cargo build of the workspace.
pub fn find_siblings(programs: &[Program<'_>]) -> Result<Vec<PathBuf>, ProgramsError> {
    find_in(&own_dir()?, programs, true)
}

/// Paths of `programs` in `dir`, building missing ones (when `may_build`
/// and `dir` is a target directory of this workspace).
pub fn find_in(
    dir: &Path,
    programs: &[Program<'_>],
    may_build: bool,
) -> Result<Vec<PathBuf>, ProgramsError> {
    let missing: Vec<&str> = programs
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !dir.join(name).is_file())
        .collect();
    if !missing.is_empty() {
        let list = missing.join(" and ");
        let workspace = if may_build { workspace_for(dir) } else { None };
        let Some((root, release)) = workspace else {
            return Err(ProgramsError(format!(
                "{list} not found in {}: build them with `cargo build --release` in the tbevents \
                 source tree (or install them in the same directory)",
                dir.display()
            )));
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(&cargo);
        command.arg("build").current_dir(&root);
        if release {
            command.arg("--release");
        }
        for (name, package) in programs {
            if missing.contains(name) {
                if !package.is_empty() {
                    command.args(["-p", package]);
                }
                command.args(["--bin", name]);
            }
        }
        eprintln!("building {list} (first run only) ...");
        let status = command.status().map_err(|e| {
            ProgramsError(format!(
                "could not run cargo to build {list} ({e}); run `cargo build --release` yourself"
            ))
        })?;
        if !status.success() {
            return Err(ProgramsError(format!(
                "building {list} failed ({status}); run `cargo build --release` and look at its errors"
            )));
        }
    }
    programs
        .iter()
        .map(|(name, _)| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(ProgramsError(format!(
                    "{name} is still missing from {} after building: run `cargo build --release`",
                    dir.display()
                )))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_outside_a_workspace_are_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = find_in(
            dir.path(),
            &[("eventd", "elvin-router"), ("tevc", "")],
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("eventd and tevc not found"), "{err}");
        assert!(err.contains("cargo build --release"), "{err}");
    }

    #[test]
    fn present_programs_are_found_without_building() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("eventd"), "").unwrap();
        let found = find_in(dir.path(), &[("eventd", "elvin-router")], false).unwrap();
        assert_eq!(found, [dir.path().join("eventd")]);
    }
}
