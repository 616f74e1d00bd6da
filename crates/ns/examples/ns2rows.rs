//! Prints the rows an NS file produces: `cargo run -p tbevents-ns --example ns2rows -- FILE`.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: ns2rows FILE.ns");
        return ExitCode::from(2);
    };
    match tbevents_ns::parse_file(&path) {
        Ok(experiment) => {
            println!("{experiment:#?}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
