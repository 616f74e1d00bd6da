//! `tevc`: send an event to an experiment (see `tbevents_tools::tevc`).

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(tbevents_tools::tevc::main(std::env::args_os()))
}
