//! Finding the sibling programs the demo and the benchmarks start
//! (`eventd`, `event-sched`, and `tevc` for the command line the demo
//! prints).
//!
//! They are looked up next to the running `tbevents` executable, which is
//! where cargo puts every binary of the workspace (`target/<profile>/`)
//! and where an installation puts them (`/usr/local/bin`, ...). Cargo does
//! not build other packages' binaries when it builds `tbevents`, so on a
//! fresh clone `cargo run -p tbevents -- demo` finds them missing: when the
//! executable lives in a cargo target directory of this workspace, we build
//! them once with the same profile (`cargo build [--release] --bin eventd
//! --bin event-sched`), printing what we do. Anywhere else a missing
//! program is an error that says how to get it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The programs the demo needs, with the package that builds each
/// (`tevc` so the command line the demo prints works as printed).
pub const DEMO_PROGRAMS: &[(&str, &str)] = &[
    ("eventd", "elvin-router"),
    ("event-sched", "tbevents-sched"),
    ("tevc", "tbevents-tools"),
];

/// The directory holding the running executable.
pub fn own_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the tbevents executable's path")?;
    exe.parent()
        .map(Path::to_owned)
        .context("the tbevents executable has no parent directory")
}

/// The workspace root this binary was built from, if the running
/// executable is in that workspace's target directory (so building its
/// siblings with cargo makes sense).
fn workspace_for(dir: &Path) -> Option<(PathBuf, bool)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.parent()?;
    let profile = dir.file_name()?.to_str()?;
    let release = match profile {
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

/// Paths of `programs` next to this executable, building them with cargo
/// when they are missing and this is a cargo build of the workspace.
pub fn find_siblings(programs: &[(&str, &str)]) -> anyhow::Result<Vec<PathBuf>> {
    let dir = own_dir()?;
    find_in(&dir, programs, true)
}

/// [`find_siblings`] for a given directory.
pub fn find_in(
    dir: &Path,
    programs: &[(&str, &str)],
    may_build: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    let missing: Vec<&str> = programs
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !dir.join(name).is_file())
        .collect();
    if !missing.is_empty() {
        let workspace = if may_build { workspace_for(dir) } else { None };
        let Some((root, release)) = workspace else {
            bail!(
                "{} not found next to tbevents in {}: build them with `cargo build --release` \
                 in the tbevents source tree (or install them in the same directory as tbevents)",
                missing.join(" and "),
                dir.display()
            );
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(&cargo);
        command.arg("build").current_dir(&root);
        if release {
            command.arg("--release");
        }
        for (name, package) in programs {
            if missing.contains(name) {
                command.args(["-p", package, "--bin", name]);
            }
        }
        eprintln!(
            "tbevents: building {} (first run only) ...",
            missing.join(" and ")
        );
        let status = command.status().with_context(|| {
            format!(
                "could not run cargo to build {}; run `cargo build --release` yourself",
                missing.join(" and ")
            )
        })?;
        if !status.success() {
            bail!(
                "building {} failed ({status}); run `cargo build --release` and look at its errors",
                missing.join(" and ")
            );
        }
    }
    programs
        .iter()
        .map(|(name, _)| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                bail!(
                    "{name} is still missing from {} after building: run `cargo build --release`",
                    dir.display()
                )
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
        let err = find_in(dir.path(), DEMO_PROGRAMS, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("eventd and event-sched and tevc not found"),
            "{err}"
        );
        assert!(err.contains("cargo build --release"), "{err}");
        for name in ["eventd", "event-sched", "tevc"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let found = find_in(dir.path(), DEMO_PROGRAMS, false).unwrap();
        assert_eq!(found[0], dir.path().join("eventd"));
    }
}
