//! `tbevents-relay`: the legacy event-port relay (see
//! `tbevents_tools::relay`).

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(tbevents_tools::relay::main(std::env::args_os()))
}
