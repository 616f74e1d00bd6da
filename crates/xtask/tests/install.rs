//! `cargo xtask install` lays out what docs/deploy.md promises, the units
//! pass `systemd-analyze verify`, and configuration edits survive a
//! re-install.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tbevents_testkit::run_to_text;

/// A directory of stand-in programs (the layout, not the programs, is
/// under test; stand-ins keep this test from needing a release build).
fn fake_build(dir: &Path, with_rpc: bool) {
    let mut names = vec![
        "eventd",
        "tevc",
        "eventdebug",
        "evproxy",
        "tbevents-relay",
        "event-sched",
        "tbevents",
        "eventd-bench",
        "program-agent",
        "trafgen",
        "linktest",
        "tbevents-eventsys-proxy",
    ];
    if with_rpc {
        names.push("tbevents-rpc");
    }
    std::fs::create_dir_all(dir).unwrap();
    for name in names {
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn install(args: &[&str]) -> String {
    let (ok, text) = run_to_text(
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .env_remove("DESTDIR")
            .arg("install")
            .args(args),
    );
    assert!(ok, "xtask install {args:?}: {text}");
    text
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn destdir_install_lays_out_programs_configuration_units_and_docs() {
    let (_dir, build, stage) = staged_install(&["--unitdir", "/lib/systemd/system"]);
    for program in [
        "eventd",
        "event-sched",
        "tbevents",
        "evproxy",
        "tbevents-relay",
        "tevc",
    ] {
        assert_eq!(
            mode(&stage.join("usr/bin").join(program)),
            0o755,
            "{program}"
        );
    }
    assert_eq!(mode(&stage.join("usr/sbin/tbevents-eventsys-proxy")), 0o755);
    for unit in [
        "tbevents-eventd.service",
        "tbevents-eventd-control.service",
        "tbevents-relay.service",
        "tbevents-node-eventd.service",
        "tbevents-evproxy.service",
    ] {
        let text = std::fs::read_to_string(stage.join("lib/systemd/system").join(unit)).unwrap();
        for placeholder in ["@BINDIR@", "@SBINDIR@", "@SYSCONFDIR@", "@DOCDIR@"] {
            assert!(
                !text.contains(placeholder),
                "{unit} still has {placeholder}:\n{text}"
            );
        }
        assert!(text.contains("NoNewPrivileges=yes") && text.contains("ProtectSystem=strict"));
        assert!(
            text.contains("ExecStart=/usr/bin/"),
            "{unit}: final paths, not staged ones"
        );
    }
    // No RPC server in this build: no unit for it.
    assert!(
        !stage
            .join("lib/systemd/system/tbevents-rpc.service")
            .exists()
    );

    // The configuration examples are valid for the programs that read them.
    let etc = stage.join("etc/tbevents");
    let control = std::fs::read_to_string(etc.join("control.toml")).unwrap();
    let parsed = tbevents_control::ControlConfig::parse(&control).unwrap();
    assert_eq!(parsed.event_sched, PathBuf::from("/usr/bin/event-sched"));
    for file in ["eventd.toml", "eventd-control.toml", "eventd-node.toml"] {
        let text = std::fs::read_to_string(etc.join(file)).unwrap();
        let config = elvin_router::config::FileConfig::parse(&text)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let listen = config.listen.unwrap();
        if file != "eventd.toml" {
            assert!(
                listen.iter().all(|l| l.contains("127.0.0.1")),
                "{file}: loopback only"
            );
        }
    }
    assert!(
        std::fs::read_to_string(etc.join("eventd-control.toml"))
            .unwrap()
            .contains(":2927")
    );
    assert!(stage.join("usr/share/doc/tbevents/eventsys.md").is_file());
    let sudoers =
        std::fs::read_to_string(stage.join("usr/share/doc/tbevents/examples/sudoers.tbevents"))
            .unwrap();
    assert!(
        sudoers.contains("/usr/sbin/tbevents-eventsys-proxy"),
        "{sudoers}"
    );

    // Re-installing keeps an edited configuration file.
    std::fs::write(etc.join("control.toml"), "server = \"ops\"\n").unwrap();
    let out = install(&[
        "--destdir",
        stage.to_str().unwrap(),
        "--prefix",
        "/usr",
        "--from",
        build.to_str().unwrap(),
    ]);
    assert!(out.contains("kept"), "{out}");
    assert_eq!(
        std::fs::read_to_string(etc.join("control.toml")).unwrap(),
        "server = \"ops\"\n"
    );
    assert!(etc.join("control.toml.new").is_file());
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let available = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        eprintln!("SKIPPED: systemd-analyze is not installed, so the units cannot be verified");
        return;
    }
    // A live-style layout in a temporary prefix, so every ExecStart names
    // an existing program (verify checks that).
    let dir = tempfile::tempdir().unwrap();
    let build = dir.path().join("build");
    fake_build(&build, true);
    let prefix = dir.path().join("prefix");
    let sysconf = dir.path().join("etc");
    let units = dir.path().join("units");
    install(&[
        "--prefix",
        prefix.to_str().unwrap(),
        "--sysconfdir",
        sysconf.to_str().unwrap(),
        "--unitdir",
        units.to_str().unwrap(),
        "--from",
        build.to_str().unwrap(),
    ]);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&units)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 6, "{files:?}");
    let (ok, text) = run_to_text(Command::new("systemd-analyze").arg("verify").args(&files));
    assert!(ok, "systemd-analyze verify: {text}");
    assert!(
        text.trim().is_empty(),
        "systemd-analyze verify warned:\n{text}"
    );
}

/// Installs stand-in programs under `--destdir STAGE --prefix /usr` plus
/// `extra`; returns (the temporary directory, the build, the stage).
fn staged_install(extra: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let build = dir.path().join("build");
    fake_build(&build, false);
    let stage = dir.path().join("stage");
    let mut args = vec![
        "--destdir",
        stage.to_str().unwrap(),
        "--prefix",
        "/usr",
        "--from",
        build.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    install(&args);
    (dir, build, stage)
}

#[test]
fn router_examples_pass_eventd_check_config() {
    // The real program, not just its library parser: --check-config also
    // resolves the settings the way a start would.
    let (_dir, _build, stage) = staged_install(&[]);
    let eventd = tbevents_testkit::bin_path("eventd");
    let etc = stage.join("etc/tbevents");
    let mut checked = 0;
    for entry in std::fs::read_dir(&etc).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !(name.starts_with("eventd") && name.ends_with(".toml")) {
            continue;
        }
        let (ok, text) = run_to_text(
            Command::new(&eventd)
                .arg("--check-config")
                .arg("--config")
                .arg(&path),
        );
        assert!(ok, "eventd --check-config --config {name}: {text}");
        checked += 1;
    }
    assert_eq!(
        checked, 3,
        "eventd.toml, eventd-control.toml, eventd-node.toml"
    );
}

#[test]
fn dry_run_reports_every_path_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let build = dir.path().join("build");
    fake_build(&build, false);
    let stage = dir.path().join("stage");
    let out = install(&[
        "--dry-run",
        "--destdir",
        stage.to_str().unwrap(),
        "--prefix",
        "/usr",
        "--unitdir",
        "/lib/systemd/system",
        "--from",
        build.to_str().unwrap(),
    ]);
    assert!(!stage.exists(), "a dry run created {}", stage.display());
    for path in [
        "usr/bin/eventd",
        "usr/sbin/tbevents-eventsys-proxy",
        "etc/tbevents/eventd.toml",
        "lib/systemd/system/tbevents-eventd.service",
    ] {
        let line = format!("would install {}", stage.join(path).display());
        assert!(out.contains(&line), "no {line:?} in:\n{out}");
    }
    assert!(out.contains("nothing was built or written"), "{out}");

    // Without --from it plans from the workspace's binary targets
    // (cargo metadata) and builds nothing.
    let out = install(&["--dry-run", "--destdir", stage.to_str().unwrap()]);
    assert!(!stage.exists(), "a dry run created {}", stage.display());
    let line = format!(
        "would install {}",
        stage.join("usr/local/bin/event-sched").display()
    );
    assert!(out.contains(&line), "no {line:?} in:\n{out}");
    // Every binary target a site uses, found without a list: delay-agent
    // came with a later crate.
    let line = format!(
        "would install {}",
        stage.join("usr/local/bin/delay-agent").display()
    );
    assert!(out.contains(&line), "no {line:?} in:\n{out}");
    assert!(
        !out.contains("tbevents-ctlfwd"),
        "a test-only program:\n{out}"
    );
    // A unit only with its program.
    assert_eq!(
        out.contains("tbevents-rpc.service"),
        out.contains("bin/tbevents-rpc\n"),
        "{out}"
    );
}
