//! `eventd-bench`: the command line over the `elvin_bench` library.
//!
//! Parses arguments (clap), builds the subcommand's config, runs it on a
//! tokio runtime and prints the report: a human-readable summary, or the
//! report as JSON with `--json`. Exit status: 0 success, 1 the run failed
//! (message on stderr), 2 bad usage, 3 the run finished but saw events
//! lost, reordered or dropped.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use elvin_bench::BenchError;
use elvin_bench::connections::{self, ConnectionsConfig};
use elvin_bench::floor::{self, FloorConfig};
use elvin_bench::pingpong::{self, PingPongConfig};
use elvin_bench::shape::{DEFAULT_PING_PAYLOAD, PingTemplate};
use elvin_bench::subscriptions::{self, SubscriptionsConfig};
use elvin_bench::throughput::{self, ThroughputConfig};
use elvin_bench::wire::Target;
use serde::Serialize;

/// A load generator and latency meter for any Elvin 4 router.
#[derive(Debug, Parser)]
#[command(name = "eventd-bench", version, about, long_about = None)]
struct Cli {
    /// The router to measure.
    #[arg(
        long,
        global = true,
        default_value = "elvin://127.0.0.1:2917",
        env = "EVENTD_BENCH_ROUTER"
    )]
    router: String,
    /// Print the report as JSON instead of a summary.
    #[arg(long, global = true)]
    json: bool,
    /// Longest the router may stay silent or stalled, in seconds, before
    /// the run fails.
    #[arg(long, global = true, default_value_t = 10.0, value_name = "SECS")]
    timeout: f64,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Round-trip latency: ping -> router -> echoer -> router -> pong.
    Pingpong(PingPongArgs),
    /// Delivered events per second from P publishers to S subscribers.
    Throughput(ThroughputArgs),
    /// Throughput beside K extra non-matching subscriptions.
    Subscriptions(SubscriptionsArgs),
    /// Router memory with N idle subscribed sessions, and round trips
    /// through them.
    Connections(ConnectionsArgs),
    /// The machine's floor: the pingpong exchange through a byte-copying
    /// relay process instead of a router.
    Floor(FloorArgs),
    /// The relay process of `floor` (started by `floor` itself).
    #[command(hide = true)]
    Relay(RelayArgs),
}

#[derive(Debug, Args)]
struct PingPongArgs {
    /// Measured round trips.
    #[arg(long, default_value_t = 20_000)]
    count: u64,
    /// Longest measured phase, in seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    duration: f64,
    /// Round trips sent first and not measured.
    #[arg(long, default_value_t = 1_000)]
    warmup: u64,
    /// Opaque payload bytes per ping (the default makes a ping the size of
    /// an Emulab event).
    #[arg(long, default_value_t = DEFAULT_PING_PAYLOAD)]
    padding: usize,
}

#[derive(Debug, Args, Clone)]
struct ThroughputArgs {
    /// Publisher sessions.
    #[arg(short = 'P', long = "publishers", default_value_t = 1)]
    publishers: usize,
    /// Subscriber sessions.
    #[arg(short = 'S', long = "subscribers", default_value_t = 1)]
    subscribers: usize,
    /// Events per publisher, warm-up included.
    #[arg(long, default_value_t = 5_000_000)]
    count: u64,
    /// Longest sending phase, in seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    duration: f64,
    /// Events per publisher left out of the figures.
    #[arg(long, default_value_t = 20_000)]
    warmup: u64,
    /// Most events per publisher not yet received by the slowest
    /// subscriber.
    #[arg(long, default_value_t = 2_000)]
    window: u64,
    /// Most events per write.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Extra bytes per event (in ARGS).
    #[arg(long, default_value_t = 0)]
    padding: usize,
}

#[derive(Debug, Args)]
struct SubscriptionsArgs {
    #[command(flatten)]
    throughput: ThroughputArgs,
    /// Numbers of extra non-matching subscriptions, comma-separated.
    #[arg(
        short = 'K',
        long = "loads",
        value_delimiter = ',',
        default_value = "0,1000,10000,100000"
    )]
    loads: Vec<usize>,
    /// Measure with none and with N load subscriptions (instead of
    /// --loads), e.g. --subs 1000000.
    #[arg(long, value_name = "N", conflicts_with = "loads")]
    subs: Option<usize>,
    /// The load subscriptions: `testbed` (experiments of 20 nodes, one of
    /// them the benchmark's own, as on a real testbed) or `distinct`
    /// (each in an experiment of its own).
    #[arg(long, value_enum, default_value_t = LayoutArg::Testbed)]
    layout: LayoutArg,
    /// The router's process id, for memory per subscription (default:
    /// found from the port, when the router runs on this machine).
    #[arg(long, value_name = "PID")]
    router_pid: Option<u32>,
    /// Sessions the extra subscriptions are spread over.
    #[arg(long, default_value_t = 100)]
    sub_conns: usize,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LayoutArg {
    Testbed,
    Distinct,
}

#[derive(Debug, Args)]
struct ConnectionsArgs {
    /// Idle sessions, each with one subscription.
    #[arg(short = 'N', long = "connections", default_value_t = 10_000)]
    connections: usize,
    /// Sessions set up at once.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Measured round trips with the sessions open.
    #[arg(long, default_value_t = 1_000)]
    count: u64,
    /// Longest measured round-trip phase, in seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    duration: f64,
    /// Round trips sent first and not measured.
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// The router's process id (found from the listening port otherwise).
    #[arg(long)]
    router_pid: Option<u32>,
}

#[derive(Debug, Args)]
struct FloorArgs {
    /// Measured round trips.
    #[arg(long, default_value_t = 20_000)]
    count: u64,
    /// Longest measured phase, in seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    duration: f64,
    /// Round trips sent first and not measured.
    #[arg(long, default_value_t = 1_000)]
    warmup: u64,
    /// Ping payload the messages are sized after (as in pingpong).
    #[arg(long, default_value_t = DEFAULT_PING_PAYLOAD)]
    padding: usize,
}

#[derive(Debug, Args)]
struct RelayArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Seconds after which the relay exits regardless.
    #[arg(long, default_value_t = 600)]
    lifetime: u64,
}

fn seconds(value: f64, flag: &str) -> Result<Duration, BenchError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| BenchError::Config(format!("{flag} must be a positive number of seconds")))
}

fn throughput_config(
    args: &ThroughputArgs,
    target: &Target,
    timeout: Duration,
) -> Result<ThroughputConfig, BenchError> {
    Ok(ThroughputConfig {
        target: target.clone(),
        publishers: args.publishers,
        subscribers: args.subscribers,
        count: args.count,
        duration: seconds(args.duration, "--duration")?,
        warmup: args.warmup,
        window: args.window,
        batch: args.batch,
        padding: args.padding,
        timeout,
    })
}

/// A finished run: its report printed, and whether it saw violations.
struct Outcome {
    text: String,
    json: serde_json::Value,
    violations: bool,
}

fn outcome<T: Serialize + std::fmt::Display>(test: &str, report: &T, violations: bool) -> Outcome {
    let json = serde_json::json!({ "test": test, "report": report, "host": HostFacts::now() });
    Outcome {
        text: format!("{report}\n{}", HostFacts::now()),
        json,
        violations,
    }
}

/// Facts about the machine that bear on the figures: a loaded machine
/// gives slower, noisier results, so every report says how busy it was.
#[derive(Debug, Serialize)]
struct HostFacts {
    /// Logical CPUs.
    cpus: usize,
    /// `/proc/loadavg` when the report was made (1, 5 and 15-minute load).
    loadavg: Option<String>,
    /// Share of the last 10 s in which some runnable task waited for a
    /// CPU (`/proc/pressure/cpu`, percent): near 0 on a quiet machine.
    cpu_pressure_avg10: Option<f64>,
}

impl HostFacts {
    fn now() -> HostFacts {
        HostFacts {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            loadavg: elvin_bench::procinfo::read_small(std::path::Path::new("/proc/loadavg"))
                .ok()
                .map(|text| {
                    text.split_whitespace()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" ")
                }),
            cpu_pressure_avg10: elvin_bench::procinfo::read_small(std::path::Path::new(
                "/proc/pressure/cpu",
            ))
            .ok()
            .and_then(|text| parse_pressure_avg10(&text)),
        }
    }
}

/// The `some avg10=` figure of `/proc/pressure/cpu`.
fn parse_pressure_avg10(text: &str) -> Option<f64> {
    let some = text.lines().find(|line| line.starts_with("some "))?;
    some.split_whitespace()
        .find_map(|field| field.strip_prefix("avg10="))?
        .parse()
        .ok()
}

impl std::fmt::Display for HostFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "host: {} CPUs, load average {}",
            self.cpus,
            self.loadavg.as_deref().unwrap_or("unknown")
        )?;
        if let Some(pressure) = self.cpu_pressure_avg10 {
            write!(
                f,
                ", CPU pressure {pressure:.0}% (tasks waiting for a CPU, last 10 s)"
            )?;
        }
        Ok(())
    }
}

async fn run(cli: &Cli) -> Result<Outcome, BenchError> {
    let target = Target::parse(&cli.router)?;
    let timeout = seconds(cli.timeout, "--timeout")?;
    match &cli.command {
        Command::Pingpong(args) => {
            let config = PingPongConfig {
                target,
                count: args.count,
                duration: seconds(args.duration, "--duration")?,
                warmup: args.warmup,
                payload: args.padding,
                timeout,
            };
            let report = pingpong::run(&config).await?;
            let violations = report.drop_warns > 0;
            Ok(outcome("pingpong", &report, violations))
        }
        Command::Throughput(args) => {
            let report = throughput::run(&throughput_config(args, &target, timeout)?).await?;
            Ok(outcome("throughput", &report, !report.is_clean()))
        }
        Command::Subscriptions(args) => {
            let config = SubscriptionsConfig {
                throughput: throughput_config(&args.throughput, &target, timeout)?,
                loads: match args.subs {
                    Some(n) => vec![0, n],
                    None => args.loads.clone(),
                },
                sub_conns: args.sub_conns,
                layout: match args.layout {
                    LayoutArg::Testbed => subscriptions::Layout::Testbed,
                    LayoutArg::Distinct => subscriptions::Layout::Distinct,
                },
                router_pid: args.router_pid,
            };
            let report = subscriptions::run(&config).await?;
            let violations = report.loads.iter().any(|row| !row.throughput.is_clean());
            Ok(outcome("subscriptions", &report, violations))
        }
        Command::Connections(args) => {
            let config = ConnectionsConfig {
                connections: args.connections,
                concurrency: args.concurrency,
                pingpong: PingPongConfig {
                    target,
                    count: args.count,
                    duration: seconds(args.duration, "--duration")?,
                    warmup: args.warmup,
                    payload: DEFAULT_PING_PAYLOAD,
                    timeout,
                },
                router_pid: args.router_pid,
            };
            let report = connections::run(&config).await?;
            let violations = report.pingpong.drop_warns > 0;
            Ok(outcome("connections", &report, violations))
        }
        Command::Floor(args) => {
            let relay_program = std::env::current_exe()
                .map_err(|e| BenchError::Local(format!("cannot find this program's path: {e}")))?;
            let message_bytes = PingTemplate::new(1, args.padding, usize::MAX)?.frame_len();
            let config = FloorConfig {
                relay_program,
                count: args.count,
                duration: seconds(args.duration, "--duration")?,
                warmup: args.warmup,
                message_bytes,
                timeout,
            };
            let report = floor::run(&config).await?;
            Ok(outcome("floor", &report, false))
        }
        Command::Relay(_) => Err(BenchError::Local(
            "the relay is not run on the runtime".into(),
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Relay(args) = &cli.command {
        return match floor::run_relay(&args.listen, Duration::from_secs(args.lifetime)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("eventd-bench relay: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = cli.threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("eventd-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(outcome) => {
            if cli.json {
                println!("{}", outcome.json);
            } else {
                println!("{}", outcome.text);
            }
            if outcome.violations {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("eventd-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_pressure_is_read_from_the_some_line() {
        let text = "some avg10=89.66 avg60=72.43 avg300=75.68 total=1331678507\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_pressure_avg10(text), Some(89.66));
        assert_eq!(parse_pressure_avg10("full avg10=1.0\n"), None);
        assert_eq!(parse_pressure_avg10("some avg10=x\n"), None);
    }
}
