//! Bad files fail with the promised error, on the right line, and nothing
//! a user can write makes the parser panic or run unbounded.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use proptest::prelude::*;
use tbevents_ns::{NsError, NsErrorKind, parse_str};

fn err(text: &str) -> NsError {
    match parse_str(text, "exp.ns") {
        Ok(_) => panic!("should fail:\n{text}"),
        Err(e) => e,
    }
}

/// A file whose line 1 creates the simulator and two nodes sit on lines 2-3,
/// a link on line 4; `rest` starts on line 5.
fn with_topology(rest: &str) -> String {
    format!(
        "set ns [new Simulator]\nset n0 [$ns node]\nset n1 [$ns node]\n\
         set link0 [$ns duplex-link $n0 $n1 100Mb 10ms DropTail]\n{rest}\n$ns run\n"
    )
}

#[test]
fn unknown_command_names_file_line_and_command() {
    let e = err("set ns [new Simulator]\n\n# comment\nproc foo {} { }\n$ns run\n");
    assert_eq!(e.to_string(), "exp.ns:4: unsupported command 'proc'");
    assert_eq!(e.kind(), &NsErrorKind::UnsupportedCommand("proc".into()));
    for command in [
        "if {1} {}",
        "while {1} {}",
        "puts hi",
        "lappend x y",
        "tb-set-node-rpms $n0 x",
    ] {
        let e = err(&with_topology(command));
        assert_eq!(e.line(), 5, "{command}");
        assert!(
            matches!(e.kind(), NsErrorKind::UnsupportedCommand(_)),
            "{command}: {e}"
        );
    }
}

#[test]
fn unknown_object_in_an_event() {
    let e = err(&with_topology("\n$ns at 10 \"$link0 up; nosuch down\""));
    assert_eq!(e.line(), 6);
    assert_eq!(e.to_string(), "exp.ns:6: unknown object 'nosuch'");
    // Braces stop substitution; the hint says so.
    let e = err(&with_topology("$ns at 10 {$link0 down}"));
    assert!(e.to_string().contains("use \"double quotes\""), "{e}");
}

#[test]
fn unsupported_event_targets_and_forms() {
    let e = err(&with_topology("$ns at 1 \"$n0 reboot\""));
    assert!(matches!(e.kind(), NsErrorKind::Unsupported(_)), "{e}");
    let e = err(&with_topology("$ns at 1 \"$link0 flap\""));
    assert!(matches!(e.kind(), NsErrorKind::WrongArgs { .. }), "{e}");
    let e = err(&with_topology("$ns at 1 \"$ns bandwidth 10Mb\""));
    assert_eq!(e.line(), 5);
    assert!(
        e.to_string().contains("cannot be delivered to any agent"),
        "{e}"
    );
    let e = err(&with_topology(
        "set q [[$ns link $n0 $n1] queue]\n$ns at 1 \"$q set gentle_ 1\"",
    ));
    assert_eq!(e.line(), 6);
}

#[test]
fn bad_time_specs() {
    for time in ["10s", "-1", "1e3", "1.", "now", "+5", "swapout"] {
        let e = err(&with_topology(&format!("$ns at {time} \"$link0 down\"")));
        assert_eq!(e.line(), 5);
        assert_eq!(e.kind(), &NsErrorKind::InvalidTime(time.into()), "{time}");
        assert!(
            e.to_string()
                .starts_with(&format!("exp.ns:5: Invalid time spec '{time}'"))
        );
    }
}

#[test]
fn bad_bandwidths() {
    let e = err(
        "set ns [new Simulator]\nset a [$ns node]\nset b [$ns node]\nset l [$ns duplex-link $a $b 9kb 0ms DropTail]\n$ns run\n",
    );
    assert_eq!(e.line(), 4);
    assert!(matches!(e.kind(), NsErrorKind::InvalidBandwidth { .. }));
    assert!(e.to_string().contains("10 kbit/s minimum"), "{e}");
    let e = err(&with_topology("$ns at 1 \"$link0 bandwidth 100mb\""));
    assert!(
        matches!(e.kind(), NsErrorKind::InvalidBandwidth { .. }),
        "{e}"
    );
    let e = err(&with_topology("tb-set-link-bandwidth $link0 fast"));
    assert_eq!(e.line(), 5);
    assert!(
        matches!(e.kind(), NsErrorKind::InvalidBandwidth { .. }),
        "{e}"
    );
}

#[test]
fn plr_out_of_range() {
    for plr in ["1.5", "-0.1", "lots"] {
        let e = err(&with_topology(&format!("$ns at 3 \"$link0 plr {plr}\"")));
        assert_eq!(e.line(), 5);
        assert_eq!(e.kind(), &NsErrorKind::InvalidLossRate(plr.into()));
    }
    let e = err(&with_topology("tb-set-link-loss $link0 2"));
    assert_eq!(e.kind(), &NsErrorKind::InvalidLossRate("2".into()));
}

#[test]
fn mixed_class_group() {
    let e = err(&with_topology(
        "set p [$n0 program-agent -command ls]\nset g [$ns event-group [list $link0 $p]]",
    ));
    assert_eq!(e.line(), 6);
    assert!(matches!(e.kind(), NsErrorKind::MixedGroup { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("exp.ns:6: event group mixes classes: 'p' is a Program"),
        "{e}"
    );
    let e = err(&with_topology(
        "set q [[$ns link $n0 $n1] queue]\nset g [new EventGroup $ns]\n$g add $q\n$g add $link0",
    ));
    assert_eq!(e.line(), 8);
    assert!(matches!(e.kind(), NsErrorKind::MixedGroup { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("event group 'g' mixes classes: 'link0' is a Link"),
        "{e}"
    );
    // Nodes cannot be members at all.
    let e = err(&with_topology("set g [$ns event-group [list $n0]]"));
    assert!(matches!(e.kind(), NsErrorKind::WrongClass { .. }), "{e}");
}

#[test]
fn more_than_max_events() {
    let e = err(&with_topology(
        "for {set i 0} {$i < 2000} {incr i} {\n  $ns at $i \"$link0 down; $link0 up\"\n}\n$ns at 1 \"$link0 down\"",
    ));
    assert_eq!(e.line(), 8);
    assert_eq!(e.kind(), &NsErrorKind::TooManyEvents { limit: 4000 });
    // Group members count one each.
    let e = err(&with_topology(
        "set g [$ns event-group [list $link0 $link0]]\nset l2 [$ns duplex-link $n0 $n1 1Mb 0ms DropTail]\n\
         $g add $l2\nfor {set i 0} {$i < 2001} {incr i} { $ns at 1 \"$g up\" }",
    ));
    assert_eq!(e.kind(), &NsErrorKind::TooManyEvents { limit: 4000 });
}

#[test]
fn unbalanced_quotes_braces_and_brackets() {
    let e = err("set ns [new Simulator]\nset n0 [$ns node]\n$ns at 1 \"$n0 down\n$ns run\n");
    assert_eq!((e.line(), e.column()), (3, Some(10)));
    assert!(
        e.to_string()
            .starts_with("exp.ns:3: syntax error: missing close-quote"),
        "{e}"
    );
    let e = err("set ns [new Simulator]\nfor {set i 0} {$i < 3} {incr i} {\n  set x 1\n$ns run\n");
    assert_eq!((e.line(), e.column()), (2, Some(33)));
    assert!(e.to_string().contains("missing close-brace"), "{e}");
    let e = err("set ns [new Simulator]\n\nset n0 [$ns node\n$ns run\n");
    assert_eq!((e.line(), e.column()), (3, Some(8)));
    assert!(e.to_string().contains("missing close-bracket"), "{e}");
    let e = err("set ns [new Simulator]\nset x \"a\"b\n");
    assert_eq!(e.line(), 2);
    assert!(
        e.to_string().contains("extra characters after close-quote"),
        "{e}"
    );
    let e = err("set ns [new Simulator]\nset x $y(1\n");
    assert_eq!((e.line(), e.column()), (2, Some(9)));
    assert!(e.to_string().contains("missing ')'"), "{e}");
}

#[test]
fn undefined_variable() {
    let e = err(&with_topology(
        "\n\nset l [$ns duplex-link $n0 $n2 1Mb 0ms DropTail]",
    ));
    assert_eq!(e.line(), 7);
    assert_eq!(e.kind(), &NsErrorKind::UndefinedVariable("n2".into()));
    assert_eq!(
        e.to_string(),
        "exp.ns:7: can't read \"n2\": no such variable"
    );
    let e = err(&with_topology("set x $arr(3)"));
    assert_eq!(e.kind(), &NsErrorKind::UndefinedVariable("arr(3)".into()));
}

#[test]
fn errors_inside_loops_and_substitutions_point_at_the_inner_line() {
    let e = err(
        "set ns [new Simulator]\nfor {set i 0} {$i < 3} {incr i} {\n  set x 1\n  bogus $i\n}\n$ns run\n",
    );
    assert_eq!(e.line(), 4);
    let e = err("set ns [new Simulator]\nset x [list a \\\n  [bogus]]\n$ns run\n");
    assert_eq!(e.line(), 3);
}

#[test]
fn whole_file_rules() {
    let e = err("set n0 1\n");
    assert_eq!(e.line(), 0);
    assert!(e.to_string().contains("new Simulator"), "{e}");
    let e = err("set ns [new Simulator]\nset n0 [$ns node]\n");
    assert!(e.to_string().contains("$ns run"), "{e}");
    let e = err("set ns [new Simulator]\n$ns run\nset n0 [$ns node]\n");
    assert_eq!(e.line(), 3);
    let e = err("set ns [new Simulator]\nset s2 [new Simulator]\n$ns run\n");
    assert_eq!(e.line(), 2);
    // An object never stored in a variable has no name.
    let e = err("set ns [new Simulator]\n$ns node\n$ns run\n");
    assert_eq!(e.line(), 2);
    assert!(e.to_string().contains("never stored in a variable"), "{e}");
    // A program must be on a node.
    let e = err("set ns [new Simulator]\nset p [new Program $ns]\n$p set command ls\n$ns run\n");
    assert_eq!(e.line(), 2);
    // A traffic agent attached but never connected.
    let e = err(&with_topology(
        "set u [new Agent/UDP]\n$ns attach-agent $n0 $u",
    ));
    assert_eq!(e.line(), 5);
    assert!(e.to_string().contains("never connected"), "{e}");
    // A connected UDP agent without a CBR source.
    let e = err(&with_topology(
        "set u [new Agent/UDP]\n$ns attach-agent $n0 $u\nset s [new Agent/Null]\n$ns attach-agent $n1 $s\n$ns connect $u $s",
    ));
    assert_eq!(e.line(), 9);
    // A program START before it has a command.
    let e = err(&with_topology(
        "set p [new Program $ns]\n$p set node $n0\n$ns at 1 \"$p start\"\n$p set command ls",
    ));
    assert_eq!(e.line(), 7);
}

#[test]
fn naming_rules() {
    // Reusing a variable for a second object in a loop.
    let e = err(
        "set ns [new Simulator]\nfor {set i 0} {$i < 2} {incr i} {\n  set n [$ns node]\n}\n$ns run\n",
    );
    assert_eq!(e.line(), 3);
    assert!(matches!(e.kind(), NsErrorKind::NameConflict { .. }), "{e}");
    assert!(e.to_string().contains("n($i)"), "{e}");
    // Node names are host names.
    let e = err("set ns [new Simulator]\nset my_node [$ns node]\n$ns run\n");
    assert!(matches!(e.kind(), NsErrorKind::InvalidValue { .. }), "{e}");
    // Reserved agent names.
    let e = err("set ns [new Simulator]\nset linktest [$ns node]\n$ns run\n");
    assert!(matches!(e.kind(), NsErrorKind::NameConflict { .. }), "{e}");
    // Built-in command names would be hidden by an object.
    let e = err("set ns [new Simulator]\nset for [$ns node]\n$ns run\n");
    assert_eq!(e.line(), 2);
    assert!(matches!(e.kind(), NsErrorKind::NameConflict { .. }), "{e}");
    // A LAN member agent colliding with an object.
    let e = err(
        "set ns [new Simulator]\nset a [$ns node]\nset lan [$ns make-lan \"$a\" 1Mb 0ms]\nset lan-a [new Program $ns]\n$lan-a set node $a\n$ns run\n",
    );
    // `$lan-a` reads variable `lan` followed by "-a": not an object.
    assert!(!e.to_string().is_empty());
    let e = err(
        "set ns [new Simulator]\nset a [$ns node]\nset lan [$ns make-lan \"$a\" 1Mb 0ms]\nset {lan-a} [new Program $ns]\n${lan-a} set node $a\n$ns run\n",
    );
    assert_eq!(e.line(), 4);
    assert!(matches!(e.kind(), NsErrorKind::NameConflict { .. }), "{e}");
}

#[test]
fn addressing_errors() {
    let e = err(
        "set ns [new Simulator]\nset a [$ns node]\nset b [$ns node]\nset c [$ns node]\n\
         set l1 [$ns duplex-link $a $b 1Mb 0ms DropTail]\nset l2 [$ns duplex-link $a $c 1Mb 0ms DropTail]\n\
         tb-set-ip $a 10.9.9.9\n$ns run\n",
    );
    assert_eq!(e.line(), 7);
    assert!(e.to_string().contains("exactly one link or LAN"), "{e}");
    let e = err(&with_topology(
        "tb-set-ip-link $n0 $link0 10.1.1.5\ntb-set-ip-link $n1 $link0 10.1.1.5",
    ));
    assert!(e.to_string().contains("two interfaces"), "{e}");
    let e = err(&with_topology(
        "tb-set-ip-link $n0 $link0 10.1.1.5\ntb-set-ip-link $n1 $link0 10.1.2.5",
    ));
    assert!(e.to_string().contains("one /24"), "{e}");
    let e = err(&with_topology("tb-set-ip-link $n0 $link0 300.1.1.1"));
    assert_eq!(e.line(), 5);
    let e = err(&with_topology(
        "set lan [$ns make-lan \"$n0\" 1Mb 0ms]\ntb-set-ip-lan $n1 $lan 10.1.1.1",
    ));
    assert!(e.to_string().contains("not a member"), "{e}");
    let e = err(&with_topology("tb-set-ip-lan $n0 $link0 10.1.1.1"));
    assert!(matches!(e.kind(), NsErrorKind::WrongClass { .. }), "{e}");
}

#[test]
fn traffic_wiring_errors() {
    let e = err(&with_topology(
        "set u [new Agent/UDP]\nset s [new Agent/TCPSink]\n$ns attach-agent $n0 $u\n$ns attach-agent $n1 $s\n$ns connect $u $s",
    ));
    assert_eq!(e.line(), 9);
    let e = err(&with_topology(
        "set u [new Agent/UDP]\nset s [new Agent/Null]\n$ns attach-agent $n1 $s\n$ns connect $u $s",
    ));
    assert!(e.to_string().contains("attach-agent first"), "{e}");
    let e = err(&with_topology(
        "set u [new Agent/UDP]\n$ns attach-agent $n0 $u\n$ns attach-agent $n1 $u",
    ));
    assert!(e.to_string().contains("already attached"), "{e}");
    let e = err(&with_topology("set t [new Agent/TCP/FullTcp]"));
    assert!(matches!(e.kind(), NsErrorKind::Unsupported(_)), "{e}");
    let e = err(&with_topology(
        "set c [new Application/Traffic/CBR]\n$c set packetSize_ 0",
    ));
    assert_eq!(e.line(), 6);
    let e = err(&with_topology(
        "set c [new Application/Traffic/CBR]\n$c set iptos_ 256",
    ));
    assert_eq!(e.line(), 6);
    let e = err(&with_topology("set c [new Application/Traffic/CBR]"));
    assert!(e.to_string().contains("never attached to an agent"), "{e}");
}

#[test]
fn other_refusals() {
    let e = err("set ns [new Simulator]\nsource other.tcl\n$ns run\n");
    assert_eq!(e.line(), 2);
    assert!(matches!(e.kind(), NsErrorKind::Unsupported(_)));
    let e = err("set ns [new Simulator]\nset x {*}{a b}\n$ns run\n");
    assert!(matches!(e.kind(), NsErrorKind::Unsupported(_)));
    let e = err("set ns [new Simulator]\nset x [expr 1.5 * 2]\n$ns run\n");
    assert!(e.to_string().contains("integer"), "{e}");
    let e = err("set ns [new Simulator]\nset x [expr 1 / 0]\n$ns run\n");
    assert!(e.to_string().contains("divide by zero"), "{e}");
    let e = err(&with_topology("$ns duplex-link $n0 $n1 1Mb 0ms"));
    assert!(matches!(e.kind(), NsErrorKind::WrongArgs { .. }), "{e}");
    let e = err(&with_topology("$ns make-simulated {}"));
    assert!(matches!(e.kind(), NsErrorKind::Unsupported(_)), "{e}");
    let e = err(&with_topology("$ns duplex-link $n0 $n1 1Mb 0ms CBQ"));
    assert!(matches!(e.kind(), NsErrorKind::InvalidValue { .. }), "{e}");
    let e = err(&with_topology("$ns duplex-link $n0 $n1 1Mb 10us DropTail"));
    assert!(matches!(e.kind(), NsErrorKind::InvalidDelay(_)), "{e}");
    let e = err(&with_topology("$ns rtproto OSPF"));
    assert!(matches!(e.kind(), NsErrorKind::InvalidValue { .. }), "{e}");
    let e = err(&with_topology("$ns at 1 \"\""));
    assert!(e.to_string().contains("no event"), "{e}");
    let e = err(&with_topology("$ns at 1 \"$link0 down\" extra"));
    assert!(matches!(e.kind(), NsErrorKind::WrongArgs { .. }), "{e}");
}

#[test]
fn runaway_scripts_hit_limits() {
    let e = err("set ns [new Simulator]\nfor {set i 0} {1} {incr i} { set x $i }\n$ns run\n");
    assert!(matches!(e.kind(), NsErrorKind::LimitExceeded { .. }), "{e}");
    assert_eq!(e.line(), 2);
    let e = err(
        "set ns [new Simulator]\nset s x\nfor {set i 0} {$i < 40} {incr i} { set s $s$s }\n$ns run\n",
    );
    assert!(matches!(e.kind(), NsErrorKind::LimitExceeded { .. }), "{e}");
    let nested = format!(
        "set ns [new Simulator]\nset x {}1{}\n$ns run\n",
        "[list ".repeat(100),
        "]".repeat(100)
    );
    let e = err(&nested);
    assert!(matches!(e.kind(), NsErrorKind::LimitExceeded { .. }), "{e}");
    let e = err(
        "set ns [new Simulator]\nfor {set i 0} {$i < 30000} {incr i} { set n($i) [$ns node] }\n$ns run\n",
    );
    assert!(matches!(e.kind(), NsErrorKind::LimitExceeded { .. }), "{e}");
}

#[test]
fn long_lines_and_many_memberships_are_handled() {
    // 50,000 command substitutions on one line: each records its position
    // without rescanning the line (the benchmark measures a larger one).
    let text = format!(
        "set ns [new Simulator]\nset x {}\n$ns run\n",
        "[list]".repeat(50_000)
    );
    assert!(parse_str(&text, "long.ns").is_ok());
    // Memberships are bounded even when objects are few.
    let text = "set ns [new Simulator]\nfor {set i 0} {$i < 1000} {incr i} { set n($i) [$ns node] }\n\
        set all {}\nfor {set i 0} {$i < 1000} {incr i} { set all \"$all $n($i)\" }\n\
        for {set i 0} {$i < 200} {incr i} { set lan($i) [$ns make-lan $all 1Mb 0ms] }\n$ns run\n";
    let e = err(text);
    assert_eq!(e.line(), 5);
    assert!(e.to_string().contains("memberships"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary text never panics.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let _ = parse_str(&text, "fuzz.ns");
    }
}

proptest! {
    // Fewer cases: nested loops in these inputs can run the command budget
    // out, which takes a moment in a debug build.
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Text built from NS-ish fragments (more likely to get deep into the
    /// interpreter) never panics either.
    #[test]
    fn ns_like_text_never_panics(
        fragments in proptest::collection::vec(
            prop_oneof![
                Just("set ns [new Simulator]\n"), Just("set n0 [$ns node]\n"), Just("set n1 [$ns node]\n"),
                Just("set l [$ns duplex-link $n0 $n1 10Mb 1ms DropTail]\n"),
                Just("set lan [$ns make-lan \"$n0 $n1\" 1Mb 0ms]\n"),
                Just("set p [$n0 program-agent -command x]\n"), Just("set g [$ns event-group [list $l $lan]]\n"),
                Just("set u [new Agent/UDP]\n"), Just("$ns attach-agent $n0 $u\n"),
                Just("set c [new Application/Traffic/CBR]\n"), Just("$c attach-agent $u\n"),
                Just("set s [new Agent/Null]\n"), Just("$ns attach-agent $n1 $s\n"), Just("$ns connect $u $s\n"),
                Just("set q [[$ns link $n0 $n1] queue]\n"), Just("$q set limit_ 5\n"),
                Just("$ns at 1 \"$l down; $g up\"\n"), Just("$ns at 2 \"$c start\"\n"), Just("$ns at .5 \"$p start\"\n"),
                Just("$ns at 3 \"$q set limit_ 9\"\n"), Just("tb-set-ip $n0 10.1.1.1\n"), Just("tb-set-lan-loss $lan 0.5\n"),
                Just("$ns rtproto Static\n"), Just("for {set i 0} {$i < 3} {incr i} {"), Just("}\n"),
                Just("\""), Just("{"), Just("["), Just("]"), Just("$"), Just(";"), Just("\\\n"), Just("$ns run\n"),
            ],
            0..40,
        )
    ) {
        let text: String = fragments.concat();
        let _ = parse_str(&text, "fuzz.ns");
    }
}
