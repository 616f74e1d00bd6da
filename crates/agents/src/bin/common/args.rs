//! The command line every agent binary accepts.
//!
//! The testbed (`tbevents testbed up`) starts agents inside each node's
//! namespace with these flags, so they are a contract: changing one means
//! changing the testbed too. `docs/agents.md` lists them. The short
//! flags are Emulab's (`-s`, `-p`, `-e`, `-k`, `-l`); the rest are long
//! options for what Emulab's agents read from files tmcd wrote.
//!
//! It belongs to the binaries (each includes it with `#[path]`), not to the
//! library, which takes plain values.

use std::path::PathBuf;

use clap::Args;
use tbevents_event::constants::ELVIN_PORT;
use tbevents_store::ExperimentId;

/// Where per-run logs go when `-l` is not given.
pub(crate) const DEFAULT_LOG_DIR: &str = "/var/log/tbevents";

/// Flags shared by every agent (flattened into each binary's parser).
#[derive(Clone, Debug, Args)]
pub(crate) struct CommonArgs {
    /// The node's event router host.
    #[arg(
        short = 's',
        long = "server",
        value_name = "HOST",
        default_value = "localhost"
    )]
    pub(crate) server: String,

    /// The node's event router port.
    #[arg(short = 'p', long = "port", value_name = "PORT", default_value_t = ELVIN_PORT)]
    pub(crate) port: u16,

    /// The experiment, `pid/eid`.
    #[arg(short = 'e', long = "experiment", value_name = "PID/EID", value_parser = parse_experiment)]
    pub(crate) experiment: ExperimentId,

    /// The experiment's event key file (as `tbevents create` writes it).
    #[arg(short = 'k', long = "keyfile", value_name = "PATH")]
    pub(crate) keyfile: PathBuf,

    /// The HOST value this node answers to: its control IP, as the
    /// scheduler addresses it. Events with HOST `*` are for every node.
    /// Default (also for an empty value): the node's control IP from the
    /// store's swap-in mapping; without one, every HOST is accepted.
    #[arg(long = "host", value_name = "ADDR", value_parser = parse_host)]
    pub(crate) host: Option<String>,

    /// The virtual node whose rows this agent serves.
    #[arg(long = "vnode", value_name = "NAME")]
    pub(crate) vnode: String,

    /// Where to read the experiment's rows (any store URL; read only).
    /// Default: $TBEVENTS_STORE, else sqlite:/var/lib/tbevents/tbevents.db.
    #[arg(long = "store", value_name = "URL")]
    pub(crate) store: Option<String>,

    /// Directory for per-run logs.
    #[arg(short = 'l', long = "logdir", value_name = "DIR", default_value = DEFAULT_LOG_DIR)]
    pub(crate) logdir: PathBuf,

    /// More logging (twice for everything, including the event library).
    #[arg(short = 'd', long = "debug", action = clap::ArgAction::Count)]
    pub(crate) debug: u8,
}

impl CommonArgs {
    /// `pid/eid` as events carry it in `EXPT`.
    pub(crate) fn expt(&self) -> String {
        self.experiment.to_string()
    }

    /// `--host`, unless absent or empty.
    pub(crate) fn host(&self) -> Option<String> {
        self.host.clone().filter(|h| !h.is_empty())
    }

    /// The router's URI.
    pub(crate) fn server_uri(&self) -> String {
        tbevents_event::server_uri(&self.server, Some(self.port))
    }
}

/// Parses and checks `pid/eid` against Emulab's naming rules.
pub(crate) fn parse_experiment(text: &str) -> Result<ExperimentId, String> {
    let id = ExperimentId::parse(text)
        .ok_or_else(|| format!("`{text}` is not pid/eid (for example testbed/demo)"))?;
    id.validate().map_err(|error| error.to_string())?;
    Ok(id)
}

/// A HOST value: no spaces or commas (they would split it in the
/// subscription), and not `*` (which every node answers anyway). Empty
/// means "not given".
pub(crate) fn parse_host(text: &str) -> Result<String, String> {
    if text == "*" {
        return Err("give this node's control address, for example 10.0.0.2".to_owned());
    }
    if text
        .chars()
        .any(|c| c.is_whitespace() || c == ',' || c.is_control())
    {
        return Err(format!(
            "`{text}` cannot be a HOST value: no spaces or commas"
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn contract_flags_parse_with_defaults() {
        let probe =
            Probe::try_parse_from(["x", "-e", "testbed/demo", "-k", "/k", "--vnode", "client"])
                .unwrap();
        let c = probe.common;
        assert_eq!(c.server, "localhost");
        assert_eq!(c.port, 2917);
        assert_eq!(c.expt(), "testbed/demo");
        assert_eq!(c.host, None);
        assert_eq!(c.logdir, PathBuf::from(DEFAULT_LOG_DIR));
        assert_eq!(c.server_uri(), "elvin://localhost:2917");

        let probe = Probe::try_parse_from([
            "x",
            "--server",
            "10.0.0.1",
            "--port",
            "3000",
            "--experiment",
            "p/e",
            "--keyfile",
            "/k",
            "--host",
            "10.1.1.2",
            "--vnode",
            "n",
            "--store",
            "sqlite:/x.db",
            "--logdir",
            "/tmp/l",
        ])
        .unwrap();
        assert_eq!(probe.common.host.as_deref(), Some("10.1.1.2"));
        assert_eq!(probe.common.store.as_deref(), Some("sqlite:/x.db"));
    }

    #[test]
    fn required_and_checked() {
        assert!(Probe::try_parse_from(["x", "-k", "/k", "--vnode", "n"]).is_err());
        assert!(Probe::try_parse_from(["x", "-e", "p/e", "--vnode", "n"]).is_err());
        assert!(Probe::try_parse_from(["x", "-e", "p/e", "-k", "/k"]).is_err());
        for bad in ["p", "/e", "p/", "p;x/e"] {
            assert!(
                Probe::try_parse_from(["x", "-e", bad, "-k", "/k", "--vnode", "n"]).is_err(),
                "{bad}"
            );
        }
        let empty =
            Probe::try_parse_from(["x", "-e", "p/e", "-k", "/k", "--vnode", "n", "--host", ""])
                .unwrap();
        assert_eq!(empty.common.host(), None);
        for bad in ["*", "a b", "a,b"] {
            assert!(
                Probe::try_parse_from([
                    "x", "-e", "p/e", "-k", "/k", "--vnode", "n", "--host", bad
                ])
                .is_err(),
                "{bad}"
            );
        }
    }
}
