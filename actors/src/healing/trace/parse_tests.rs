use super::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

const LABELS: &str = "expect: no_wipe\nold_rule: wipe\n";

fn events(body: &str) -> Vec<Scheduled> {
    parse(&format!("{LABELS}{body}")).unwrap().events
}

/// The error of a body placed after the two label lines (so its first line is line 3).
fn error(body: &str) -> TraceError {
    parse(&format!("{LABELS}{body}")).unwrap_err()
}

fn at_line(line: usize, problem: Problem) -> TraceError {
    TraceError::Line { line, problem }
}

fn bad(s: &str) -> WorldEvent {
    WorldEvent::Undecryptable { sender: s.into() }
}

#[test]
fn labels_and_a_clock_that_moves_by_plus_and_at() {
    let trace = parse(
        "# a comment\n\
         expect: wipe within 20m   # trailing comment\n\
         old_rule: no_wipe\n\
         restarts: 2\n\
         \n\
         +10s undecryptable sender=573001112233\n\
         +2.5s\n\
         undecryptable sender=573001112234\n\
         @1m stream_error code=500 reason=ack\n\
         +1h\n",
    )
    .unwrap();
    assert_eq!(trace.expect, Expect::WipeWithin(Duration::from_secs(1200)));
    assert!(!trace.old_rule_wipes);
    assert_eq!(trace.restarts, Some(2));
    let got: Vec<_> = trace
        .events
        .iter()
        .map(|e| (e.at, e.event.clone(), e.delivery, e.line))
        .collect();
    assert_eq!(
        got,
        vec![
            (secs(10.0), bad("573001112233"), Delivery::Once, 6),
            (secs(12.5), bad("573001112234"), Delivery::Once, 8),
            (
                secs(60.0),
                WorldEvent::StreamError {
                    code: Some(500),
                    reason: Some("ack".into())
                },
                Delivery::Once,
                9
            ),
        ]
    );
    assert_eq!(trace.end, secs(3660.0));
}

#[test]
fn every_repeats_below_its_end_while_connected_taking_the_pool_in_turn() {
    let got: Vec<_> = events("+1s every 10s for 30s undecryptable senders=2\n")
        .into_iter()
        .map(|e| (e.at, e.event, e.delivery))
        .collect();
    let pool = |k| bad(&pool_sender(k));
    assert_eq!(
        got,
        vec![
            (secs(1.0), pool(0), Delivery::WhileConnected),
            (secs(11.0), pool(1), Delivery::WhileConnected),
            (secs(21.0), pool(0), Delivery::WhileConnected),
        ]
    );
}

#[test]
fn burst_spreads_its_events_and_keeps_the_cursor() {
    let got: Vec<_> =
        events("burst 4 over 2s undecryptable sender=573001112233\nnetwork_drop down=1m\n")
            .into_iter()
            .map(|e| (e.at, e.event, e.delivery))
            .collect();
    let one = bad("573001112233");
    assert_eq!(
        got,
        vec![
            (secs(0.0), one.clone(), Delivery::Once),
            (
                secs(0.0),
                WorldEvent::NetworkDrop { down: secs(60.0) },
                Delivery::Once
            ),
            (secs(0.5), one.clone(), Delivery::Once),
            (secs(1.0), one.clone(), Delivery::Once),
            (secs(1.5), one, Delivery::Once),
        ]
    );
}

#[test]
fn until_restart_marks_the_line_start() {
    let got = events("+5s every 1s for 2s stream_error until restart\n+3s restart_required\n");
    let at: Vec<_> = got
        .iter()
        .map(|e| (e.at, e.cured_by_restart_since))
        .collect();
    assert_eq!(
        at,
        vec![
            (secs(5.0), Some(secs(5.0))),
            (secs(6.0), Some(secs(5.0))),
            (secs(8.0), None)
        ]
    );
    // Cured by a restart at or after the line's start, up to the event itself.
    assert!(got[1].cured(&[secs(5.0)]));
    assert!(got[1].cured(&[secs(6.0)]));
    assert!(!got[1].cured(&[secs(4.9)]));
    assert!(!got[0].cured(&[secs(5.5)]));
    assert!(!got[2].cured(&[secs(7.0)]));
}

#[test]
fn defaults_of_the_other_events() {
    let got: Vec<_> =
        events("network_drop\nserver_busy\nserver_busy code=429\nrestart_required\nstream_error\n")
            .into_iter()
            .map(|e| e.event)
            .collect();
    assert_eq!(
        got,
        vec![
            WorldEvent::NetworkDrop {
                down: Duration::ZERO
            },
            WorldEvent::ServerBusy { code: 503 },
            WorldEvent::ServerBusy { code: 429 },
            WorldEvent::RestartRequired,
            WorldEvent::StreamError {
                code: None,
                reason: None
            },
        ]
    );
}

#[test]
fn every_error_names_its_line() {
    #[rustfmt::skip]
    let cases: Vec<(&str, TraceError)> = vec![
        ("+1x undecryptable sender=573001112233", at_line(3, Problem::BadDuration("1x".into()))),
        ("+1m\n@30s stream_error", at_line(4, Problem::TimeGoesBack { at: "30s".into(), cursor: "1m".into() })),
        ("bad_mac sender=573001112233", at_line(3, Problem::UnknownEvent("bad_mac".into()))),
        ("undecryptable", at_line(3, Problem::MissingSender(""))),
        ("every 1s for 1m undecryptable", at_line(3, Problem::MissingSender(" or `senders=<n>`"))),
        ("undecryptable senders=3", at_line(3, Problem::PoolInOneOff)),
        ("undecryptable sender=+57300", at_line(3, Problem::BadValue { arg: "sender", value: "+57300".into(), why: "7 to 15 digits, country code first" })),
        ("undecryptable sender=573001112233 sender=573001112233", at_line(3, Problem::DuplicateArgument("sender".into()))),
        ("stream_error sender=573001112233", at_line(3, Problem::UnknownArgument { event: "stream_error", arg: "sender=573001112233".into() })),
        ("stream_error code=ack", at_line(3, Problem::BadValue { arg: "code", value: "ack".into(), why: "a number from 0 to 65535" })),
        ("stream_error code=", at_line(3, Problem::BadValue { arg: "code", value: String::new(), why: "empty" })),
        ("network_drop down=forever", at_line(3, Problem::BadDuration("forever".into()))),
        ("every 1s undecryptable senders=2", at_line(3, Problem::Usage { keyword: "every", usage: "every <period> for <duration> <event>" })),
        ("every 0s for 1m stream_error", at_line(3, Problem::Usage { keyword: "every", usage: "every <period above 0> for <duration> <event>" })),
        ("every 1ms for 1h stream_error", at_line(3, Problem::TooManyEvents(3_600_000))),
        ("burst 0 over 1s stream_error", at_line(3, Problem::Usage { keyword: "burst", usage: "burst <count above 0> over <duration> <event>" })),
        ("burst many over 1s stream_error", at_line(3, Problem::BadCount("many".into()))),
        ("burst 3 over 1s", at_line(3, Problem::Usage { keyword: "burst", usage: "burst <count> over <duration> <event>" })),
        ("stream_error until wipe", at_line(3, Problem::Usage { keyword: "until", usage: "… until restart (at the end of the line)" })),
        ("every 1s for 1m undecryptable senders=0", at_line(3, Problem::BadValue { arg: "senders", value: "0".into(), why: "at least 1" })),
        ("stream_error\nexpect: no_wipe", at_line(4, Problem::LabelAfterEvents)),
    ];
    for (body, want) in cases {
        assert_eq!(error(body), want, "{body:?}");
    }
    // The message itself carries the line.
    assert!(
        error("\n\nbad_mac")
            .to_string()
            .starts_with("line 5: unknown event `bad_mac`")
    );
}

#[test]
fn label_errors() {
    #[rustfmt::skip]
    let cases: Vec<(&str, TraceError)> = vec![
        ("old_rule: wipe\n", TraceError::MissingLabel("expect")),
        ("expect: no_wipe\n", TraceError::MissingLabel("old_rule")),
        ("expect: maybe\n", at_line(1, Problem::BadExpect("maybe".into()))),
        ("expect: wipe within\n", at_line(1, Problem::BadExpect("wipe within".into()))),
        ("expect: wipe within soon\n", at_line(1, Problem::BadDuration("soon".into()))),
        ("expect: no_wipe\nexpect: no_wipe\n", at_line(2, Problem::DuplicateLabel("expect"))),
        ("old_rule: heal\n", at_line(1, Problem::BadOldRule("heal".into()))),
        ("restarts: one\n", at_line(1, Problem::BadCount("one".into()))),
        ("title: x\n", at_line(1, Problem::UnknownLabel("title".into()))),
    ];
    for (text, want) in cases {
        assert_eq!(parse(text).unwrap_err(), want, "{text:?}");
    }
}
