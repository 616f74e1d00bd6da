//! `evproxy`: the per-node event proxy (see `tbevents_tools::evproxy`).

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(tbevents_tools::evproxy::main(std::env::args_os()))
}
