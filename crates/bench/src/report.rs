//! Human-readable summaries of the reports.
//!
//! `--json` prints the report structs as they are (serde); this module is
//! the default output: a few aligned lines per run, with targets left to
//! the reader (the tool measures, it does not judge), except for order and
//! loss violations, which are called out because they mean the router is
//! wrong, not slow.

use std::fmt::{self, Display, Formatter};

use crate::connections::ConnectionsReport;
use crate::floor::FloorReport;
use crate::pingpong::PingPongReport;
use crate::subscriptions::SubscriptionsReport;
use crate::throughput::ThroughputReport;

fn rate(per_s: f64) -> String {
    // Thousands separators keep six- and seven-digit rates readable.
    let whole = per_s.round().max(0.0) as u64;
    let digits = whole.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "n/a".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

impl Display for PingPongReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pingpong via {} ({}-byte pings, {} warm-up)",
            self.router, self.ping_bytes, self.warmup
        )?;
        writeln!(f, "  round trip: {}", self.round_trip)?;
        write!(
            f,
            "  measured for {:.2} s ({})",
            self.elapsed_s, self.stopped_by
        )?;
        if self.drop_warns > 0 {
            write!(f, "\n  DropWarn received: {}", self.drop_warns)?;
        }
        Ok(())
    }
}

impl Display for FloorReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "floor: TCP echo through a byte-copying relay process ({}-byte messages, {} warm-up)",
            self.message_bytes, self.warmup
        )?;
        writeln!(f, "  round trip: {}", self.round_trip)?;
        write!(
            f,
            "  measured for {:.2} s ({})",
            self.elapsed_s, self.stopped_by
        )
    }
}

impl Display for ThroughputReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "throughput via {}: {} publisher(s) -> {} subscriber(s), {}-byte events, window {}",
            self.router, self.publishers, self.subscribers, self.event_bytes, self.window
        )?;
        writeln!(
            f,
            "  delivered: {} events/s (all subscribers)",
            rate(self.delivered_per_s)
        )?;
        writeln!(f, "  latency (send -> receive): {}", self.latency)?;
        for (index, sub) in self.per_subscriber.iter().enumerate() {
            writeln!(
                f,
                "  subscriber {index}: {} events/s, {} received, p50 {:.1} µs, p99 {:.1} µs",
                rate(sub.delivered_per_s),
                sub.received,
                sub.latency.p50_us,
                sub.latency.p99_us
            )?;
        }
        writeln!(
            f,
            "  sent {} in {:.2} s ({}), expected {} deliveries, received {}",
            self.sent, self.send_elapsed_s, self.stopped_by, self.expected, self.received
        )?;
        if self.is_clean() {
            write!(
                f,
                "  order and completeness: OK (no loss, no reordering, no DropWarn)"
            )
        } else {
            write!(
                f,
                "  VIOLATIONS: {} missing, {} sequence gaps, {} out of order, {} DropWarn",
                self.missing, self.gaps, self.out_of_order, self.drop_warns
            )
        }
    }
}

impl Display for SubscriptionsReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "subscriptions via {}", self.router)?;
        writeln!(
            f,
            "  {:>9} {:>8} {:>10} {:>12} {:>14} {:>10} {:>10}  order/loss",
            "K", "sessions", "install s", "installs/s", "delivered/s", "p50 µs", "p99 µs"
        )?;
        for row in &self.loads {
            let t = &row.throughput;
            writeln!(
                f,
                "  {:>9} {:>8} {:>10.2} {:>12} {:>14} {:>10.1} {:>10.1}  {}",
                row.subscriptions,
                row.sessions,
                row.install_s,
                rate(row.installed_per_s),
                rate(t.delivered_per_s),
                t.latency.p50_us,
                t.latency.p99_us,
                if t.is_clean() { "OK" } else { "VIOLATIONS" }
            )?;
        }
        match self.ratio_largest_to_none {
            Some(ratio) => write!(
                f,
                "  largest load keeps {:.1}% of the throughput with none",
                ratio * 100.0
            ),
            None => write!(f, "  (no ratio: include K = 0 and a larger K to compare)"),
        }
    }
}

impl Display for ConnectionsReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "connections via {}: {} idle sessions, one subscription each, opened in {:.2} s",
            self.router, self.connections, self.setup_s
        )?;
        let memory = &self.memory;
        match memory.pid {
            Some(pid) => writeln!(f, "  router pid {pid} ({})", memory.source)?,
            None => writeln!(f, "  router memory {}", memory.source)?,
        }
        writeln!(
            f,
            "  router VmRSS: {} before, {} with the sessions open, {} after the round trips",
            mib(memory.rss_before_kib),
            mib(memory.rss_with_connections_kib),
            mib(memory.rss_after_pingpong_kib)
        )?;
        write!(
            f,
            "  round trip with all sessions open: {}",
            self.pingpong.round_trip
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_get_thousands_separators() {
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(999.4), "999");
        assert_eq!(rate(1_000.0), "1,000");
        assert_eq!(rate(126_000.2), "126,000");
        assert_eq!(rate(1_234_567.0), "1,234,567");
        assert_eq!(rate(-5.0), "0");
    }

    #[test]
    fn memory_is_shown_in_mib() {
        assert_eq!(mib(Some(2048)), "2.0 MiB");
        assert_eq!(mib(None), "n/a");
    }
}
