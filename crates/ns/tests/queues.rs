//! Queue settings and queue types: what an NS file says about a link's
//! queues reaches the right `virt_lans` rows, bad values stop the file at
//! the line that wrote them, and the rows survive a trip through the store.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::PathBuf;

use tbevents_ns::{NsError, NsErrorKind, VirtualExperiment, parse_file, parse_str};
use tbevents_store::model::VirtLanMember;
use tbevents_store::{ExperimentId, ExperimentStore, NewExperiment, SqliteStore};

/// Lines 1-3: simulator and nodes n0, n1; `body` starts on line 4.
fn file(body: &str) -> String {
    format!("set ns [new Simulator]\nset n0 [$ns node]\nset n1 [$ns node]\n{body}\n$ns run\n")
}

fn ok(body: &str) -> VirtualExperiment {
    parse_str(&file(body), "exp.ns").unwrap_or_else(|e| panic!("should parse: {e}"))
}

fn err(body: &str) -> NsError {
    match parse_str(&file(body), "exp.ns") {
        Ok(_) => panic!("should fail:\n{body}"),
        Err(e) => e,
    }
}

fn row<'a>(exp: &'a VirtualExperiment, vname: &str, vnode: &str) -> &'a VirtLanMember {
    exp.lan_members
        .iter()
        .find(|m| m.vname == vname && m.vnode == vnode)
        .unwrap_or_else(|| panic!("no row {vname} {vnode}"))
}

/// The queue columns of a row, to compare queues without the shaping.
fn queue_of(m: &VirtLanMember) -> VirtLanMember {
    VirtLanMember {
        q_limit: m.q_limit,
        q_maxthresh: m.q_maxthresh,
        q_minthresh: m.q_minthresh,
        q_weight: m.q_weight,
        q_linterm: m.q_linterm,
        q_qinbytes: m.q_qinbytes,
        q_bytes: m.q_bytes,
        q_meanpsize: m.q_meanpsize,
        q_wait: m.q_wait,
        q_setbit: m.q_setbit,
        q_droptail: m.q_droptail,
        q_red: m.q_red,
        q_gentle: m.q_gentle,
        ..VirtLanMember::default()
    }
}

#[test]
fn queue_types_set_emulabs_flags_and_red_needs_shaping() {
    let exp = ok("set plain [$ns duplex-link $n0 $n1 10Mb 0ms DropTail]\n\
         set red [$ns duplex-link $n0 $n1 10Mb 0ms RED]\n\
         set gred [$ns duplex-link $n0 $n1 10Mb 0ms GRED]");
    for vnode in ["n0", "n1"] {
        let plain = row(&exp, "plain", vnode);
        assert_eq!(queue_of(plain), VirtLanMember::default());
        assert!(!plain.mustdelay);

        let red = row(&exp, "red", vnode);
        let expected_red = VirtLanMember {
            q_red: true,
            ..VirtLanMember::default()
        };
        assert_eq!(queue_of(red), expected_red);
        assert!(red.q_droptail, "RED overflows by dropping the tail");
        assert!(red.mustdelay, "a RED queue needs a delay node");

        let gred = row(&exp, "gred", vnode);
        let expected_gred = VirtLanMember {
            q_red: true,
            q_gentle: true,
            ..VirtLanMember::default()
        };
        assert_eq!(queue_of(gred), expected_gred);
        assert!(gred.mustdelay);
    }
}

#[test]
fn every_setting_lands_in_the_row_of_the_node_traffic_leaves_from() {
    let exp = ok("set l [$ns duplex-link $n0 $n1 10Mb 0ms DropTail]\n\
         set q [[$ns link $n1 $n0] queue]\n\
         $q set limit_ 80\n$q set maxthresh_ 40\n$q set thresh_ 10\n\
         $q set q_weight_ 0.01\n$q set linterm_ 5\n$q set queue-in-bytes_ true\n\
         $q set bytes_ 1\n$q set mean_pktsize_ 1200\n$q set wait_ 0\n\
         $q set setbit_ true\n$q set drop-tail_ false\n$q set red_ 1\n$q set gentle_ 1");
    let expected = VirtLanMember {
        q_limit: 80,
        q_maxthresh: 40,
        q_minthresh: 10,
        q_weight: 0.01,
        q_linterm: 5,
        q_qinbytes: true,
        q_bytes: true,
        q_meanpsize: 1200,
        q_wait: false,
        q_setbit: true,
        q_droptail: false,
        q_red: true,
        q_gentle: true,
        ..VirtLanMember::default()
    };
    assert_eq!(queue_of(row(&exp, "l", "n1")), expected);
    // The other direction keeps Emulab's defaults.
    assert_eq!(queue_of(row(&exp, "l", "n0")), VirtLanMember::default());
    // red_ on a DropTail link makes it RED, so the link must be shaped.
    assert!(exp.lan_members.iter().all(|m| m.mustdelay));
}

#[test]
fn red_can_be_turned_off_and_the_last_setting_wins() {
    let exp = ok("set l [$ns duplex-link $n0 $n1 10Mb 0ms RED]\n\
         set q [[$ns link $n0 $n1] queue]\n$q set red_ 0\n$q set limit_ 10\n$q set limit_ 12");
    let n0 = row(&exp, "l", "n0");
    assert!(!n0.q_red);
    assert_eq!(n0.q_limit, 12);
    assert!(row(&exp, "l", "n1").q_red);
    // One direction is still RED: the link is shaped.
    assert!(n0.mustdelay);

    let exp = ok("set l [$ns duplex-link $n0 $n1 10Mb 0ms RED]\n\
         set a [[$ns link $n0 $n1] queue]\nset b [[$ns link $n1 $n0] queue]\n\
         $a set red_ false\n$b set red_ false");
    assert!(exp.lan_members.iter().all(|m| !m.q_red && !m.mustdelay));
}

#[test]
fn make_lan_keeps_the_queue_class_and_ignores_ethernet_descriptions() {
    let exp = ok("set n2 [$ns node]\n\
         set red [$ns make-lan \"$n0 $n1 $n2\" 100Mb 0ms LL Queue/RED]\n\
         set plain [$ns make-lan \"$n0 $n1\" 100Mb 0ms LL Queue/DropTail Mac/802_3 Channel Phy/WiredPhy]");
    let red: Vec<&VirtLanMember> = exp
        .lan_members
        .iter()
        .filter(|m| m.vname == "red")
        .collect();
    assert_eq!(red.len(), 3);
    assert!(red.iter().all(|m| m.q_red && !m.q_gentle && m.mustdelay));
    assert!(
        exp.lan_members
            .iter()
            .filter(|m| m.vname == "plain")
            .all(|m| queue_of(m) == VirtLanMember::default() && !m.mustdelay)
    );
}

#[test]
fn make_lan_refuses_what_it_cannot_honour() {
    for (extra, what) in [
        ("Queue/RED", "link-layer type"),
        ("LL Queue/SFQ", "queue type"),
        ("LL Queue/DropTail Mac/802_11", "MAC type"),
        (
            "LL Queue/DropTail Mac Channel/WirelessChannel",
            "channel type",
        ),
        (
            "LL Queue/DropTail Mac Channel Phy/WirelessPhy",
            "physical layer",
        ),
    ] {
        let e = err(&format!(
            "\nset lan [$ns make-lan \"$n0 $n1\" 100Mb 0ms {extra}]"
        ));
        assert_eq!(e.line(), 5, "{extra}");
        assert!(
            matches!(e.kind(), NsErrorKind::InvalidValue { what: w, .. } if w.contains(what)),
            "{extra}: {e}"
        );
        assert!(
            e.to_string().starts_with("exp.ns:5: invalid make-lan"),
            "{e}"
        );
    }
}

#[test]
fn bad_queue_values_stop_at_their_line() {
    for (setting, what) in [
        ("limit_ 0", "limit_"),
        ("limit_ 2147483648", "limit_"),
        ("maxthresh_ 7.5", "maxthresh_"),
        ("thresh_ -1", "thresh_"),
        ("q_weight_ 0", "q_weight_"),
        ("q_weight_ 1.01", "q_weight_"),
        ("linterm_ 0", "linterm_"),
        ("mean_pktsize_ big", "mean_pktsize_"),
        ("wait_ yes", "wait_"),
        ("gentle_ 2", "gentle_"),
    ] {
        let e = err(&format!(
            "set l [$ns duplex-link $n0 $n1 10Mb 0ms RED]\nset q [[$ns link $n0 $n1] queue]\n\
             $q set limit_ 20\n$q set {setting}"
        ));
        assert_eq!(e.line(), 7, "{setting}: {e}");
        assert!(
            matches!(e.kind(), NsErrorKind::InvalidValue { what: w, .. } if w == &format!("queue {what}")),
            "{setting}: {e}"
        );
    }
    let e = err(
        "set l [$ns duplex-link $n0 $n1 10Mb 0ms RED]\nset q [[$ns link $n0 $n1] queue]\n\
         $q set adaptive_ 1",
    );
    assert_eq!(e.line(), 6);
    assert!(matches!(e.kind(), NsErrorKind::Unsupported(_)), "{e}");
    let e = err("set l [$ns duplex-link $n0 $n1 10Mb 0ms FQ]");
    assert_eq!(e.line(), 4);
    assert!(e.to_string().contains("use DropTail, RED or GRED"), "{e}");
}

#[test]
fn red_thresholds_must_be_ordered_once_the_file_has_run() {
    // Setting thresh_ before raising maxthresh_ is fine: only the end counts.
    let exp = ok(
        "set l [$ns duplex-link $n0 $n1 10Mb 0ms RED]\nset q [[$ns link $n0 $n1] queue]\n\
         $q set thresh_ 20\n$q set maxthresh_ 30",
    );
    assert_eq!(row(&exp, "l", "n0").q_minthresh, 20);

    let e = err(
        "set l [$ns duplex-link $n0 $n1 10Mb 0ms GRED]\nset q [[$ns link $n1 $n0] queue]\n\
         $q set maxthresh_ 30\n$q set thresh_ 30\n$q set limit_ 100",
    );
    assert_eq!(e.line(), 8, "the last setting of that queue: {e}");
    assert_eq!(
        e.to_string(),
        "exp.ns:8: queue 'l-n1' is RED but its thresh_ (30) is not below its maxthresh_ (30); set thresh_ lower than maxthresh_"
    );
    // On a DropTail queue the RED parameters are unused and not checked.
    ok(
        "set l [$ns duplex-link $n0 $n1 10Mb 0ms DropTail]\nset q [[$ns link $n0 $n1] queue]\n\
        $q set thresh_ 50",
    );
}

#[test]
fn queue_events_are_checked_like_settings() {
    let exp = ok(
        "set l [$ns duplex-link $n0 $n1 10Mb 0ms DropTail]\nset q [[$ns link $n0 $n1] queue]\n\
         $ns at 1 \"$q set limit_ 30; $q set q_weight_ 0.5; $q set queue-in-bytes_ 0\"",
    );
    let args: Vec<&str> = exp.events.iter().map(|e| e.arguments.as_str()).collect();
    assert_eq!(args, ["LIMIT=30", "Q_WEIGHT=0.5", "QUEUE-IN-BYTES=0"]);
    // An event changes the link at run time, not the stored queue.
    assert_eq!(row(&exp, "l", "n0").q_limit, 50);

    for (event, fragment) in [
        ("limit_ 0", "whole number from 1"),
        ("linterm_ 0.5", "whole number from 1"),
        ("q_weight_ 3", "more than 0 and at most 1"),
        ("queue-in-bytes_ true", "in an event write 0 or 1"),
        ("wait_ 1", "in an event"),
    ] {
        let e = err(&format!(
            "set l [$ns duplex-link $n0 $n1 10Mb 0ms DropTail]\nset q [[$ns link $n0 $n1] queue]\n\
             $ns at 1 \"$q set {event}\""
        ));
        assert_eq!(e.line(), 6, "{event}");
        assert!(e.to_string().contains(fragment), "{event}: {e}");
    }
}

/// Loads `exp` into a fresh in-memory store and reads it back.
fn round_trip(exp: &VirtualExperiment) -> VirtualExperiment {
    let store = SqliteStore::open_in_memory().expect("store");
    let id = ExperimentId::new("testbed", "queues");
    store
        .create_experiment(&NewExperiment::new(
            id.clone(),
            "testbed",
            "alice",
            "/proj/testbed/exp/queues",
        ))
        .expect("create");
    store.load_virtual(&id, exp).expect("load");
    store.virtual_experiment(&id).expect("read back")
}

#[test]
fn queue_settings_survive_the_store_round_trip() {
    let exp = ok(
        "set l [$ns duplex-link $n0 $n1 10Mb 0ms GRED]\nset q [[$ns link $n1 $n0] queue]\n\
         $q set limit_ 64000\n$q set queue-in-bytes_ 1\n$q set bytes_ 1\n\
         $q set maxthresh_ 32000\n$q set thresh_ 8000\n$q set q_weight_ 0.125\n\
         $q set linterm_ 3\n$q set mean_pktsize_ 1400\n$q set wait_ 0\n$q set setbit_ 1\n\
         $q set drop-tail_ 0\n\
         set lan [$ns make-lan \"$n0 $n1\" 100Mb 0ms LL Queue/RED]",
    );
    let n1 = row(&exp, "l", "n1");
    assert_eq!(
        (n1.q_limit, n1.q_minthresh, n1.q_weight, n1.q_gentle),
        (64_000, 8000, 0.125, true)
    );
    assert_eq!(round_trip(&exp), exp);
}

#[test]
fn every_form_example_survives_the_store_round_trip() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/every-form.ns");
    let exp = parse_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(exp.lan_members.iter().any(|m| m.q_gentle && m.q_setbit));
    assert_eq!(round_trip(&exp), exp);
}
