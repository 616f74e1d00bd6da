//! The NS-file front end: reads an Emulab experiment description (the NS-2
//! Tcl dialect Emulab users write) and produces the experiment's virtual
//! rows, a [`VirtualExperiment`]: nodes, link and LAN members with their
//! shaping, program agents, CBR traffic generators, event groups, agents,
//! and the static `$ns at` events with exactly the ARGS strings and
//! `atstring` Emulab's `ns2ir` wrote (docs/emulab-model.md §9).
//!
//! ```
//! let exp = tbevents_ns::parse_str(
//!     "set ns [new Simulator]\n\
//!      source tb_compat.tcl\n\
//!      set n0 [$ns node]\n\
//!      set n1 [$ns node]\n\
//!      set link0 [$ns duplex-link $n0 $n1 100Mb 10ms DropTail]\n\
//!      $ns at 10 \"$link0 down\"\n\
//!      $ns run\n",
//!     "demo.ns",
//! )?;
//! assert_eq!(exp.events[0].eventtype, "DOWN");
//! assert_eq!(exp.lan_members[0].ip, "10.1.1.2");
//! # Ok::<(), tbevents_ns::NsError>(())
//! ```
//!
//! # Not a Tcl interpreter
//!
//! Emulab ran NS files through a real Tcl interpreter. We do not: running
//! user Tcl means running arbitrary code, and the files people actually
//! write use a small, regular subset. This crate accepts that subset and
//! rejects everything else with the file, the line and what to change
//! (`exp.ns:12: unsupported command 'proc'`), so nothing is half-understood.
//!
//! ## The accepted dialect
//!
//! Tcl syntax:
//! * commands separated by newlines or `;`; `#` comments where a command
//!   may start; backslash-newline continuation;
//! * words: bare, `"quoted"` (with substitution), `{braced}` (literal);
//! * substitution: `$var`, `${var}`, `$arr(index)`, `[command]`, backslash
//!   escapes.
//!
//! Built-in commands: `set VAR ?VALUE?` (arrays as `name(index)`), `incr`,
//! `expr` (64-bit integer arithmetic only), `list`, `for`, `foreach`, and
//! `source tb_compat.tcl` (accepted, no effect). Any other command (`proc`,
//! `if`, `while`, `puts`, ...) is an "unsupported command" error.
//!
//! NS and Emulab commands:
//! * `set ns [new Simulator]` (the SIMULATOR agent takes the variable's
//!   name), `$ns run` (required, and must be the last command);
//! * `$ns node`, `tb-set-node-os`, `tb-set-hardware`;
//! * `$ns duplex-link A B BW DELAY DropTail|RED|GRED`,
//!   `$ns make-lan "A B ..." BW DELAY ?LL? ?Queue/DropTail|Queue/RED?
//!   ?MAC? ?Channel? ?Phy/WiredPhy?` (ns-2's optional types: the queue class
//!   is kept; an Ethernet MAC, `LL`, `Channel` and `Phy/WiredPhy` describe
//!   what every LAN is and are ignored; anything else is refused);
//! * `tb-set-ip NODE IP`, `tb-set-ip-link NODE LINK IP`,
//!   `tb-set-ip-lan NODE LAN IP`;
//! * `tb-set-link-loss LINK RATE` (or `NODE1 NODE2 RATE`),
//!   `tb-set-lan-loss LAN RATE`, `tb-set-link-bandwidth LINK BW`,
//!   `tb-set-link-delay LINK DELAY`;
//! * `$ns rtproto Static|Session|Manual`;
//! * `[$ns link A B] queue` and `$queue set PARAM_ VALUE` for every
//!   queue parameter Emulab stored (`limit_`, `maxthresh_`, `thresh_`,
//!   `q_weight_`, `linterm_`, `queue-in-bytes_`, `bytes_`,
//!   `mean_pktsize_`, `wait_`, `setbit_`, `drop-tail_`, `red_`,
//!   `gentle_`), kept in the `virt_lans` row of node A, the node the
//!   queue's traffic leaves from (the `experiment::queue` module has the
//!   mapping);
//! * `$node program-agent ?-command CMD?`, `new Program $ns` with
//!   `$p set node N` / `$p set command CMD`;
//! * `new Agent/UDP|Agent/TCP|Agent/Null|Agent/TCPSink`,
//!   `new Application/Traffic/CBR`, `$ns attach-agent NODE AGENT`,
//!   `$cbr attach-agent AGENT`, `$cbr set packetSize_|rate_|interval_|iptos_ V`,
//!   `$ns connect SOURCE SINK`;
//! * `$ns event-group [list ...]`, `new EventGroup $ns` with `$g add ...`;
//! * `$ns at TIME "EVENT[;EVENT...]"` with every form of docs/emulab-model.md §9 (see the
//!   `experiment::events` module).
//!
//! Objects are named after the variable they are first stored in (`n0`;
//! `n(3)` becomes `n-3`), as Emulab did; queues are `<link>-<node>`.
//!
//! ## Deliberate differences from Emulab's ns2ir
//!
//! * Not Tcl: procedures, `if`, `while`, floating-point `expr`, other
//!   `source`d files, NSE (`Agent/TCP/FullTcp`, `Application/FTP`,
//!   `Application/Telnet`, `make-simulated`) and every later (HEAD) NS
//!   extension are refused with a clear error.
//! * An event-group event no longer drops the events after it in the same
//!   `$ns at` string (docs/emulab-model.md §9 \[AMBIG\]); each member gets one row, whose
//!   `atstring` is the member's form of the event (`cbr0 start`).
//! * `$ns at T "$ns bandwidth ..."`, which Emulab stored as a row no agent
//!   could receive (so the scheduler failed to start), is an error.
//! * `$link bandwidth V` is accepted with or without Emulab's trailing
//!   `duplex` word.
//! * Every event on a link, LAN or queue marks the link `mustdelay` (an
//!   unshaped link cannot change), not only `plr`.
//! * Values are checked where they are written: delays, loss rates, packet
//!   sizes, TOS bytes, queue parameters, signal names.
//! * Event arguments that depend on an object's settings (a program's
//!   command, a CBR's parameters) are taken when the `$ns at` line runs.
//! * Every object must be stored in a variable (so it has a name), every
//!   program must be on a node, every attached traffic agent must be
//!   connected, and `$ns run` must end the file; Emulab's own checks for
//!   these were partial.
//! * Delays: a plain number means milliseconds.
//! * A UDP source cannot be connected to an `Agent/TCPSink` (Emulab wrote
//!   inconsistent rows for it); TCP may use `Agent/Null` or `Agent/TCPSink`.
//! * Object names are checked: node names must be host names (letters,
//!   digits, `-`), no object may take a built-in command's name or the
//!   reserved agent names `linktest` and `slothd`.
//! * A RED or GRED queue (from the link type, `Queue/RED` on a LAN, or
//!   `red_`) marks its link or LAN `mustdelay`, as Emulab's later front end
//!   did: only a delay node can run RED.
//! * `make-lan`'s `Queue/RED` is kept (Emulab warned and built DropTail);
//!   a type we cannot honour (a wireless MAC, another queue class) is an
//!   error instead of a warning.
//! * Queue values must fit Emulab's columns (whole numbers, `linterm_` and
//!   `mean_pktsize_` at least 1, `q_weight_` in (0, 1]); `true`/`false`
//!   are 1/0 for every flag (Emulab converted only some); a RED queue's
//!   `thresh_` must end below its `maxthresh_`. In a `$ns at` queue event
//!   a flag must be `0` or `1`, since the agent reads the number.
//!
//! # Bounded work
//!
//! Any input, however hostile, ends in `Ok` or a typed [`NsError`] after
//! bounded time and memory; see [`limits`].

mod error;
mod experiment;
mod expr;
mod interp;
pub mod limits;
mod list;
mod parser;
mod units;

use std::io::Read;
use std::path::Path;

pub use error::{NsError, NsErrorKind};
pub use tbevents_store::model::VirtualExperiment;

/// Parses the NS file at `path`. Errors name the file as `path` was given.
pub fn parse_file(path: &Path) -> Result<VirtualExperiment, NsError> {
    let display = path.display().to_string();
    let io_error =
        |e: std::io::Error| NsError::new(display.clone(), 0, NsErrorKind::Io(e.to_string()));
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.take(limits::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > limits::MAX_FILE_BYTES {
        return Err(NsError::new(
            display,
            0,
            NsErrorKind::LimitExceeded {
                what: "file size in bytes".into(),
                limit: limits::MAX_FILE_BYTES,
            },
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = e
            .as_bytes()
            .get(..e.utf8_error().valid_up_to())
            .map_or(0, |valid| valid.iter().filter(|&&b| b == b'\n').count());
        NsError::new(
            display.clone(),
            u32::try_from(line).unwrap_or(u32::MAX).saturating_add(1),
            NsErrorKind::Syntax("the file is not valid UTF-8 text".into()),
        )
    })?;
    parse_str(&text, &display)
}

/// Parses NS text; `file_name` is used in error messages.
pub fn parse_str(source: &str, file_name: &str) -> Result<VirtualExperiment, NsError> {
    if source.len() as u64 > limits::MAX_FILE_BYTES {
        return Err(NsError::new(
            file_name,
            0,
            NsErrorKind::LimitExceeded {
                what: "file size in bytes".into(),
                limit: limits::MAX_FILE_BYTES,
            },
        ));
    }
    run(source).map_err(|e| e.in_file(file_name))
}

fn run(source: &str) -> Result<VirtualExperiment, NsError> {
    let commands = parser::parse_script(source, 1)?;
    let mut interp = interp::Interp::new();
    interp.eval(&commands)?;
    interp.into_experiment().finish()
}
