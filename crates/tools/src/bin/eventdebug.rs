//! `eventdebug`: print the events passing through a router (see
//! `tbevents_tools::eventdebug`).

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(tbevents_tools::eventdebug::main(std::env::args_os()))
}
