//! `cargo xtask install`: lays out binaries, example configuration,
//! systemd units and documentation, the way `make install` would.
//!
//! Paths follow the usual conventions: programs in `PREFIX/bin`, the
//! root-only scheduler proxy in `PREFIX/sbin`, configuration in
//! `SYSCONFDIR/tbevents`, units in `UNITDIR`, documents in
//! `PREFIX/share/doc/tbevents`. Everything is written under `DESTDIR` (for
//! packaging), while the files themselves name the final paths: the
//! templates in `deploy/` carry `@BINDIR@`, `@SBINDIR@`, `@SYSCONFDIR@`
//! and `@DOCDIR@`, replaced here.
//!
//! An existing configuration file is never overwritten: the new example
//! goes next to it as `NAME.new`, so re-installing keeps an operator's
//! edits. Programs, units and documents are replaced.
//!
//! `--dry-run` walks the same steps and reports every path without
//! creating, copying or building anything; the programs a release build
//! would produce are then the workspace's binary targets as `cargo
//! metadata` lists them, so a crate added later (the RPC server, say) is
//! reported without this file learning its name.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// Programs every install has (an install without them is refused).
/// Everything else in `PREFIX/bin` comes from the workspace's binary
/// targets ([`workspace_bins`]), so a crate added later (delay-agent, the
/// RPC server) is installed without this file learning its name.
pub(crate) const REQUIRED_PROGRAMS: &[&str] = &[
    "eventd",
    "tevc",
    "eventdebug",
    "evproxy",
    "tbevents-relay",
    "event-sched",
    "tbevents",
    "eventd-bench",
];

/// Programs this kit has units or documents for that a build may lack
/// (installed when the build has them).
pub(crate) const OPTIONAL_PROGRAMS: &[&str] = &[
    "program-agent",
    "trafgen",
    "linktest",
    "delay-agent",
    "tbevents-rpc",
];

/// Binary targets that are not for a site: the build tool itself, and the
/// emulated testbed's control-network forwarder (tests only).
pub(crate) const NOT_INSTALLED: &[&str] = &["xtask", "tbevents-ctlfwd"];

/// Programs installed in `PREFIX/sbin` (run by root only).
pub(crate) const ADMIN_PROGRAMS: &[&str] = &["tbevents-eventsys-proxy"];

/// Units installed only with the program they start.
const UNIT_NEEDS: &[(&str, &str)] = &[("tbevents-rpc.service", "tbevents-rpc")];

/// Where things go.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    /// Staging root (empty for a live install).
    pub destdir: PathBuf,
    /// Installation prefix, e.g. /usr/local.
    pub prefix: PathBuf,
    /// Configuration root, e.g. /etc.
    pub sysconfdir: PathBuf,
    /// systemd unit directory.
    pub unitdir: PathBuf,
    /// Report what would be written, and write nothing.
    pub dry_run: bool,
    /// The workspace's binary targets ([`workspace_bins`]).
    pub workspace_bins: Vec<String>,
    /// Programs a release build would produce (for a dry run without
    /// `--from`): they count as present although not built yet.
    pub planned: Vec<String>,
}

impl Layout {
    fn bindir(&self) -> PathBuf {
        self.prefix.join("bin")
    }
    fn sbindir(&self) -> PathBuf {
        self.prefix.join("sbin")
    }
    fn docdir(&self) -> PathBuf {
        self.prefix.join("share/doc/tbevents")
    }
    fn confdir(&self) -> PathBuf {
        self.sysconfdir.join("tbevents")
    }

    /// A final path, staged under DESTDIR.
    fn staged(&self, path: &Path) -> PathBuf {
        if self.destdir.as_os_str().is_empty() {
            return path.to_owned();
        }
        self.destdir.join(path.strip_prefix("/").unwrap_or(path))
    }

    /// A template with the final paths filled in.
    pub(crate) fn substitute(&self, text: &str) -> String {
        text.replace("@BINDIR@", &self.bindir().display().to_string())
            .replace("@SBINDIR@", &self.sbindir().display().to_string())
            .replace("@SYSCONFDIR@", &self.sysconfdir.display().to_string())
            .replace("@DOCDIR@", &self.docdir().display().to_string())
    }
}

/// The workspace root (this crate is `crates/xtask`).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds the release binaries and returns their directory.
pub(crate) fn build_release(root: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("xtask: cargo build --release --locked --workspace --bins");
    let status = Command::new(cargo)
        .args(["build", "--release", "--locked", "--workspace", "--bins"])
        .current_dir(root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("the release build failed ({status}); fix it and run `cargo xtask install` again");
    }
    Ok(release_dir(root))
}

/// Where `cargo build --release` puts the programs.
pub(crate) fn release_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("release")
}

/// The binary targets of the workspace's packages, from `cargo metadata`.
pub(crate) fn workspace_bins(root: &Path) -> anyhow::Result<Vec<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    bins_in_metadata(&output.stdout)
}

/// The `bin` targets named in `cargo metadata` output, sorted.
pub(crate) fn bins_in_metadata(json: &[u8]) -> anyhow::Result<Vec<String>> {
    let metadata: serde_json::Value =
        serde_json::from_slice(json).context("cargo metadata printed something other than JSON")?;
    let mut bins: Vec<String> = metadata["packages"]
        .as_array()
        .context("cargo metadata has no package list")?
        .iter()
        .filter_map(|package| package["targets"].as_array())
        .flatten()
        .filter(|target| {
            target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
        })
        .filter_map(|target| target["name"].as_str().map(str::to_owned))
        .collect();
    bins.sort();
    bins.dedup();
    Ok(bins)
}

/// What an install did, for the summary and the tests.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Nothing was written: the paths are what an install would write.
    pub dry_run: bool,
    /// Every file written (staged paths).
    pub written: Vec<PathBuf>,
    /// Configuration files kept, with the `.new` written beside them.
    pub kept: Vec<PathBuf>,
    /// Optional programs that were not in the build.
    pub skipped: Vec<String>,
}

/// Installs from `from` (a directory of built programs) into `layout`.
pub(crate) fn install(root: &Path, from: &Path, layout: &Layout) -> anyhow::Result<Report> {
    let mut report = Report {
        dry_run: layout.dry_run,
        ..Report::default()
    };
    let deploy = root.join("deploy");
    let present = |source: &Path, name: &str| {
        source.is_file() || layout.planned.iter().any(|planned| planned == name)
    };
    let mut programs: Vec<&str> = REQUIRED_PROGRAMS.to_vec();
    programs.extend(OPTIONAL_PROGRAMS);
    programs.extend(
        layout
            .workspace_bins
            .iter()
            .map(String::as_str)
            .filter(|name| !NOT_INSTALLED.contains(name) && !ADMIN_PROGRAMS.contains(name)),
    );
    programs.sort_unstable();
    programs.dedup();
    let mut installed = Vec::new();
    for name in programs {
        let source = from.join(name);
        if !present(&source, name) {
            if REQUIRED_PROGRAMS.contains(&name) {
                bail!(
                    "{name} is missing from {}: build it (cargo build --release) or name the \
                     directory with --from",
                    from.display()
                );
            }
            report.skipped.push(name.to_owned());
            continue;
        }
        copy_program(
            &source,
            &layout.staged(&layout.bindir().join(name)),
            &mut report,
        )?;
        installed.push(name);
    }
    for name in ADMIN_PROGRAMS {
        let source = from.join(name);
        if !present(&source, name) {
            bail!("{name} is missing from {}", from.display());
        }
        copy_program(
            &source,
            &layout.staged(&layout.sbindir().join(name)),
            &mut report,
        )?;
    }
    for entry in sorted_dir(&deploy.join("etc"))? {
        let name = file_name(&entry)?;
        let target = layout.staged(&layout.confdir().join(&name));
        let text = layout.substitute(&read(&entry)?);
        if target.exists() {
            let mut new = target.clone().into_os_string();
            new.push(".new");
            write(Path::new(&new), &text, 0o644, &mut report)?;
            report.kept.push(target);
        } else {
            write(&target, &text, 0o644, &mut report)?;
        }
    }
    for entry in sorted_dir(&deploy.join("systemd"))? {
        let name = file_name(&entry)?;
        if let Some((_, program)) = UNIT_NEEDS.iter().find(|(unit, _)| *unit == name)
            && !installed.contains(program)
        {
            continue;
        }
        let text = layout.substitute(&read(&entry)?);
        write(
            &layout.staged(&layout.unitdir.join(&name)),
            &text,
            0o644,
            &mut report,
        )?;
    }
    for entry in sorted_dir(&root.join("docs"))? {
        let name = file_name(&entry)?;
        if name.ends_with(".md") {
            let text = read(&entry)?;
            write(
                &layout.staged(&layout.docdir().join(&name)),
                &text,
                0o644,
                &mut report,
            )?;
        }
    }
    let sudoers = layout.substitute(&read(&deploy.join("sudoers.d/tbevents"))?);
    write(
        &layout.staged(&layout.docdir().join("examples/sudoers.tbevents")),
        &sudoers,
        0o644,
        &mut report,
    )?;
    Ok(report)
}

fn sorted_dir(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    Ok(entries)
}

fn file_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .with_context(|| format!("{} has no UTF-8 file name", path.display()))
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn make_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    Ok(())
}

fn write(path: &Path, text: &str, mode: u32, report: &mut Report) -> anyhow::Result<()> {
    if report.dry_run {
        report.written.push(path.to_owned());
        return Ok(());
    }
    make_parent(path)?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    report.written.push(path.to_owned());
    Ok(())
}

fn copy_program(source: &Path, target: &Path, report: &mut Report) -> anyhow::Result<()> {
    if report.dry_run {
        report.written.push(target.to_owned());
        return Ok(());
    }
    make_parent(target)?;
    // Replace rather than overwrite in place: a running program keeps its
    // old file, and "text file busy" cannot happen.
    let temp = target.with_extension("xtask-new");
    std::fs::copy(source, &temp)
        .with_context(|| format!("cannot copy {} to {}", source.display(), temp.display()))?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot set the mode of {}", temp.display()))?;
    std::fs::rename(&temp, target)
        .with_context(|| format!("cannot move {} into place", target.display()))?;
    report.written.push(target.to_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bins_in_metadata;

    #[test]
    fn metadata_bins_are_the_bin_targets_only() {
        let json = br#"{"packages": [
            {"name": "elvin-router", "targets": [
                {"name": "elvin_router", "kind": ["lib"]},
                {"name": "eventd", "kind": ["bin"]},
                {"name": "fanout", "kind": ["bench"]}]},
            {"name": "tbevents-rpc", "targets": [{"name": "tbevents-rpc", "kind": ["bin"]}]}
        ]}"#;
        assert_eq!(bins_in_metadata(json).unwrap(), ["eventd", "tbevents-rpc"]);
        assert!(bins_in_metadata(b"not json").is_err());
        assert!(bins_in_metadata(b"{}").is_err());
    }
}
