//! Which event server to use when the command line does not say.
//!
//! Every tool that talks to the users' event server (`tevc`, later
//! `evproxy`) resolves its name the same way, first match wins:
//!
//! 1. the command-line flag (`-s host`);
//! 2. the environment variable `TBEVENTS_SERVER` (ignored when empty);
//! 3. `event_server = "host"` in the configuration file: the file named by
//!    `TBEVENTS_CONFIG`, else `/etc/tbevents/tbevents.toml`. Other keys in
//!    the file are ignored (it is shared by several programs). A missing
//!    default file is not an error; a file named by `TBEVENTS_CONFIG` that
//!    is missing, unreadable or not valid TOML is, and so is an unreadable
//!    or invalid default file: a silently ignored configuration would send
//!    events to the wrong place;
//! 4. the built-in default, `event-server`.
//!
//! The configuration file is read only when steps 1 and 2 give nothing,
//! and at most [`MAX_CONFIG_SIZE`] bytes of it.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::constants::DEFAULT_EVENT_SERVER;

/// Environment variable naming the event server.
pub const SERVER_ENV_VAR: &str = "TBEVENTS_SERVER";
/// Environment variable naming the configuration file.
pub const CONFIG_ENV_VAR: &str = "TBEVENTS_CONFIG";
/// The configuration file read when `TBEVENTS_CONFIG` is not set.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/tbevents/tbevents.toml";
/// Largest configuration file read, in bytes.
pub const MAX_CONFIG_SIZE: usize = 1024 * 1024;

/// Where the chosen server name came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerSource {
    /// The command line.
    Flag,
    /// `TBEVENTS_SERVER`.
    Environment,
    /// `event_server` in this configuration file.
    ConfigFile(PathBuf),
    /// The built-in default.
    Default,
}

/// The event server's host name and how it was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerChoice {
    /// Host name or address.
    pub host: String,
    /// Where it came from.
    pub source: ServerSource,
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_SIZE`].
    #[error(
        "the configuration file {} is larger than {limit} bytes; is it the right file?",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// [`MAX_CONFIG_SIZE`].
        limit: usize,
    },
    /// The file is not valid TOML, or `event_server` is not a string.
    #[error("the configuration file {} is not valid: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's explanation.
        message: String,
    },
    /// A server name is empty or contains whitespace.
    #[error(
        "{value:?} (from {origin}) is not a usable event server name: give a host name or address"
    )]
    BadServerName {
        /// The value.
        value: String,
        /// Where it came from.
        origin: String,
    },
}

#[derive(serde::Deserialize)]
struct FileSettings {
    #[serde(default)]
    event_server: Option<String>,
}

/// Resolves the event server from the flag, this process's environment,
/// the configuration file and the default (see the [module docs](self)).
pub fn resolve_event_server(flag: Option<&str>) -> Result<ServerChoice, ConfigError> {
    resolve_event_server_from(
        flag,
        std::env::var(SERVER_ENV_VAR).ok(),
        std::env::var_os(CONFIG_ENV_VAR).map(PathBuf::from),
    )
}

/// [`resolve_event_server`] with the environment given explicitly.
pub fn resolve_event_server_from(
    flag: Option<&str>,
    env_server: Option<String>,
    env_config: Option<PathBuf>,
) -> Result<ServerChoice, ConfigError> {
    if let Some(host) = flag {
        return checked(host, ServerSource::Flag, "the command line");
    }
    if let Some(host) = env_server.filter(|h| !h.is_empty()) {
        return checked(&host, ServerSource::Environment, SERVER_ENV_VAR);
    }
    let (path, must_exist) = match env_config.filter(|p| !p.as_os_str().is_empty()) {
        Some(path) => (path, true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    if let Some(host) = read_event_server(&path, must_exist)? {
        let origin = format!("event_server in {}", path.display());
        return checked(&host, ServerSource::ConfigFile(path), &origin);
    }
    Ok(ServerChoice {
        host: DEFAULT_EVENT_SERVER.to_owned(),
        source: ServerSource::Default,
    })
}

fn checked(host: &str, source: ServerSource, origin: &str) -> Result<ServerChoice, ConfigError> {
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(ConfigError::BadServerName {
            value: host.to_owned(),
            origin: origin.to_owned(),
        });
    }
    Ok(ServerChoice {
        host: host.to_owned(),
        source,
    })
}

/// The `event_server` setting of the file at `path`, if any.
fn read_event_server(path: &Path, must_exist: bool) -> Result<Option<String>, ConfigError> {
    let unreadable = |source| ConfigError::Unreadable {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            return Ok(None);
        }
        Err(error) => return Err(unreadable(error)),
    };
    let mut text = String::new();
    let limit = u64::try_from(MAX_CONFIG_SIZE + 1).unwrap_or(u64::MAX);
    file.take(limit)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    if text.len() > MAX_CONFIG_SIZE {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            limit: MAX_CONFIG_SIZE,
        });
    }
    let settings: FileSettings = toml::from_str(&text).map_err(|error| ConfigError::Invalid {
        path: path.to_owned(),
        message: error.to_string(),
    })?;
    Ok(settings.event_server)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, content: &str) -> PathBuf {
        let path = dir.path().join("tbevents.toml");
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn precedence_flag_env_file_default() {
        let dir = tempfile::tempdir().unwrap();
        let config = file(&dir, "event_server = \"from-file\"\nother = 1\n");
        let env = Some("from-env".to_owned());

        let choice = resolve_event_server_from(Some("flag"), env.clone(), Some(config.clone()));
        assert_eq!(choice.unwrap().source, ServerSource::Flag);

        let choice = resolve_event_server_from(None, env, Some(config.clone())).unwrap();
        assert_eq!(choice.host, "from-env");
        assert_eq!(choice.source, ServerSource::Environment);

        let choice =
            resolve_event_server_from(None, Some(String::new()), Some(config.clone())).unwrap();
        assert_eq!(choice.host, "from-file");
        assert_eq!(choice.source, ServerSource::ConfigFile(config));

        let without = file(&dir, "[other]\nx = 1\n");
        let choice = resolve_event_server_from(None, None, Some(without)).unwrap();
        assert_eq!(choice.host, "event-server");
        assert_eq!(choice.source, ServerSource::Default);
    }

    #[test]
    fn named_file_must_exist_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let error = resolve_event_server_from(None, None, Some(missing.clone())).unwrap_err();
        assert!(matches!(error, ConfigError::Unreadable { .. }));
        assert!(error.to_string().contains("missing.toml"));

        let bad = file(&dir, "event_server = [");
        let error = resolve_event_server_from(None, None, Some(bad)).unwrap_err();
        assert!(matches!(error, ConfigError::Invalid { .. }), "{error}");

        let wrong_type = file(&dir, "event_server = 5");
        let error = resolve_event_server_from(None, None, Some(wrong_type)).unwrap_err();
        assert!(matches!(error, ConfigError::Invalid { .. }), "{error}");

        let blank = file(&dir, "event_server = \"\"");
        let error = resolve_event_server_from(None, None, Some(blank)).unwrap_err();
        assert!(
            matches!(error, ConfigError::BadServerName { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("event_server in"));

        let huge = dir.path().join("huge.toml");
        std::fs::write(&huge, vec![b'#'; MAX_CONFIG_SIZE + 10]).unwrap();
        let error = resolve_event_server_from(None, None, Some(huge)).unwrap_err();
        assert!(matches!(error, ConfigError::TooLarge { .. }), "{error}");
    }

    #[test]
    fn bad_names_from_flag_or_env() {
        assert!(resolve_event_server_from(Some(""), None, None).is_err());
        let error = resolve_event_server_from(None, Some("a b".into()), None).unwrap_err();
        assert!(error.to_string().contains(SERVER_ENV_VAR));
    }
}
