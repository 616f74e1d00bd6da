//! Individual statement and event forms, beyond the every-form example:
//! naming, ordering and snapshot rules, address assignment, loops.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use tbevents_ns::{NsError, VirtualExperiment, parse_str};
use tbevents_store::model::StaticEvent;

/// Parses `body` between the usual first and last lines.
fn parse(body: &str) -> Result<VirtualExperiment, NsError> {
    parse_str(
        &format!("set ns [new Simulator]\nsource tb_compat.tcl\n{body}\n$ns run\n"),
        "test.ns",
    )
}

fn ok(body: &str) -> VirtualExperiment {
    parse(body).unwrap_or_else(|e| panic!("should parse: {e}"))
}

fn event_tuples(events: &[StaticEvent]) -> Vec<(String, String, String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e.vnode.clone(),
                e.vname.clone(),
                e.eventtype.clone(),
                e.arguments.clone(),
            )
        })
        .collect()
}

const TWO_NODES: &str = "set n0 [$ns node]\nset n1 [$ns node]\n";

const UDP_FLOW: &str = "set n0 [$ns node]\nset n1 [$ns node]\n\
    set l [$ns duplex-link $n0 $n1 10Mb 0ms DropTail]\n\
    set udp [new Agent/UDP]\nset cbr [new Application/Traffic/CBR]\n\
    $cbr attach-agent $udp\nset sink [new Agent/Null]\n";

#[test]
fn minimal_file_has_the_always_present_agents() {
    let exp = ok("");
    assert_eq!(exp.simulator_name, "ns");
    let agents: Vec<(&str, &str, &str)> = exp
        .agents
        .iter()
        .map(|a| (a.vnode.as_str(), a.vname.as_str(), a.objtype.as_str()))
        .collect();
    assert_eq!(
        agents,
        [
            ("*", "ns", "SIMULATOR"),
            ("*", "linktest", "LINKTEST"),
            ("*", "slothd", "SLOTHD")
        ]
    );
}

#[test]
fn simulator_takes_its_variable_name() {
    let exp = parse_str(
        "set sim [new Simulator]\n$sim at 5 \"$sim halt\"\n$sim run\n",
        "x.ns",
    )
    .unwrap();
    assert_eq!(exp.simulator_name, "sim");
    assert_eq!(exp.agents[0].vname, "sim");
    assert_eq!(exp.events[0].vnode, "*");
    assert_eq!(exp.events[0].vname, "sim");
    assert_eq!(exp.events[0].atstring, "sim halt");
}

#[test]
fn routing_protocols() {
    let routertype = |body: &str| {
        ok(&format!("{TWO_NODES}{body}")).nodes[0]
            .routertype
            .clone()
    };
    assert_eq!(routertype(""), "none");
    assert_eq!(routertype("$ns rtproto Static"), "static");
    assert_eq!(routertype("$ns rtproto Session"), "session");
    assert_eq!(routertype("$ns rtproto Manual"), "manual");
    // Applies to nodes created after the rtproto line too.
    let exp = ok("$ns rtproto Static\nset late [$ns node]");
    assert_eq!(exp.nodes[0].routertype, "static");
}

#[test]
fn default_addresses_skip_subnets_the_file_uses() {
    let exp = ok(&format!(
        "{TWO_NODES}set n2 [$ns node]\n\
         set l0 [$ns duplex-link $n0 $n1 10Mb 0ms DropTail]\n\
         set l1 [$ns duplex-link $n1 $n2 10Mb 0ms DropTail]\n\
         tb-set-ip-link $n2 $l1 10.1.1.7\n"
    ));
    let ips: Vec<(&str, &str, &str)> = exp
        .lan_members
        .iter()
        .map(|m| (m.vname.as_str(), m.vnode.as_str(), m.ip.as_str()))
        .collect();
    // l1 owns 10.1.1.0/24 because of the explicit address, so l0 gets 10.1.2.
    assert_eq!(
        ips,
        [
            ("l0", "n0", "10.1.2.2"),
            ("l0", "n1", "10.1.2.3"),
            ("l1", "n1", "10.1.1.2"),
            ("l1", "n2", "10.1.1.7"),
        ]
    );
}

#[test]
fn tb_set_ip_names_the_only_interface() {
    let exp = ok(&format!(
        "{TWO_NODES}set l0 [$ns duplex-link $n0 $n1 10Mb 0ms DropTail]\ntb-set-ip $n1 192.168.5.9\n"
    ));
    assert_eq!(exp.nodes[1].ips, "0:192.168.5.9");
    assert_eq!(exp.nodes[0].ips, "0:192.168.5.2");
}

#[test]
fn lan_addresses_and_shaping() {
    let exp = ok(&format!(
        "{TWO_NODES}set n2 [$ns node]\nset lan [$ns make-lan [list $n0 $n1 $n2] 1.5Mb 3ms LL Queue/DropTail Mac/802_3]\n"
    ));
    let m = &exp.lan_members;
    assert_eq!(m.len(), 3);
    assert!(
        m.iter()
            .all(|m| m.is_lan && m.bandwidth == 1500 && m.delay == 1.5 && m.rdelay == 1.5)
    );
    let ips: Vec<&str> = m.iter().map(|m| m.ip.as_str()).collect();
    assert_eq!(ips, ["10.1.1.2", "10.1.1.3", "10.1.1.4"]);
    assert_eq!(m[2].member, "n2:0");
}

#[test]
fn vports_follow_the_order_a_node_joins() {
    let exp = ok(&format!(
        "{TWO_NODES}set n2 [$ns node]\n\
         set l0 [$ns duplex-link $n0 $n1 10Mb 0ms DropTail]\n\
         set l1 [$ns duplex-link $n2 $n1 10Mb 0ms DropTail]\n"
    ));
    let n1: Vec<(u32, &str)> = exp
        .lan_members
        .iter()
        .filter(|m| m.vnode == "n1")
        .map(|m| (m.vport, m.member.as_str()))
        .collect();
    assert_eq!(n1, [(0, "n1:0"), (1, "n1:1")]);
    assert_eq!(exp.nodes[1].ips, "0:10.1.1.3 1:10.1.2.3");
}

#[test]
fn loops_build_a_chain_with_array_names() {
    let exp = ok("for {set i 0} {$i < 4} {incr i} {\n\
            set node($i) [$ns node]\n\
         }\n\
         for {set i 1} {$i < 4} {incr i} {\n\
            set link($i) [$ns duplex-link $node([expr $i - 1]) $node($i) 100Mb [expr {$i * 5}]ms DropTail]\n\
         }\n\
         foreach l [list $link(1) $link(3)] { $ns at [expr 10 + 1] \"$l down\" }\n");
    let names: Vec<&str> = exp.nodes.iter().map(|n| n.vname.as_str()).collect();
    assert_eq!(names, ["node-0", "node-1", "node-2", "node-3"]);
    let delays: Vec<(&str, f64)> = exp
        .lan_members
        .iter()
        .map(|m| (m.vname.as_str(), m.delay))
        .collect();
    assert_eq!(
        delays,
        [
            ("link-1", 2.5),
            ("link-1", 2.5),
            ("link-2", 5.0),
            ("link-2", 5.0),
            ("link-3", 7.5),
            ("link-3", 7.5)
        ]
    );
    let events: Vec<(f64, &str)> = exp
        .events
        .iter()
        .map(|e| (e.time, e.vname.as_str()))
        .collect();
    assert_eq!(events, [(11.0, "link-1"), (11.0, "link-3")]);
}

#[test]
fn foreach_over_pairs_and_incr_by_amount() {
    let exp = ok("set count 0\n\
         foreach {name os} {alpha FBSD-STD beta RHL-STD} {\n\
            set $name [$ns node]\n\
            incr count 10\n\
         }\n\
         tb-set-node-os $alpha FBSD-STD\n\
         $ns at $count \"$ns halt\"\n");
    assert_eq!(exp.nodes[0].vname, "alpha");
    assert_eq!(exp.nodes[1].vname, "beta");
    assert_eq!(exp.events[0].time, 20.0);
}

#[test]
fn cbr_start_uses_settings_as_of_the_at_line() {
    let exp = ok(&format!(
        "{UDP_FLOW}$ns attach-agent $n0 $udp\n$ns attach-agent $n1 $sink\n$ns connect $udp $sink\n\
         $cbr set packetSize_ 100\n$cbr set rate_ 1Mb\n\
         $ns at 1 \"$cbr start\"\n\
         $cbr set packetSize_ 200\n$cbr set rate_ 0\n$cbr set interval_ 0.25\n$cbr set iptos_ 0\n\
         $ns at 2 \"$cbr start\"\n"
    ));
    let args: Vec<&str> = exp.events.iter().map(|e| e.arguments.as_str()).collect();
    assert_eq!(
        args,
        [
            "PACKETSIZE=100 RATE=1000 INTERVAL=-1 IPTOS=-1",
            "PACKETSIZE=200 RATE=-1 INTERVAL=0.25 IPTOS=-1",
        ]
    );
}

#[test]
fn event_node_is_resolved_at_the_end_of_the_file() {
    // The event comes before the agent is attached anywhere.
    let exp = ok(&format!(
        "{UDP_FLOW}$ns at 1 \"$cbr start\"\n\
         $ns attach-agent $n1 $udp\n$ns attach-agent $n0 $sink\n$ns connect $udp $sink\n"
    ));
    assert_eq!(exp.events[0].vnode, "n1");
}

#[test]
fn old_style_program_and_its_events() {
    let exp = ok(&format!(
        "{TWO_NODES}set p [new Program $ns]\n$p set node $n1\n$p set command \"/bin/echo hi\"\n\
         $ns at 1 \"$p start\"\n$ns at 2 \"$p kill 9\"\n$ns at 3 \"$p stop\"\n"
    ));
    assert_eq!(
        event_tuples(&exp.events),
        [
            (
                "n1".into(),
                "p".into(),
                "START".into(),
                "COMMAND=/bin/echo hi".into()
            ),
            ("n1".into(), "p".into(), "KILL".into(), "SIGNAL=9".into()),
            ("n1".into(), "p".into(), "STOP".into(), String::new()),
        ]
    );
    assert_eq!(exp.agents[3].vnode, "n1");
    assert_eq!(exp.agents[3].objtype, "PROGRAM");
}

#[test]
fn program_settings_from_options_and_set() {
    let exp = ok(&format!(
        "{TWO_NODES}set p [$n0 program-agent -command ls -dir /tmp -timeout 30 -expected-exit-code 3]\n\
         set q [new Program $ns]\n$q set node $n1\n$q set command true\n\
         $q set dir /var/tmp\n$q set timeout 5\n$q set expected-exit-code 1\n"
    ));
    let settings: Vec<(&str, &str, u32, u8)> = exp
        .programs
        .iter()
        .map(|p| {
            (
                p.vname.as_str(),
                p.dir.as_str(),
                p.timeout,
                p.expected_exit_code,
            )
        })
        .collect();
    assert_eq!(settings, [("p", "/tmp", 30, 3), ("q", "/var/tmp", 5, 1)]);
    for bad in [
        "set p [$n0 program-agent -dir relative]",
        "set p [$n0 program-agent -timeout -1]",
        "set p [$n0 program-agent -timeout 1.5]",
        "set p [$n0 program-agent -expected-exit-code 256]",
        "set p [$n0 program-agent -user root]",
        "set p [$n0 program-agent]\n$p set tag x",
    ] {
        assert!(parse(&format!("{TWO_NODES}{bad}")).is_err(), "{bad}");
    }
}

#[test]
fn program_agent_without_command_then_set() {
    let exp = ok(&format!(
        "{TWO_NODES}set p [$n0 program-agent]\n$p set command {{sleep 5}}\n$ns at 1 \"$p start\"\n"
    ));
    assert_eq!(exp.programs[0].command, "sleep 5");
    assert_eq!(exp.events[0].arguments, "COMMAND=sleep 5");
}

#[test]
fn group_events_expand_per_member_and_keep_following_events() {
    let exp = ok(&format!(
        "{TWO_NODES}set l0 [$ns duplex-link $n0 $n1 10Mb 0ms DropTail]\n\
         set lan [$ns make-lan \"$n0 $n1\" 10Mb 0ms]\n\
         set g [$ns event-group [list $l0 $lan $l0]]\n\
         $ns at 1 \"$g bandwidth 20Mb; $l0 down ; ; $lan up\"\n"
    ));
    assert_eq!(
        event_tuples(&exp.events),
        [
            (
                String::new(),
                "l0".into(),
                "MODIFY".into(),
                "BANDWIDTH=20000".into()
            ),
            (
                String::new(),
                "lan".into(),
                "MODIFY".into(),
                "BANDWIDTH=20000".into()
            ),
            (String::new(), "l0".into(), "DOWN".into(), String::new()),
            (String::new(), "lan".into(), "UP".into(), String::new()),
        ]
    );
    let ats: Vec<&str> = exp.events.iter().map(|e| e.atstring.as_str()).collect();
    assert_eq!(
        ats,
        [
            "l0 bandwidth 20Mb",
            "lan bandwidth 20Mb",
            "l0 down",
            "lan up"
        ]
    );
    // A member listed twice is one member.
    assert_eq!(exp.groups.len(), 2);
}

#[test]
fn group_members_added_after_an_event_are_not_in_it() {
    let exp = ok(&format!(
        "{TWO_NODES}set a [$n0 program-agent -command a]\nset b [$n1 program-agent -command b]\n\
         set g [new EventGroup $ns]\n$g add $a\n$ns at 1 \"$g stop\"\n$g add $b\n$ns at 2 \"$g stop\"\n"
    ));
    let names: Vec<(f64, &str)> = exp
        .events
        .iter()
        .map(|e| (e.time, e.vname.as_str()))
        .collect();
    assert_eq!(names, [(1.0, "a"), (2.0, "a"), (2.0, "b")]);
}

#[test]
fn queue_limit_and_link_events_mark_mustdelay() {
    let exp = ok(&format!(
        "{TWO_NODES}set l0 [$ns duplex-link $n0 $n1 10Mb 0ms DropTail]\n\
         set l1 [$ns duplex-link $n0 $n1 10Mb 0ms DropTail]\n\
         set q [[$ns link $n1 $n0] queue]\n$q set limit_ 7\n\
         $ns at 1 \"$q set limit_ 9\"\n"
    ));
    let rows: Vec<(&str, &str, u32, bool)> = exp
        .lan_members
        .iter()
        .map(|m| (m.vname.as_str(), m.vnode.as_str(), m.q_limit, m.mustdelay))
        .collect();
    // `$ns link` finds the first link between the nodes; its n1 side.
    assert_eq!(
        rows,
        [
            ("l0", "n0", 50, true),
            ("l0", "n1", 7, true),
            ("l1", "n0", 50, false),
            ("l1", "n1", 50, false)
        ]
    );
    assert_eq!(exp.events[0].vname, "l0-n1");
    assert_eq!(exp.events[0].vnode, "");
}

#[test]
fn link_loss_by_node_pair_and_lan_loss() {
    let exp = ok(&format!(
        "{TWO_NODES}set l0 [$ns duplex-link $n0 $n1 10Mb 0ms DropTail]\ntb-set-link-loss $n1 $n0 0.19\n"
    ));
    let half = 1.0 - (0.81f64).sqrt();
    assert!(
        exp.lan_members
            .iter()
            .all(|m| m.lossrate == half && m.rlossrate == half)
    );
    assert!((half - 0.1).abs() < 1e-12);
}

#[test]
fn syntax_conveniences() {
    // Continuations, `;` separators, comments, ${var}, escapes in quotes.
    let exp = ok("set n0 [$ns node] ; set n1 [$ns node]  ;# two nodes\n\
         # a comment line ; with a semicolon\n\
         set link0 [$ns duplex-link ${n0} $n1 \\\n   10Mb \\\n   5ms DropTail]\n\
         set p [$n0 program-agent -command \"echo \\\"quoted\\\" \\$HOME\"]\n\
         $ns at 1 \"$p start\"\n");
    assert_eq!(exp.lan_members[0].delay, 2.5);
    assert_eq!(exp.programs[0].command, "echo \"quoted\" $HOME");
    assert_eq!(exp.events[0].arguments, "COMMAND=echo \"quoted\" $HOME");
}

#[test]
fn crlf_line_endings_are_accepted() {
    let exp = parse_str(
        "set ns [new Simulator]\r\nset n0 [$ns node]\r\n$ns at 1 \"$ns halt\"\r\n$ns run\r\n",
        "dos.ns",
    )
    .unwrap();
    assert_eq!(exp.nodes[0].vname, "n0");
    assert_eq!(exp.events[0].eventtype, "HALT");
}

#[test]
fn exactly_max_events_is_accepted() {
    let exp = ok(&format!(
        "for {{set i 0}} {{$i < {}}} {{incr i}} {{ $ns at $i \"$ns halt\" }}",
        tbevents_ns::limits::MAX_EVENTS
    ));
    assert_eq!(exp.events.len(), tbevents_ns::limits::MAX_EVENTS);
}

#[test]
fn parse_file_reads_from_disk() {
    let dir = std::env::temp_dir().join(format!("tbevents-ns-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("exp.ns");
    std::fs::write(&path, "set ns [new Simulator]\n$ns run\n").unwrap();
    assert!(tbevents_ns::parse_file(&path).is_ok());
    std::fs::write(&path, "set ns [new Simulator]\nproc x {} {}\n$ns run\n").unwrap();
    let err = tbevents_ns::parse_file(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}:2: unsupported command 'proc'", path.display())
    );
    let missing = dir.join("missing.ns");
    let err = tbevents_ns::parse_file(&missing).unwrap_err();
    assert!(matches!(err.kind(), tbevents_ns::NsErrorKind::Io(_)));
    std::fs::write(&path, b"set ns [new Simulator]\n\xff\n").unwrap();
    let err = tbevents_ns::parse_file(&path).unwrap_err();
    assert_eq!(err.line(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}
