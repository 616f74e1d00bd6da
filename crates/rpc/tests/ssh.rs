//! The ssh transport for real: a private `sshd` on a loopback port with its
//! own host key, a boss service account that owns the store, and in that
//! account's `authorized_keys` one line per user key whose forced command is
//! `tbevents-rpc --stdio --user UID` (docs/rpc.md, "ssh"). The client store
//! runs the real `ssh` program.
//!
//! Needs root (to run sshd and add the service account) and openssh-server
//! (`.ci/run` installs it); without them each test says why it did not run.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{EVENTS, build_store};
use tbevents_rpc::XmlRpcStore;
use tbevents_store::{ExperimentId, ExperimentStore, StoreError};
use tbevents_testkit::Proc;

const SSHD: &str = "/usr/sbin/sshd";

/// Why this machine cannot run the real-sshd tests, if it cannot.
fn missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("running sshd and adding a service account need root".into());
    }
    for program in [
        SSHD,
        "/usr/bin/ssh",
        "/usr/bin/ssh-keygen",
        "/usr/sbin/useradd",
    ] {
        if !Path::new(program).exists() {
            return Some(format!(
                "{program} is missing (install openssh-server and openssh-client; .ci/run does)"
            ));
        }
    }
    None
}

/// A running private sshd, its service account and the keys.
struct SshLab {
    dir: tempfile::TempDir,
    account: String,
    port: u16,
    store_url: String,
    id: ExperimentId,
    sshd: Proc,
}

impl Drop for SshLab {
    fn drop(&mut self) {
        // sshd first (the Proc kills it when dropped), then its account.
        self.sshd.kill();
        let _ = Command::new("userdel").arg(&self.account).status();
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?}: {status}");
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn keygen(path: &Path) -> String {
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            path.to_str().unwrap(),
        ],
    );
    std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned()
}

impl SshLab {
    fn start() -> SshLab {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let id = ExperimentId::new("tproj", "texp");

        // boss's side: a service account that alone can read the store.
        let account = format!(
            "tbrpc{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(
            "useradd",
            &[
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/bin/sh",
                // "*": no password, but not a locked account, which sshd
                // would refuse even for key logins.
                "--password",
                "*",
                &account,
            ],
        );
        let boss = dir.path().join("boss");
        std::fs::create_dir(&boss).unwrap();
        let store_url = format!("sqlite:{}", boss.join("boss.db").display());
        build_store(&store_url, &id);
        run("chown", &["-R", &account, boss.to_str().unwrap()]);
        chmod(&boss, 0o700);

        let host_key = keygen(&dir.path().join("host_key"));
        let rpc = env!("CARGO_BIN_EXE_tbevents-rpc");
        let mut authorized = String::new();
        for user in ["alice", "mallory"] {
            let public = keygen(&dir.path().join(format!("{user}_ssh")));
            authorized.push_str(&format!(
                "command=\"{rpc} --stdio --store {store_url} --user {user}\",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding {public}\n"
            ));
        }
        // A key boss has never heard of.
        keygen(&dir.path().join("stranger_ssh"));
        let authorized_keys = dir.path().join("authorized_keys");
        std::fs::write(&authorized_keys, authorized).unwrap();
        chmod(&authorized_keys, 0o644);

        let port = tbevents_testkit::free_port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {pid}\n\
                 AuthorizedKeysFile {authorized}\nAllowUsers {account}\nStrictModes no\n\
                 UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin no\nLogLevel VERBOSE\n",
                host = dir.path().join("host_key").display(),
                pid = dir.path().join("sshd.pid").display(),
                authorized = authorized_keys.display(),
            ),
        )
        .unwrap();
        // sshd's privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let mut command = Command::new(SSHD);
        command.arg("-D").arg("-e").arg("-f").arg(&config);
        let mut sshd = Proc::spawn("sshd", command);
        // `-e` logs to stderr; this line comes once the socket listens
        // (and if sshd exits first, the wait says so with its log).
        sshd.wait_for_output(
            &format!("Server listening on 127.0.0.1 port {port}"),
            Duration::from_secs(20),
        );
        std::fs::write(
            dir.path().join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_key}\n"),
        )
        .unwrap();
        chmod(&dir.path().join("known_hosts"), 0o644);
        SshLab {
            dir,
            account,
            port,
            store_url,
            id,
            sshd,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn sshd_log(&self) -> String {
        self.sshd.stderr()
    }

    /// The `ssh` command line: this lab's known_hosts only, no user or
    /// system configuration.
    fn ssh_program(&self, known_hosts: &Path) -> String {
        format!(
            "ssh -F /dev/null -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null \
             -o StrictHostKeyChecking=yes -o ConnectTimeout=10",
            known_hosts.display()
        )
    }

    fn url(&self, identity: &Path) -> String {
        format!(
            "xmlrpc+ssh://{}@127.0.0.1:{}?identity={}",
            self.account,
            self.port,
            identity.display()
        )
    }
}

#[test]
fn a_member_reads_over_real_ssh_and_others_are_refused() {
    if let Some(why) = missing() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let lab = SshLab::start();
    // SAFETY: the only test in this binary that reads the variable in
    // process; the other passes it to its child's environment.
    unsafe {
        std::env::set_var(
            tbevents_rpc::client::SSH_ENV,
            lab.ssh_program(&lab.path("known_hosts")),
        );
    }
    let local = tbevents_store::open(&lab.store_url).unwrap();
    let alice = XmlRpcStore::open(&lab.url(&lab.path("alice_ssh"))).unwrap();
    let events = alice
        .events(&lab.id)
        .unwrap_or_else(|e| panic!("{e}\nsshd: {}", lab.sshd_log()));
    assert_eq!(events.len(), EVENTS);
    assert_eq!(events, local.events(&lab.id).unwrap());
    assert_eq!(
        alice.agents(&lab.id).unwrap(),
        local.agents(&lab.id).unwrap()
    );
    assert_eq!(
        alice.groups(&lab.id).unwrap(),
        local.groups(&lab.id).unwrap()
    );
    // Unknown experiment: the store's own not-found error, over ssh too.
    let missing = ExperimentId::new("tproj", "nosuch");
    assert!(matches!(
        alice.events(&missing),
        Err(StoreError::ExperimentNotFound(_))
    ));

    // mallory's key logs in, but mallory is not in the project.
    let mallory = XmlRpcStore::open(&lab.url(&lab.path("mallory_ssh"))).unwrap();
    let err = mallory.events(&lab.id).unwrap_err().to_string();
    assert!(err.contains("permission"), "{err}");

    // A key boss does not know: ssh's own words, and no retrying.
    let stranger = XmlRpcStore::open(&lab.url(&lab.path("stranger_ssh"))).unwrap();
    let err = stranger.events(&lab.id).unwrap_err().to_string();
    assert!(err.contains("Permission denied"), "{err}");
    assert!(err.contains("authorized_keys"), "{err}");
    assert!(!err.contains("gave up after"), "{err}");

    // A boss whose host key is not the one we know: refused, no retrying.
    std::fs::write(lab.path("wrong_hosts"), "").unwrap();
    let wrong_host = lab.path("other_host");
    let other_key = keygen(&wrong_host);
    std::fs::write(
        lab.path("wrong_hosts"),
        format!("[127.0.0.1]:{} {other_key}\n", lab.port),
    )
    .unwrap();
    unsafe {
        std::env::set_var(
            tbevents_rpc::client::SSH_ENV,
            lab.ssh_program(&lab.path("wrong_hosts")),
        );
    }
    let spoofed = XmlRpcStore::open(&lab.url(&lab.path("alice_ssh"))).unwrap();
    let err = spoofed.events(&lab.id).unwrap_err().to_string();
    assert!(err.contains("Host key verification failed"), "{err}");
    assert!(!err.contains("gave up after"), "{err}");
}

/// The end-to-end path over ssh: a user's real `event-sched` (as
/// `nobody`, never root) runs `ssh` with the user's key, loads its
/// experiment from boss's forced command and fires its events.
#[test]
fn a_scheduler_loads_its_experiment_over_real_ssh_and_fires_its_events() {
    if let Some(why) = missing() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let lab = SshLab::start();
    // The user's key, readable by the user (nobody) alone, as ssh demands.
    let user_dir = lab.path("user");
    std::fs::create_dir(&user_dir).unwrap();
    chmod(&user_dir, 0o755);
    let identity = user_dir.join("id_ed25519");
    std::fs::copy(lab.path("alice_ssh"), &identity).unwrap();
    run("chown", &["nobody", identity.to_str().unwrap()]);
    chmod(&identity, 0o600);
    let ssh = lab.ssh_program(&lab.path("known_hosts"));
    common::scheduler_fires_its_events(
        &user_dir,
        &lab.url(&identity),
        &[(tbevents_rpc::client::SSH_ENV, ssh.as_str())],
    );
}
