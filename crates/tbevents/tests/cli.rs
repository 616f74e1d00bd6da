//! The `tbevents` command as an operator uses it: real binary, real SQLite
//! file, the repository's example NS files.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn store(&self) -> String {
        format!("sqlite:{}", self.dir.path().join("store.db").display())
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tbevents"))
            .arg("--store")
            .arg(self.store())
            .args(args)
            .env_remove("TBEVENTS_STORE")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tbevents {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "tbevents {args:?} should fail");
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8(out.stderr).unwrap()
    }

    fn create_demo(&self) -> PathBuf {
        let exp_dir = self.dir.path().join("exp");
        let ns = examples().join("demo.ns");
        let out = self.ok(&[
            "create",
            "-e",
            "testbed/web",
            "--path",
            exp_dir.to_str().unwrap(),
            ns.to_str().unwrap(),
        ]);
        assert!(out.contains("created testbed/web"), "{out}");
        assert!(out.contains("13 static events"), "{out}");
        assert!(
            out.contains("next: tbevents swapin -e testbed/web"),
            "{out}"
        );
        exp_dir
    }
}

#[test]
fn create_writes_rows_and_a_private_key_file() {
    let env = Env::new();
    let exp_dir = env.create_demo();
    let key_path = exp_dir.join("tbdata/eventkey");
    let key = std::fs::read_to_string(&key_path).unwrap();
    assert_eq!(key.len(), 32, "32 hex characters, no newline");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert_eq!(env.ok(&["state", "-e", "testbed/web"]).trim(), "swapped");
    let list = env.ok(&["list"]);
    assert!(list.starts_with("EXPERIMENT"), "{list}");
    assert!(
        list.contains("testbed/web") && list.contains("swapped"),
        "{list}"
    );
    // Creating it twice is refused with the store's message.
    let err = env.fails(&[
        "create",
        "-e",
        "testbed/web",
        "--path",
        exp_dir.to_str().unwrap(),
        examples().join("demo.ns").to_str().unwrap(),
    ]);
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn every_form_example_is_accepted() {
    let env = Env::new();
    let exp_dir = env.dir.path().join("every");
    let out = env.ok(&[
        "create",
        "-e",
        "testbed/every",
        "--path",
        exp_dir.to_str().unwrap(),
        examples().join("every-form.ns").to_str().unwrap(),
    ]);
    assert!(out.contains("created testbed/every"), "{out}");
    let events = env.ok(&["events", "-e", "testbed/every"]);
    assert!(events.contains("static events; times are seconds after time zero"));
}

#[test]
fn swapin_maps_nodes_and_agents_show_their_hosts() {
    let env = Env::new();
    env.create_demo();
    let before = env.ok(&["agents", "-e", "testbed/web"]);
    assert!(before.contains("(not swapped in)"), "{before}");
    let out = env.ok(&[
        "swapin",
        "-e",
        "testbed/web",
        "--map",
        "client=pc12:10.0.0.12",
    ]);
    let client = out.lines().find(|l| l.starts_with("client ")).unwrap();
    assert!(
        client.contains("pc12") && client.contains("10.0.0.12"),
        "{out}"
    );
    assert!(
        out.contains("testbed/web is active (4 nodes mapped)"),
        "{out}"
    );
    // Unmapped-by-flag nodes get loopback defaults.
    assert!(out.contains("router") && out.contains("127.0."), "{out}");
    assert_eq!(env.ok(&["state", "-e", "testbed/web"]).trim(), "active");

    let agents = env.ok(&["agents", "-e", "testbed/web"]);
    let fetch = agents.lines().find(|l| l.starts_with("fetch ")).unwrap();
    assert!(
        fetch.contains("PROGRAM") && fetch.contains("10.0.0.12"),
        "{fetch}"
    );
    let link = agents.lines().find(|l| l.starts_with("access ")).unwrap();
    assert!(
        link.contains("LINK") && link.trim_end().ends_with('*'),
        "{link}"
    );
    assert!(
        agents.contains("GROUP") && agents.contains("fetch recorder"),
        "{agents}"
    );

    let events = env.ok(&["events", "-e", "testbed/web"]);
    let lines: Vec<&str> = events.lines().collect();
    assert!(lines[0].starts_with("TIME"), "{events}");
    assert!(
        lines[1].starts_with("1.000") && lines[1].contains("fetch"),
        "{events}"
    );
    assert!(events.contains("DELAY=50ms"), "{events}");
    assert!(events.contains("13 static events"), "{events}");

    let out = env.ok(&["swapout", "-e", "testbed/web"]);
    assert!(out.contains("swapped out"), "{out}");
    assert_eq!(env.ok(&["state", "-e", "testbed/web"]).trim(), "swapped");
    assert!(
        env.ok(&["agents", "-e", "testbed/web"])
            .contains("(not swapped in)")
    );

    let err = env.fails(&[
        "swapin",
        "-e",
        "testbed/web",
        "--map",
        "nosuch=pc1:10.0.0.1",
    ]);
    assert!(
        err.contains("`nosuch` is not a node of testbed/web"),
        "{err}"
    );
    assert!(err.contains("client, router, server1, server2"), "{err}");
    let err = env.fails(&["swapin", "-e", "testbed/web", "--map", "client=pc1"]);
    assert!(err.contains("VNODE=NODE_ID:CONTROL_IP"), "{err}");
}

#[test]
fn state_changes_are_checked_and_delete_removes_the_experiment() {
    let env = Env::new();
    env.create_demo();
    let out = env.ok(&["state", "-e", "testbed/web", "activating"]);
    assert!(out.contains("swapped -> activating"), "{out}");
    let err = env.fails(&["state", "-e", "testbed/web", "running"]);
    assert!(err.contains("unknown experiment state `running`"), "{err}");
    assert!(
        env.ok(&["delete", "-e", "testbed/web"])
            .contains("deleted testbed/web")
    );
    let err = env.fails(&["state", "-e", "testbed/web"]);
    assert!(err.contains("experiment testbed/web not found"), "{err}");
    let err = env.fails(&["state", "-e", "no-slash"]);
    assert!(err.contains("write it as pid/eid"), "{err}");
}

#[test]
fn a_bad_ns_file_is_reported_with_file_and_line() {
    let env = Env::new();
    let bad = env.dir.path().join("bad.ns");
    std::fs::write(
        &bad,
        "set ns [new Simulator]\nsource tb_compat.tcl\nset n0 [$ns node]\n$ns at 1 \"$ghost start\"\n$ns run\n",
    )
    .unwrap();
    let err = env.fails(&["create", "-e", "testbed/bad", bad.to_str().unwrap()]);
    let expected = format!("{}:4:", bad.display());
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains("ghost"), "{err}");
    // Nothing was created.
    assert!(env.ok(&["list"]).contains("no experiments"));

    let proc_file = env.dir.path().join("proc.ns");
    std::fs::write(
        &proc_file,
        "set ns [new Simulator]\nproc f {} {}\n$ns run\n",
    )
    .unwrap();
    let err = env.fails(&["create", "-e", "testbed/bad", proc_file.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "{}:2: unsupported command 'proc'",
            proc_file.display()
        )),
        "{err}"
    );
}

#[test]
fn help_reads_like_a_manual() {
    let env = Env::new();
    let help = env.ok(&["--help"]);
    for word in [
        "create", "swapin", "swapout", "state", "list", "agents", "events", "delete", "demo",
        "EXAMPLES",
    ] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
    let create = env.ok(&["create", "--help"]);
    assert!(create.contains("/proj/<pid>/exp/<eid>"), "{create}");
}
