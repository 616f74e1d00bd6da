//! What the demo measures on the emulated testbed, beside the events: the
//! round-trip time across the shaped link (our own UDP probe every
//! 200 ms), and what each traffic sink receives (the sinks' REPORT events,
//! read on their node's router).
//!
//! Measurements arrive on one channel from threads inside the namespaces;
//! [`Effects`] folds them into one-second windows and formats the line the
//! view prints, so a user sees `DELAY=50ms` turn into ~100 ms of RTT, a
//! `PLR` into lost probes and packets, and `DOWN` into silence.

use std::collections::BTreeMap;
use std::time::Duration;

use tbevents_testbed::probe::ProbeResult;

/// One measurement.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Measurement {
    /// A probe's outcome.
    Probe(ProbeResult),
    /// A sink's report: its name, received rate (kbit/s) and loss
    /// fraction over the report's window.
    Sink {
        /// The sink's name.
        name: String,
        /// kbit/s received.
        rate_kbps: f64,
        /// Lost fraction, 0..1.
        loss: f64,
    },
}

/// The current window and the latest sink reports.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    link: String,
    rtts: Vec<Duration>,
    lost: u32,
    sinks: BTreeMap<String, (f64, f64)>,
    last: Option<String>,
}

impl Effects {
    /// Effects measured on `link` (its name, for the line).
    pub(crate) fn new(link: &str) -> Effects {
        Effects {
            link: link.to_owned(),
            ..Effects::default()
        }
    }

    /// Takes one measurement.
    pub(crate) fn record(&mut self, measurement: Measurement) {
        match measurement {
            Measurement::Probe(ProbeResult { rtt: Some(rtt), .. }) => self.rtts.push(rtt),
            Measurement::Probe(ProbeResult { rtt: None, .. }) => self.lost += 1,
            Measurement::Sink {
                name,
                rate_kbps,
                loss,
            } => {
                self.sinks.insert(name, (rate_kbps, loss));
            }
        }
    }

    /// Closes the window: the line describing it (also kept as
    /// [`Effects::latest`]).
    pub(crate) fn close_window(&mut self) -> String {
        let probes = self.rtts.len() as u32 + self.lost;
        let mut line = if probes == 0 {
            format!("{} rtt -", self.link)
        } else if self.rtts.is_empty() {
            format!("{} rtt - (0/{probes} answered)", self.link)
        } else {
            self.rtts.sort_unstable();
            let median = self.rtts[self.rtts.len() / 2];
            format!(
                "{} rtt {:.1} ms ({}/{probes} answered)",
                self.link,
                median.as_secs_f64() * 1000.0,
                self.rtts.len()
            )
        };
        for (name, (rate, loss)) in &self.sinks {
            line.push_str(&format!(
                "  {name} {:.2} Mb/s loss {:.1}%",
                rate / 1000.0,
                loss * 100.0
            ));
        }
        self.rtts.clear();
        self.lost = 0;
        self.last = Some(line.clone());
        line
    }

    /// The last closed window's line.
    pub(crate) fn latest(&self) -> Option<&str> {
        self.last.as_deref()
    }
}

/// Reads `RATE=` and `LOSS=` from a trafgen REPORT's ARGS.
pub(crate) fn parse_report(args: &str) -> Option<(f64, f64)> {
    let mut rate = None;
    let mut loss = None;
    for pair in args.split_whitespace() {
        if let Some((key, value)) = pair.split_once('=') {
            match key.to_ascii_uppercase().as_str() {
                "RATE" => rate = value.parse().ok(),
                "LOSS" => loss = value.parse().ok(),
                _ => {}
            }
        }
    }
    Some((rate?, loss.unwrap_or(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_show_median_rtt_answers_and_sinks() {
        let mut e = Effects::new("access");
        assert_eq!(e.close_window(), "access rtt -");
        for ms in [100, 101, 99] {
            e.record(Measurement::Probe(ProbeResult {
                seq: 0,
                rtt: Some(Duration::from_millis(ms)),
            }));
        }
        e.record(Measurement::Probe(ProbeResult { seq: 3, rtt: None }));
        e.record(Measurement::Sink {
            name: "null0".into(),
            rate_kbps: 19_950.0,
            loss: 0.02,
        });
        let line = e.close_window();
        assert_eq!(
            line,
            "access rtt 100.0 ms (3/4 answered)  null0 19.95 Mb/s loss 2.0%"
        );
        assert_eq!(e.latest(), Some(line.as_str()));
        e.record(Measurement::Probe(ProbeResult { seq: 4, rtt: None }));
        assert!(e.close_window().starts_with("access rtt - (0/1 answered)"));
    }

    #[test]
    fn reports_parse() {
        assert_eq!(
            parse_report("RATE=20000.5 PPS=2500 RECEIVED=2500 LOST=0 LOSS=0.001 WINDOW=1"),
            Some((20000.5, 0.001))
        );
        assert_eq!(parse_report("PPS=1"), None);
    }
}
