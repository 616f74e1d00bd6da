//! What the tool reads from, and asks of, the local operating system: the
//! router's resident memory, the router's process id (found from its
//! listening port), and enough file descriptors for thousands of sessions.
//!
//! Everything comes from `/proc` (Linux). The parsers are separate pure
//! functions over the file text, so they are tested without a live router;
//! every file read is bounded (see [`read_small`]) so a strange `/proc`
//! cannot make the tool use unbounded memory.

use std::io::Read;
use std::path::Path;

use crate::error::BenchError;

/// Largest `/proc` file read (bytes). `/proc/net/tcp` holds one ~150-byte
/// line per socket, so this covers about 400,000 sockets.
const PROC_READ_LIMIT: u64 = 64 * 1024 * 1024;

/// TCP state code of a listening socket in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";

/// Reads a text file of at most `PROC_READ_LIMIT` bytes.
pub fn read_small(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(PROC_READ_LIMIT)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// `VmRSS` in KiB from the text of `/proc/<pid>/status`.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix("VmRSS:")?;
        let mut words = rest.split_whitespace();
        let number = words.next()?.parse().ok()?;
        (words.next()? == "kB").then_some(number)
    })
}

/// The resident memory of process `pid` in KiB.
pub fn resident_kib(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let text = read_small(Path::new(&path)).map_err(|e| {
        BenchError::Local(format!(
            "cannot read {path}: {e} (is process {pid} running?)"
        ))
    })?;
    parse_vm_rss_kib(&text).ok_or_else(|| BenchError::Local(format!("{path} has no VmRSS line")))
}

/// Socket inodes listening on TCP `port`, from the text of `/proc/net/tcp`
/// or `/proc/net/tcp6`.
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    let port_hex = format!("{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let inode = fields.get(9)?;
            let (_, local_port) = local.rsplit_once(':')?;
            (local_port.eq_ignore_ascii_case(&port_hex) && *state == TCP_LISTEN)
                .then(|| inode.parse().ok())
                .flatten()
        })
        .filter(|inode| *inode != 0)
        .collect()
}

/// The process listening on TCP `port` of this host, found through
/// `/proc/net/tcp{,6}` and the `socket:[inode]` links in `/proc/*/fd`.
/// `None` when no listener is found or its owner is not visible to us.
pub fn find_listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = read_small(Path::new(table)) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let targets: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let processes = std::fs::read_dir("/proc").ok()?;
    for entry in processes.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path())
                && targets.iter().any(|t| link.as_os_str() == t.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

/// Raises this process's open-file limit to its hard limit and returns
/// the new soft limit. Fails with advice if it stays below `needed`.
pub fn raise_fd_limit(needed: u64) -> Result<u64, BenchError> {
    let limit = tbevents_cli::limits::raise_open_files(None)
        .map_err(|e| BenchError::Local(format!("cannot raise the open-file limit: {e}")))?;
    if limit.now < needed {
        return Err(BenchError::Local(format!(
            "this test needs {needed} open files but the limit is {} (hard limit {}); \
             raise it (ulimit -n {needed}) or ask for fewer connections",
            limit.now, limit.hard
        )));
    }
    Ok(limit.now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\teventd\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss_kib(status), Some(12_345));
        assert_eq!(parse_vm_rss_kib("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss_kib("VmRSS:\tlots kB\n"), None);
        assert_eq!(parse_vm_rss_kib("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn only_listening_sockets_on_the_port_are_found() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0B65 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:0B65 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1\n\
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0\n\
   3: garbage\n";
        assert_eq!(listening_inodes(table, 2917), vec![4242]);
        assert_eq!(listening_inodes(table, 22), vec![4444]);
        assert!(listening_inodes(table, 80).is_empty());
        assert!(listening_inodes("", 2917).is_empty());
    }

    #[test]
    fn our_own_listener_is_found_and_measured() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(find_listener_pid(port), Some(std::process::id()));
        assert!(resident_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn fd_limit_is_raised_or_explained() {
        let limit = raise_fd_limit(16).unwrap();
        assert!(limit >= 16);
        let error = raise_fd_limit(u64::MAX).unwrap_err();
        assert!(error.to_string().contains("ulimit -n"));
    }
}
