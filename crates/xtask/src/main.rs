//! `cargo xtask`: project tasks that are programs rather than shell
//! scripts, so they run wherever cargo does. Today: `install`, the
//! deployment kit (docs/deploy.md).

mod install;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "tbevents project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build (release) and install the programs, example configuration,
    /// systemd units and documentation.
    #[command(after_help = "EXAMPLES:\n  \
sudo cargo xtask install\n  \
cargo xtask install --destdir /tmp/stage --prefix /usr --unitdir /lib/systemd/system\n\n\
See docs/deploy.md.")]
    Install {
        /// Staging directory prepended to every path (for packages).
        #[arg(long, value_name = "DIR", env = "DESTDIR")]
        destdir: Option<PathBuf>,
        /// Installation prefix: programs in PREFIX/bin and PREFIX/sbin.
        #[arg(long, value_name = "DIR", default_value = "/usr/local")]
        prefix: PathBuf,
        /// Configuration root: files go to SYSCONFDIR/tbevents.
        #[arg(long, value_name = "DIR", default_value = "/etc")]
        sysconfdir: PathBuf,
        /// systemd unit directory.
        #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
        unitdir: PathBuf,
        /// Install the programs in DIR instead of building them.
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// Print every path that would be installed; build and write
        /// nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let Task::Install {
        destdir,
        prefix,
        sysconfdir,
        unitdir,
        from,
        dry_run,
    } = Cli::parse().command;
    let root = install::workspace_root();
    let result = (|| -> anyhow::Result<()> {
        for (flag, path) in [
            ("--prefix", &prefix),
            ("--sysconfdir", &sysconfdir),
            ("--unitdir", &unitdir),
        ] {
            if !path.is_absolute() {
                anyhow::bail!("{flag} must be an absolute path, not {}", path.display());
            }
        }
        let workspace_bins = install::workspace_bins(&root)?;
        let (from, planned) = match (from, dry_run) {
            (Some(dir), _) => (dir, Vec::new()),
            (None, false) => (install::build_release(&root)?, Vec::new()),
            (None, true) => (install::release_dir(&root), workspace_bins.clone()),
        };
        let layout = install::Layout {
            destdir: destdir.unwrap_or_default(),
            prefix,
            sysconfdir,
            unitdir,
            dry_run,
            workspace_bins,
            planned,
        };
        let report = install::install(&root, &from, &layout)?;
        let (installed, kept) = if dry_run {
            ("would install", "would keep")
        } else {
            ("installed", "kept")
        };
        for path in &report.written {
            println!("{installed} {}", path.display());
        }
        for path in &report.kept {
            println!(
                "{kept} {} (the new example is {}.new)",
                path.display(),
                path.display()
            );
        }
        for name in &report.skipped {
            println!("skipped {name} (not in this build)");
        }
        if dry_run {
            println!("\ndry run: nothing was built or written");
            return Ok(());
        }
        println!(
            "\nnext: systemctl daemon-reload; systemctl enable --now tbevents-eventd \
             tbevents-eventd-control (see docs/deploy.md)"
        );
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}
