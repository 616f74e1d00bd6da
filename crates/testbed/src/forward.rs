//! The control forwarder: how nodes in their namespaces reach the
//! experiment's event server on the host.
//!
//! A node's namespace has its own loopback and no route out, by design
//! (the testbed never adds an address or route to the host's network).
//! The experiment's event server, though, listens on the host (usually on
//! its loopback). One forwarder process per experiment bridges the two: it
//! creates a listening socket *inside* each node's namespace, at
//! [`crate::plan::BOSS_ADDRESS`]:2917 — from a thread that joined the
//! namespace, since a socket stays in the namespace it was made in — and
//! relays every connection accepted there to the event server, connected
//! from the host's namespace. The node's `evproxy` uses that address as its
//! event server, exactly as a real node uses `event-server`.
//!
//! Only TCP streams are relayed, byte for byte: Elvin framing, signatures
//! and everything else pass through untouched, and closing either side
//! closes the other.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};

use crate::netns;

/// One namespace to listen in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// The namespace's name.
    pub namespace: String,
    /// The address inside it.
    pub address: SocketAddr,
}

/// Parses `NAMESPACE=ADDR:PORT`.
pub fn parse_listen(text: &str) -> Result<Listen, String> {
    let (namespace, address) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAMESPACE=ADDRESS:PORT"))?;
    if namespace.is_empty() || namespace.contains('/') {
        return Err(format!("`{namespace}` is not a namespace name"));
    }
    let address = address
        .parse()
        .map_err(|_| format!("`{address}` is not ADDRESS:PORT"))?;
    Ok(Listen {
        namespace: namespace.to_owned(),
        address,
    })
}

/// Binds every listener inside its namespace (before anything is
/// accepted, so the caller knows they all exist).
pub fn bind_all(listens: &[Listen]) -> anyhow::Result<Vec<(Listen, std::net::TcpListener)>> {
    let mut bound = Vec::with_capacity(listens.len());
    for listen in listens {
        let address = listen.address;
        let socket = netns::run_in(&listen.namespace, move || {
            let listener = std::net::TcpListener::bind(address)
                .with_context(|| format!("cannot listen on {address}"))?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })
        .with_context(|| format!("in namespace {}", listen.namespace))?;
        bound.push((listen.clone(), socket));
    }
    Ok(bound)
}

/// Relays connections from every bound listener to `upstream` until the
/// future is dropped.
pub async fn serve(
    bound: Vec<(Listen, std::net::TcpListener)>,
    upstream: String,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for (listen, socket) in bound {
        let listener = TcpListener::from_std(socket).context("cannot use a bound listener")?;
        let upstream = upstream.clone();
        tasks.spawn(async move {
            loop {
                let (inbound, peer) = match listener.accept().await {
                    Ok(pair) => pair,
                    Err(error) => {
                        tracing::warn!(namespace = %listen.namespace, %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let upstream = upstream.clone();
                let namespace = listen.namespace.clone();
                tokio::spawn(async move {
                    relay(inbound, &upstream, &namespace, peer).await;
                });
            }
        });
    }
    // Listener tasks loop until the process ends; one that ends panicked.
    if let Some(Err(error)) = tasks.join_next().await {
        return Err(error).context("a listener task failed");
    }
    Ok(())
}

async fn relay(mut inbound: TcpStream, upstream: &str, namespace: &str, peer: SocketAddr) {
    let mut outbound = match TcpStream::connect(upstream).await {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(namespace, %peer, upstream, %error, "cannot reach the event server; closing the node's connection");
            return;
        }
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tracing::info!(namespace, %peer, upstream, "relaying a connection");
    match tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await {
        Ok((up, down)) => {
            tracing::info!(namespace, %peer, bytes_up = up, bytes_down = down, "connection closed")
        }
        Err(error) => tracing::info!(namespace, %peer, %error, "connection ended"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_arguments_parse() {
        let l = parse_listen("tbx-n-a=127.0.0.2:2917").unwrap();
        assert_eq!(l.namespace, "tbx-n-a");
        assert_eq!(l.address.port(), 2917);
        assert!(parse_listen("nope").is_err());
        assert!(parse_listen("=1.2.3.4:5").is_err());
        assert!(parse_listen("a/b=1.2.3.4:5").is_err());
        assert!(parse_listen("a=banana").is_err());
    }
}
