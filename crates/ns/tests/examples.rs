//! The shipped example files load and produce exactly the rows Emulab's
//! front end would have written. The expected values here were derived by
//! hand from the files and the rules in the crate docs, not copied from
//! output.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::PathBuf;

use tbevents_ns::{VirtualExperiment, parse_file};
use tbevents_store::model::{
    GroupRow, StaticEvent, VirtAgent, VirtLanMember, VirtNode, VirtProgram, VirtTrafgen,
};

fn example(name: &str) -> VirtualExperiment {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    match parse_file(&path) {
        Ok(experiment) => experiment,
        Err(error) => panic!("{name} should load: {error}"),
    }
}

fn node(vname: &str, node_type: &str, osname: &str, ips: &str) -> VirtNode {
    VirtNode {
        vname: vname.into(),
        node_type: node_type.into(),
        osname: osname.into(),
        routertype: "session".into(),
        ips: ips.into(),
    }
}

/// A member row with Emulab's default queue; tests change the queue
/// columns with struct update syntax.
#[allow(clippy::too_many_arguments)]
fn member(
    vname: &str,
    vnode: &str,
    vport: u32,
    ip: &str,
    delay: f64,
    bandwidth: u64,
    loss: f64,
    is_lan: bool,
    mustdelay: bool,
) -> VirtLanMember {
    VirtLanMember {
        vname: vname.into(),
        vnode: vnode.into(),
        vport,
        ip: ip.into(),
        mask: "255.255.255.0".into(),
        delay,
        bandwidth,
        lossrate: loss,
        rdelay: delay,
        rbandwidth: bandwidth,
        rlossrate: loss,
        member: format!("{vnode}:{vport}"),
        is_lan,
        mustdelay,
        ..VirtLanMember::default()
    }
}

fn agent(vnode: &str, vname: &str, objtype: &str) -> VirtAgent {
    VirtAgent {
        vname: vname.into(),
        vnode: vnode.into(),
        objtype: objtype.into(),
    }
}

fn ev(
    time: f64,
    vnode: &str,
    vname: &str,
    objtype: &str,
    eventtype: &str,
    args: &str,
    at: &str,
) -> StaticEvent {
    StaticEvent {
        time,
        vnode: vnode.into(),
        vname: vname.into(),
        objtype: objtype.into(),
        eventtype: eventtype.into(),
        arguments: args.into(),
        atstring: at.into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn trafgen(
    vnode: &str,
    vname: &str,
    role: &str,
    proto: &str,
    port: u32,
    ip: &str,
    target_vnode: &str,
    target_vname: &str,
    target_port: u32,
    target_ip: &str,
) -> VirtTrafgen {
    VirtTrafgen {
        vnode: vnode.into(),
        vname: vname.into(),
        role: role.into(),
        proto: proto.into(),
        port,
        ip: ip.into(),
        target_vnode: target_vnode.into(),
        target_vname: target_vname.into(),
        target_port,
        target_ip: target_ip.into(),
        generator: "TG".into(),
    }
}

fn group(group_name: &str, agent_name: &str) -> GroupRow {
    GroupRow {
        group_name: group_name.into(),
        agent_name: agent_name.into(),
    }
}

#[test]
fn every_form_topology() {
    let exp = example("every-form.ns");
    assert_eq!(exp.simulator_name, "ns");
    // Explicit addresses: a on link0 (10.1.1.10), b on lan0 (10.1.2.20),
    // n-2 by tb-set-ip (10.1.2.30). link0 and lan0 fill their subnets from
    // .2; link1 has none, so it takes the first free subnet, 10.1.3.
    assert_eq!(
        exp.nodes,
        vec![
            node("a", "", "FBSD-STD", "0:10.1.1.10"),
            node("b", "pc850", "", "0:10.1.1.2 1:10.1.2.20"),
            node("n-0", "", "", "0:10.1.2.2 1:10.1.3.2"),
            node("n-1", "", "", "0:10.1.2.3 1:10.1.3.3"),
            node("n-2", "", "", "0:10.1.2.30"),
        ]
    );
    // Loss is end to end: each half gets 1 - sqrt(1 - L). Delay is split.
    // A queue's settings are in the row of the node its traffic leaves
    // from: `[$ns link $a $b] queue` is a's row. RED queues (lan0's from
    // Queue/RED, link1's from RED) make their link or LAN mustdelay.
    let link0_loss = 1.0 - (1.0f64 - 0.01).sqrt();
    let lan0_loss = 1.0 - (1.0f64 - 0.04).sqrt();
    let lan0 = |vnode: &str, vport: u32, ip: &str| VirtLanMember {
        q_red: true,
        ..member("lan0", vnode, vport, ip, 2.0, 10_000, lan0_loss, true, true)
    };
    let expected = vec![
        VirtLanMember {
            q_limit: 20,
            q_red: true,
            ..member(
                "link0",
                "a",
                0,
                "10.1.1.10",
                10.0,
                1500,
                link0_loss,
                false,
                true,
            )
        },
        VirtLanMember {
            q_limit: 30_000,
            q_maxthresh: 25,
            q_weight: 0.004,
            q_qinbytes: true,
            ..member(
                "link0", "b", 0, "10.1.1.2", 10.0, 1500, link0_loss, false, true,
            )
        },
        lan0("b", 1, "10.1.2.20"),
        lan0("n-0", 0, "10.1.2.2"),
        lan0("n-1", 0, "10.1.2.3"),
        lan0("n-2", 0, "10.1.2.30"),
        VirtLanMember {
            q_red: true,
            ..member(
                "link1", "n-0", 1, "10.1.3.2", 0.25, 1_000_000, 0.0, false, true,
            )
        },
        VirtLanMember {
            q_red: true,
            q_gentle: true,
            q_minthresh: 3,
            q_linterm: 20,
            q_meanpsize: 1000,
            q_bytes: true,
            q_wait: false,
            q_setbit: true,
            q_droptail: false,
            ..member(
                "link1", "n-1", 1, "10.1.3.3", 0.25, 1_000_000, 0.0, false, true,
            )
        },
    ];
    assert_eq!(exp.lan_members.len(), expected.len());
    for (got, want) in exp.lan_members.iter().zip(&expected) {
        assert_eq!(got, want, "{} {}", want.vname, want.vnode);
    }
}

#[test]
fn every_form_agents_programs_traffic_groups() {
    let exp = example("every-form.ns");
    assert_eq!(
        exp.agents,
        vec![
            agent("*", "ns", "SIMULATOR"),
            agent("*", "linktest", "LINKTEST"),
            agent("*", "slothd", "SLOTHD"),
            agent("a", "prog0", "PROGRAM"),
            agent("n-2", "prog1", "PROGRAM"),
            agent("a", "cbr0", "TRAFGEN"),
            agent("n-2", "null0", "TRAFGEN"),
            agent("n-0", "cbr1", "TRAFGEN"),
            agent("a", "sink0", "TRAFGEN"),
            agent("*", "link0", "LINK"),
            agent("*", "link0-a", "LINK"),
            agent("*", "link0-b", "LINK"),
            agent("*", "lan0", "LINK"),
            agent("*", "lan0-b", "LINK"),
            agent("*", "lan0-n-0", "LINK"),
            agent("*", "lan0-n-1", "LINK"),
            agent("*", "lan0-n-2", "LINK"),
            agent("*", "link1", "LINK"),
            agent("*", "link1-n-0", "LINK"),
            agent("*", "link1-n-1", "LINK"),
        ]
    );
    assert_eq!(
        exp.programs,
        vec![
            VirtProgram {
                vnode: "a".into(),
                vname: "prog0".into(),
                command: "echo hello; sleep 1".into(),
                ..Default::default()
            },
            VirtProgram {
                vnode: "n-2".into(),
                vname: "prog1".into(),
                command: "/bin/ls -l /tmp".into(),
                ..Default::default()
            },
        ]
    );
    // Ports count up from 5001 per node in attach order; IPs are each
    // node's interface 0.
    assert_eq!(
        exp.trafgens,
        vec![
            trafgen(
                "a",
                "cbr0",
                "source",
                "udp",
                5001,
                "10.1.1.10",
                "n-2",
                "null0",
                5001,
                "10.1.2.30"
            ),
            trafgen(
                "n-2",
                "null0",
                "sink",
                "udp",
                5001,
                "10.1.2.30",
                "a",
                "cbr0",
                5001,
                "10.1.1.10"
            ),
            trafgen(
                "n-0",
                "cbr1",
                "source",
                "tcp",
                5001,
                "10.1.2.2",
                "a",
                "sink0",
                5002,
                "10.1.1.10"
            ),
            trafgen(
                "a",
                "sink0",
                "sink",
                "tcp",
                5002,
                "10.1.1.10",
                "n-0",
                "cbr1",
                5001,
                "10.1.2.2"
            ),
        ]
    );
    assert_eq!(
        exp.groups,
        vec![
            group("linkgroup", "link0"),
            group("linkgroup", "lan0"),
            group("cbrgroup", "cbr0"),
            group("cbrgroup", "cbr1"),
            group("qgroup", "link0-a"),
            group("qgroup", "link0-b"),
            group("proggroup", "prog0"),
            group("proggroup", "prog1"),
        ]
    );
}

#[test]
fn every_form_events() {
    let exp = example("every-form.ns");
    let start0 = "PACKETSIZE=210 RATE=100000 INTERVAL=-1 IPTOS=-1";
    let start1 = "PACKETSIZE=1400 RATE=-1 INTERVAL=0.01 IPTOS=16";
    let expected = vec![
        ev(0.5, "", "link0", "LINK", "DOWN", "", "link0 down"),
        ev(1.0, "", "link0", "LINK", "UP", "", "link0 up"),
        ev(
            1.5,
            "",
            "link0",
            "LINK",
            "MODIFY",
            "BANDWIDTH=2000",
            "link0 bandwidth 2Mb",
        ),
        ev(
            2.0,
            "",
            "link0",
            "LINK",
            "MODIFY",
            "BANDWIDTH=500",
            "link0 bandwidth 500kb duplex",
        ),
        ev(
            2.5,
            "",
            "link0",
            "LINK",
            "MODIFY",
            "DELAY=30ms",
            "link0 delay 30ms",
        ),
        ev(
            3.0,
            "",
            "link0",
            "LINK",
            "MODIFY",
            "PLR=0.1",
            "link0 plr 0.1",
        ),
        ev(3.5, "", "lan0", "LINK", "DOWN", "", "lan0 down"),
        ev(3.5, "", "lan0", "LINK", "UP", "", "lan0 up"),
        ev(
            4.0,
            "",
            "lan0",
            "LINK",
            "MODIFY",
            "BANDWIDTH=1000000",
            "lan0 bandwidth 1Gbps",
        ),
        ev(4.5, "", "lan0", "LINK", "MODIFY", "DELAY=7", "lan0 delay 7"),
        ev(5.0, "", "lan0", "LINK", "MODIFY", "PLR=0", "lan0 plr 0"),
        ev(
            5.5,
            "",
            "link0-a",
            "LINK",
            "MODIFY",
            "LIMIT=30",
            "link0-a set limit_ 30",
        ),
        ev(
            6.0,
            "",
            "link0-a",
            "LINK",
            "MODIFY",
            "QUEUE-IN-BYTES=1",
            "link0-a set queue-in-bytes_ 1",
        ),
        ev(
            6.5,
            "",
            "link0-a",
            "LINK",
            "MODIFY",
            "MAXTHRESH=20",
            "link0-a set maxthresh_ 20",
        ),
        ev(
            7.0,
            "",
            "link0-b",
            "LINK",
            "MODIFY",
            "THRESH=7",
            "link0-b set thresh_ 7",
        ),
        ev(
            7.5,
            "",
            "link0-b",
            "LINK",
            "MODIFY",
            "LINTERM=12",
            "link0-b set linterm_ 12",
        ),
        ev(
            8.0,
            "",
            "link0-b",
            "LINK",
            "MODIFY",
            "Q_WEIGHT=0.004",
            "link0-b set q_weight_ 0.004",
        ),
        ev(
            8.5,
            "a",
            "prog0",
            "PROGRAM",
            "START",
            "COMMAND=echo hello; sleep 1",
            "prog0 start",
        ),
        ev(9.0, "a", "prog0", "PROGRAM", "STOP", "", "prog0 stop"),
        ev(
            9.5,
            "n-2",
            "prog1",
            "PROGRAM",
            "START",
            "COMMAND=/bin/ls -l /tmp",
            "prog1 start",
        ),
        ev(
            10.0,
            "n-2",
            "prog1",
            "PROGRAM",
            "KILL",
            "SIGNAL=SIGHUP",
            "prog1 kill SIGHUP",
        ),
        ev(10.5, "a", "cbr0", "TRAFGEN", "START", start0, "cbr0 start"),
        ev(
            11.0,
            "n-0",
            "cbr1",
            "TRAFGEN",
            "START",
            start1,
            "cbr1 start",
        ),
        ev(
            11.5,
            "a",
            "cbr0",
            "TRAFGEN",
            "MODIFY",
            "PACKETSIZE=512",
            "cbr0 set packetSize_ 512",
        ),
        ev(
            12.0,
            "a",
            "cbr0",
            "TRAFGEN",
            "MODIFY",
            "RATE=2000",
            "cbr0 set rate_ 2Mbps",
        ),
        ev(
            12.5,
            "a",
            "cbr0",
            "TRAFGEN",
            "MODIFY",
            "INTERVAL=0.5",
            "cbr0 set interval_ 0.5",
        ),
        ev(
            13.0,
            "a",
            "cbr0",
            "TRAFGEN",
            "MODIFY",
            "IPTOS=8",
            "cbr0 set iptos_ 8",
        ),
        ev(13.5, "a", "cbr0", "TRAFGEN", "STOP", "", "cbr0 stop"),
        ev(14.0, "a", "cbr0", "TRAFGEN", "RESET", "", "cbr0 reset"),
        ev(14.5, "", "link0", "LINK", "DOWN", "", "link0 down"),
        ev(14.5, "", "lan0", "LINK", "DOWN", "", "lan0 down"),
        ev(15.0, "a", "cbr0", "TRAFGEN", "STOP", "", "cbr0 stop"),
        ev(15.0, "n-0", "cbr1", "TRAFGEN", "STOP", "", "cbr1 stop"),
        ev(15.0, "", "link0", "LINK", "UP", "", "link0 up"),
        ev(
            15.5,
            "",
            "link0-a",
            "LINK",
            "MODIFY",
            "LIMIT=40",
            "link0-a set limit_ 40",
        ),
        ev(
            15.5,
            "",
            "link0-b",
            "LINK",
            "MODIFY",
            "LIMIT=40",
            "link0-b set limit_ 40",
        ),
        ev(
            16.0,
            "a",
            "prog0",
            "PROGRAM",
            "START",
            "COMMAND=echo hello; sleep 1",
            "prog0 start",
        ),
        ev(
            16.0,
            "n-2",
            "prog1",
            "PROGRAM",
            "START",
            "COMMAND=/bin/ls -l /tmp",
            "prog1 start",
        ),
        ev(
            17.0,
            "n-0",
            "cbr1",
            "TRAFGEN",
            "MODIFY",
            "PACKETSIZE=170",
            "cbr1 set packetSize_ 170",
        ),
        ev(
            18.0,
            "n-0",
            "cbr1",
            "TRAFGEN",
            "MODIFY",
            "PACKETSIZE=180",
            "cbr1 set packetSize_ 180",
        ),
        ev(
            19.0,
            "n-0",
            "cbr1",
            "TRAFGEN",
            "MODIFY",
            "PACKETSIZE=190",
            "cbr1 set packetSize_ 190",
        ),
        ev(0.5, "", "lan0", "LINK", "UP", "", "lan0 up"),
        ev(20.0, "*", "ns", "SIMULATOR", "SWAPOUT", "", "ns swapout"),
        ev(21.0, "*", "ns", "SIMULATOR", "HALT", "", "ns halt"),
        ev(22.0, "*", "ns", "SIMULATOR", "HALT", "", "ns terminate"),
    ];
    assert_eq!(exp.events.len(), expected.len());
    for (i, (got, want)) in exp.events.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "event #{i}");
    }
}

#[test]
fn demo_tells_its_story() {
    let exp = example("demo.ns");
    assert_eq!(exp.nodes.len(), 4);
    assert!(exp.nodes.iter().all(|n| n.routertype == "static"));
    // access link client-router and a 3-member LAN.
    assert_eq!(exp.lan_members.len(), 5);
    let access_router = exp
        .lan_members
        .iter()
        .find(|m| m.vname == "access" && m.vnode == "router")
        .expect("router side of the access link");
    assert_eq!(access_router.q_limit, 100);
    assert!(access_router.mustdelay);
    assert!(
        exp.lan_members
            .iter()
            .filter(|m| m.vname == "serverlan")
            .all(|m| !m.mustdelay)
    );
    let summary: Vec<(f64, &str, &str, &str)> = exp
        .events
        .iter()
        .map(|e| {
            (
                e.time,
                e.vname.as_str(),
                e.eventtype.as_str(),
                e.arguments.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                1.0,
                "fetch",
                "START",
                "COMMAND=/bin/sh -c \"while sleep 1; do date +%T; done\""
            ),
            (1.0, "recorder", "START", "COMMAND=vmstat 1"),
            (
                3.0,
                "cbr0",
                "START",
                "PACKETSIZE=1000 RATE=20000 INTERVAL=-1 IPTOS=-1"
            ),
            (6.0, "access", "MODIFY", "DELAY=50ms"),
            (8.0, "access", "MODIFY", "PLR=0.02"),
            (10.0, "cbr0", "MODIFY", "RATE=40000"),
            (12.0, "access", "DOWN", ""),
            (14.0, "access", "UP", ""),
            (14.0, "access", "MODIFY", "PLR=0"),
            (14.0, "access", "MODIFY", "DELAY=10ms"),
            (16.0, "cbr0", "STOP", ""),
            (18.0, "recorder", "KILL", "SIGNAL=INT"),
            (20.0, "fetch", "STOP", ""),
        ]
    );
    assert_eq!(exp.groups.len(), 2);
    assert_eq!(exp.trafgens.len(), 2);
    assert_eq!(exp.trafgens[0].vnode, "server2");
    assert_eq!(exp.trafgens[0].target_vnode, "client");
}
