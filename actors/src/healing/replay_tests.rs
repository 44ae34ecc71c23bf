use super::*;
use crate::healing::WindowKind;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn trace(body: &str) -> Trace {
    Trace::parse(&format!("expect: no_wipe\nold_rule: no_wipe\n{body}")).unwrap()
}

fn new(body: &str) -> Outcome {
    replay(
        &trace(body),
        HealingPolicy::default(),
        &DaemonModel::default(),
    )
}

fn old(body: &str) -> Outcome {
    replay(
        &trace(body),
        HealingPolicy::old_rule(),
        &DaemonModel::default(),
    )
}

fn trip_times(outcome: &Outcome) -> Vec<(Duration, Step, WindowKind)> {
    outcome
        .trips
        .iter()
        .map(|(at, t)| (*at, t.step, t.window))
        .collect()
}

#[test]
fn messages_sent_while_offline_arrive_at_the_next_connect() {
    // Down from 10 s for 20 s: attempts at 11, 13, 17, 25 (1, 2, 4, 8 s) fail; 41 succeeds.
    let outcome = old(
        "+10s network_drop down=20s\n+5s burst 3 over 1s undecryptable sender=573001112233\n+1m",
    );
    assert_eq!(outcome.first_error_at, Some(secs(41.0)));
    assert_eq!(outcome.wiped_at, Some(secs(41.0)));
    assert_eq!(outcome.errors, 3);
}

#[test]
fn every_skips_while_disconnected() {
    // Down until 1.5 s: the retry at 1 s fails, the one at 3 s succeeds, so the
    // occurrences at 0, 1 and 2 s find no connection and only 3 s counts.
    let outcome = new("network_drop down=1500ms\nevery 1s for 4s stream_error code=500\n+10s");
    assert_eq!(outcome.first_error_at, Some(secs(3.0)));
    assert_eq!(outcome.errors, 1);
}

#[test]
fn a_restart_is_done_when_the_link_is_back_and_a_repeat_then_wipes() {
    let outcome = new("every 1s for 1m undecryptable senders=5\n+2m");
    // Trip at 2 s; up again at 4 s (restart_done); 4, 5, 6 s trip within confirm.
    assert_eq!(
        trip_times(&outcome),
        vec![
            (secs(2.0), Step::Restart, WindowKind::BadMac),
            (secs(6.0), Step::Wipe, WindowKind::BadMac)
        ]
    );
    assert_eq!(outcome.restarts, 1);
    assert_eq!(outcome.time_to_wipe(), Some(secs(6.0)));
}

#[test]
fn until_restart_stops_a_line_at_the_heal_restart() {
    let outcome = new("every 1s for 1m undecryptable senders=5 until restart\n+2m");
    assert_eq!(
        trip_times(&outcome),
        vec![(secs(2.0), Step::Restart, WindowKind::BadMac)]
    );
    assert_eq!(outcome.errors, 3);
    assert_eq!(outcome.wiped_at, None);
}

#[test]
fn messages_behind_a_trip_in_a_backlog_are_gone_with_the_old_connection() {
    let outcome = new("network_drop down=5s\nburst 10 over 1s undecryptable senders=10\n+1m");
    // Retries at 1, 3 fail, 7 succeeds: 10 waiting messages, the third trips a restart.
    assert_eq!(
        trip_times(&outcome),
        vec![(secs(7.0), Step::Restart, WindowKind::BadMac)]
    );
    assert_eq!(outcome.errors, 3);
}

#[test]
fn a_restart_that_finds_the_network_down_backs_off_from_the_first_delay() {
    // Trip at 2 s: a restart, due up at 4 s; the network is down from 3 s to 5 s, so
    // that connect fails. Like the actor (a restart is not a backoff), the next try is
    // the first backoff, 1 s later: up at 5 s, where the three messages that waited
    // arrive and trip again within the confirmation time.
    let outcome = new("every 1s for 3s undecryptable senders=5\n\
         @3s network_drop down=2s\n\
         @4100ms burst 3 over 300ms undecryptable senders=3\n+1m");
    assert_eq!(
        trip_times(&outcome),
        vec![
            (secs(2.0), Step::Restart, WindowKind::BadMac),
            (secs(5.0), Step::Wipe, WindowKind::BadMac)
        ]
    );
}

#[test]
fn a_wipe_ends_the_replay() {
    let outcome = old("every 1s for 1h undecryptable senders=5\n+1h");
    assert_eq!(outcome.wiped_at, Some(secs(2.0)));
    assert_eq!(outcome.errors, 3);
}

#[test]
fn not_counted_signals_never_trip() {
    let body = "every 10s for 10m network_drop\n@1s every 10s for 10m server_busy\n@2s every 10s for 10m restart_required\n+1h";
    for outcome in [new(body), old(body)] {
        assert_eq!((outcome.errors, outcome.trips.len()), (0, 0));
    }
}

#[test]
fn verdicts_and_labels() {
    let corrupt = Trace::parse("expect: wipe within 10s\nold_rule: wipe\nrestarts: 1\nevery 1s for 1m undecryptable senders=5\n").unwrap();
    let new = replay(&corrupt, HealingPolicy::default(), &DaemonModel::default());
    let old = replay(&corrupt, HealingPolicy::old_rule(), &DaemonModel::default());
    assert_eq!(
        verdict(&corrupt, &new),
        Verdict {
            false_wipe: false,
            missed_heal: false
        }
    );
    assert_eq!(broken_labels(&corrupt, &new, &old), Vec::<String>::new());
    // The same outcome against a tighter bound, another restart count, another old rule.
    let strict = Trace::parse("expect: wipe within 5s\nold_rule: no_wipe\nrestarts: 0\nevery 1s for 1m undecryptable senders=5\n").unwrap();
    assert_eq!(
        verdict(&strict, &new),
        Verdict {
            false_wipe: false,
            missed_heal: true
        }
    );
    assert_eq!(broken_labels(&strict, &new, &old).len(), 3);
    let benign =
        Trace::parse("expect: no_wipe\nold_rule: wipe\nevery 1s for 1m undecryptable senders=5\n")
            .unwrap();
    assert_eq!(
        verdict(&benign, &new),
        Verdict {
            false_wipe: true,
            missed_heal: false
        }
    );
}
