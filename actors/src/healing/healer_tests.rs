use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;
use crate::WindowSpec;

/// One input of a script, at a time in milliseconds.
#[derive(Clone, Copy, Debug)]
enum In {
    /// An undecryptable message from sender n.
    Bad(u32),
    Stream,
    /// The caller finished the restart it was told to make.
    Done,
    /// The caller wiped the session.
    Wiped,
}

use In::{Bad, Done, Stream, Wiped};
use Step::{Restart, Wipe};
use WindowKind::{BadMac, Stream as StreamWindow};

const S: u64 = 1_000;

fn sender(n: u32) -> String {
    format!("57300{n:07}@s.whatsapp.net")
}

/// Inputs with their times in ms.
type Script = Vec<(u64, In)>;
/// Trips with their times in ms.
type Trips = Vec<(u64, Step, WindowKind)>;

/// Runs a script; returns every trip with its time in ms.
fn run(policy: HealingPolicy, script: &[(u64, In)]) -> Trips {
    let t0 = Instant::now();
    let mut healer = Healer::new(policy);
    let mut trips = Vec::new();
    for &(ms, input) in script {
        let now = t0 + Duration::from_millis(ms);
        let trip = match input {
            Bad(n) => healer.on_decrypt_error(now, &sender(n)),
            Stream => healer.on_stream_error(now),
            Done => {
                healer.restart_done(now);
                None
            }
            Wiped => {
                healer.wiped();
                None
            }
        };
        if let Some(trip) = trip {
            trips.push((ms, trip.step, trip.window));
        }
    }
    trips
}

/// Three Bad MACs from two senders, ending at `at_s` seconds.
fn burst(at_s: u64) -> [(u64, In); 3] {
    [
        (at_s * S - 2 * S, Bad(1)),
        (at_s * S - S, Bad(2)),
        (at_s * S, Bad(1)),
    ]
}

fn script(parts: &[&[(u64, In)]]) -> Vec<(u64, In)> {
    parts.concat()
}

/// Restart cycles whose trips come `gap_s` apart (each restart done 5 s after its
/// trip), starting at `first_s`.
fn restart_cycles(first_s: u64, gap_s: u64, n: u64) -> Vec<(u64, In)> {
    (0..n)
        .flat_map(|i| {
            let at = first_s + i * gap_s;
            let mut cycle = burst(at).to_vec();
            cycle.push(((at + 5) * S, Done));
            cycle
        })
        .collect()
}

#[test]
fn each_rule_as_a_table() {
    let new = HealingPolicy::default();
    let no_restart_first = HealingPolicy {
        restart_first: false,
        ..new
    };
    let no_restarts = HealingPolicy {
        restarts: WindowSpec::new(0, new.restarts.length),
        ..new
    };
    let one_restart = HealingPolicy {
        restarts: WindowSpec::new(1, new.restarts.length),
        ..new
    };
    let any_sender = HealingPolicy {
        distinct_senders: 1,
        ..new
    };
    let day = 24 * 3600;
    #[rustfmt::skip]
    let cases: Vec<(&str, HealingPolicy, Script, Trips)> = vec![
        ("one sender, ten messages in ten seconds, never trips", new,
            (0..10).map(|i| (i * S, Bad(1))).collect(), vec![]),
        ("distinct_senders = 1 is the old rule: one sender trips", any_sender,
            vec![(0, Bad(1)), (S, Bad(1)), (2 * S, Bad(1))], vec![(2 * S, Restart, BadMac)]),
        ("three from two senders: the first trip restarts", new,
            burst(2).to_vec(), vec![(2 * S, Restart, BadMac)]),
        ("the restart clears the window: two new events do not trip, the third wipes", new,
            script(&[&burst(2), &[(5 * S, Done), (6 * S, Bad(1)), (7 * S, Bad(2))]]),
            vec![(2 * S, Restart, BadMac)]),
        ("a trip within confirm of the restart wipes", new,
            script(&[&burst(2), &[(5 * S, Done)], &burst(100)]),
            vec![(2 * S, Restart, BadMac), (100 * S, Wipe, BadMac)]),
        ("a trip before the restart is done wipes", new,
            script(&[&burst(2), &burst(10)]),
            vec![(2 * S, Restart, BadMac), (10 * S, Wipe, BadMac)]),
        ("1 ms before confirm runs out still wipes", new,
            script(&[&burst(2), &[(10 * S, Done)], &[(908 * S, Bad(1)), (909 * S, Bad(2)), (910 * S - 1, Bad(1))]]),
            vec![(2 * S, Restart, BadMac), (910 * S - 1, Wipe, BadMac)]),
        ("exactly confirm after the restart, a trip restarts again", new,
            script(&[&burst(2), &[(10 * S, Done)], &burst(910)]),
            vec![(2 * S, Restart, BadMac), (910 * S, Restart, BadMac)]),
        ("restart intensity: a fourth trip within the period wipes", new,
            restart_cycles(10, 1000, 4),
            vec![(10 * S, Restart, BadMac), (1010 * S, Restart, BadMac), (2010 * S, Restart, BadMac), (3010 * S, Wipe, BadMac)]),
        ("restart intensity: a restart leaves the period at its edge", new,
            script(&[&restart_cycles(10, 1000, 3), &burst(15 + day)]),
            vec![(10 * S, Restart, BadMac), (1010 * S, Restart, BadMac), (2010 * S, Restart, BadMac), ((15 + day) * S, Restart, BadMac)]),
        ("restart intensity: 1 ms before the edge it is still inside", new,
            script(&[&restart_cycles(10, 1000, 3), &[((13 + day) * S, Bad(1)), ((14 + day) * S, Bad(2)), ((15 + day) * S - 1, Bad(1))]]),
            vec![(10 * S, Restart, BadMac), (1010 * S, Restart, BadMac), (2010 * S, Restart, BadMac), ((15 + day) * S - 1, Wipe, BadMac)]),
        ("restart intensity limit 1: the second trip wipes even after confirm", one_restart,
            restart_cycles(10, 1000, 2),
            vec![(10 * S, Restart, BadMac), (1010 * S, Wipe, BadMac)]),
        ("restart intensity limit 0: never restarts", no_restarts,
            burst(2).to_vec(), vec![(2 * S, Wipe, BadMac)]),
        ("restart_first off: the first trip wipes", no_restart_first,
            burst(2).to_vec(), vec![(2 * S, Wipe, BadMac)]),
        ("after a wipe is handed out, events are ignored until wiped()", no_restart_first,
            script(&[&burst(2), &burst(5), &[(6 * S, Stream), (7 * S, Stream), (8 * S, Wiped)], &burst(20)]),
            vec![(2 * S, Wipe, BadMac), (20 * S, Wipe, BadMac)]),
        ("wiped() forgets the restart history", new,
            script(&[&restart_cycles(10, 1000, 3), &[(2100 * S, Wiped)], &burst(2200)]),
            vec![(10 * S, Restart, BadMac), (1010 * S, Restart, BadMac), (2010 * S, Restart, BadMac), (2200 * S, Restart, BadMac)]),
        ("wiped() during a confirmation: the next trip restarts", new,
            script(&[&burst(2), &[(5 * S, Done), (6 * S, Wiped)], &burst(10)]),
            vec![(2 * S, Restart, BadMac), (10 * S, Restart, BadMac)]),
        ("stream: two within 60 s restart, two more within confirm wipe", new,
            vec![(0, Stream), (59 * S, Stream), (61 * S, Done), (100 * S, Stream), (150 * S, Stream)],
            vec![(59 * S, Restart, StreamWindow), (150 * S, Wipe, StreamWindow)]),
        ("stream: errors exactly 60 s apart never trip", new,
            (0..10).map(|i| (i * 60 * S, Stream)).collect(), vec![]),
        ("a Bad MAC trip clears the stream window too", new,
            script(&[&[(0, Stream)], &burst(3), &[(4 * S, Done), (10 * S, Stream)]]),
            vec![(3 * S, Restart, BadMac)]),
        ("a stream trip then Bad MACs within confirm wipe", new,
            script(&[&[(0, Stream), (S, Stream), (2 * S, Done)], &burst(30)]),
            vec![(S, Restart, StreamWindow), (30 * S, Wipe, BadMac)]),
        ("restart_done outside a restart does nothing", one_restart,
            script(&[&[(0, Done), (S, Done)], &burst(10)]),
            vec![(10 * S, Restart, BadMac)]),
    ];
    for (name, policy, script, expected) in cases {
        assert_eq!(run(policy, &script), expected, "{name}");
    }
}

#[test]
fn a_trip_reports_every_event_and_sender_inside_the_window() {
    let t0 = Instant::now();
    let mut healer = Healer::new(HealingPolicy::default());
    for i in 0..10 {
        assert_eq!(
            healer.on_decrypt_error(t0 + Duration::from_secs(i), &sender(1)),
            None
        );
    }
    let trip = healer.on_decrypt_error(t0 + Duration::from_secs(10), &sender(2));
    assert_eq!(
        trip,
        Some(Trip {
            step: Restart,
            window: BadMac,
            events: 11,
            senders: 2
        })
    );
    let t = t0 + Duration::from_secs(20);
    assert_eq!(healer.on_stream_error(t), None);
    let trip = healer.on_stream_error(t).unwrap();
    assert_eq!((trip.step, trip.events, trip.senders), (Wipe, 2, 0));
}

#[test]
fn a_window_is_read_back_from_its_reason_word() {
    for kind in [BadMac, StreamWindow] {
        assert_eq!(WindowKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(WindowKind::parse("store_corrupt"), None);
}

#[test]
fn the_phase_follows_the_state_machine() {
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut healer = Healer::new(HealingPolicy::default());
    assert_eq!(healer.phase(at(0)), Phase::Watching);
    for (s, n) in [(0, 1), (1, 2), (2, 1)] {
        healer.on_decrypt_error(at(s), &sender(n));
    }
    assert_eq!(healer.phase(at(2)), Phase::Restarting);
    healer.restart_done(at(5));
    assert_eq!(
        healer.phase(at(904)),
        Phase::Confirming {
            restarted_at: at(5)
        }
    );
    assert_eq!(healer.phase(at(905)), Phase::Watching);
    healer.on_stream_error(at(10));
    healer.on_stream_error(at(11));
    assert_eq!(healer.phase(at(11)), Phase::Wiping);
    healer.wiped();
    assert_eq!(healer.phase(at(12)), Phase::Watching);
}

#[test]
fn a_failed_wipe_watches_again_and_keeps_the_restart_history() {
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let policy = HealingPolicy {
        restarts: WindowSpec::new(1, Duration::from_secs(86_400)),
        ..HealingPolicy::default()
    };
    let mut healer = Healer::new(policy);
    healer.wipe_failed();
    assert_eq!(healer.phase(at(0)), Phase::Watching, "nothing to undo");
    for (s, n) in [(0, 1), (1, 2), (2, 1)] {
        healer.on_decrypt_error(at(s), &sender(n));
    }
    healer.restart_done(at(3));
    healer.on_stream_error(at(10));
    let trip = healer.on_stream_error(at(11)).unwrap();
    assert_eq!(trip.step, Wipe);
    healer.wipe_failed();
    assert_eq!(healer.phase(at(12)), Phase::Watching);
    // Errors count again; the one restart of the day is spent, so the next trip wipes.
    assert!(healer.on_stream_error(at(2000)).is_none());
    let trip = healer
        .on_stream_error(at(2001))
        .expect("errors count again");
    assert_eq!(trip.step, Wipe);
}

// ---------------------------------------------------------------- against a naive model

/// The rules restated from scratch over full histories, recomputed at every input.
struct Naive {
    policy: HealingPolicy,
    /// Events since the windows were last cleared.
    bad: Vec<(u64, u32)>,
    stream: Vec<u64>,
    /// Restarts done since the last wipe.
    restarts: Vec<u64>,
    restart_pending: bool,
    wipe_pending: bool,
}

impl Naive {
    fn input(&mut self, now: u64, input: In) -> Option<(Step, WindowKind, usize, usize)> {
        let p = self.policy;
        let inside = |t: u64, len: Duration| (now - t) < len.as_millis() as u64;
        let tripped = match input {
            Bad(n) if !self.wipe_pending => {
                self.bad.push((now, n));
                let within: Vec<_> = self
                    .bad
                    .iter()
                    .filter(|(t, _)| inside(*t, p.bad_mac.length))
                    .collect();
                let mut senders: Vec<_> = within.iter().map(|(_, s)| *s).collect();
                senders.sort_unstable();
                senders.dedup();
                (p.bad_mac.limit > 0
                    && within.len() >= p.bad_mac.limit
                    && senders.len() >= p.distinct_senders)
                    .then_some((BadMac, within.len(), senders.len()))
            }
            Stream if !self.wipe_pending => {
                self.stream.push(now);
                let within = self
                    .stream
                    .iter()
                    .filter(|t| inside(**t, p.stream.length))
                    .count();
                (p.stream.limit > 0 && within >= p.stream.limit).then_some((
                    StreamWindow,
                    within,
                    0,
                ))
            }
            Done => {
                if self.restart_pending {
                    self.restart_pending = false;
                    self.restarts.push(now);
                }
                None
            }
            Wiped => {
                *self = Naive {
                    policy: p,
                    bad: vec![],
                    stream: vec![],
                    restarts: vec![],
                    restart_pending: false,
                    wipe_pending: false,
                };
                None
            }
            _ => None,
        };
        let (window, events, senders) = tripped?;
        let recent = self
            .restarts
            .iter()
            .filter(|t| inside(**t, p.restarts.length))
            .count();
        let last_confirming = self.restarts.last().is_some_and(|t| inside(*t, p.confirm));
        let wipe = !p.restart_first
            || self.restart_pending
            || last_confirming
            || recent >= p.restarts.limit;
        self.bad.clear();
        self.stream.clear();
        let step = if wipe { Wipe } else { Restart };
        self.restart_pending = step == Restart;
        self.wipe_pending = step == Wipe;
        Some((step, window, events, senders))
    }
}

fn any_policy() -> impl Strategy<Value = HealingPolicy> {
    (
        (1usize..5, 1usize..4, 1u64..40_000),
        (1usize..4, 1u64..60_000),
        any::<bool>(),
        0u64..100_000,
        (0usize..4, 1u64..300_000),
    )
        .prop_map(
            |((bl, d, bw), (sl, sw), restart_first, confirm, (rl, rw))| HealingPolicy {
                bad_mac: WindowSpec::new(bl, Duration::from_millis(bw)),
                distinct_senders: d,
                stream: WindowSpec::new(sl, Duration::from_millis(sw)),
                restart_first,
                confirm: Duration::from_millis(confirm),
                restarts: WindowSpec::new(rl, Duration::from_millis(rw)),
            },
        )
}

fn any_input() -> impl Strategy<Value = In> {
    prop_oneof![
        6 => (0u32..4).prop_map(Bad),
        2 => Just(Stream),
        2 => Just(Done),
        1 => Just(Wiped),
    ]
}

proptest! {
    #[test]
    fn matches_a_naive_model(
        policy in any_policy(),
        inputs in proptest::collection::vec((0u64..20_000, any_input()), 1..120),
    ) {
        let t0 = Instant::now();
        let mut healer = Healer::new(policy);
        let mut naive = Naive { policy, bad: vec![], stream: vec![], restarts: vec![], restart_pending: false, wipe_pending: false };
        let mut now = 0;
        for (i, (gap, input)) in inputs.into_iter().enumerate() {
            now += gap;
            let at = t0 + Duration::from_millis(now);
            let got = match input {
                Bad(n) => healer.on_decrypt_error(at, &sender(n)),
                Stream => healer.on_stream_error(at),
                Done => { healer.restart_done(at); None }
                Wiped => { healer.wiped(); None }
            };
            let got = got.map(|t| (t.step, t.window, t.events, t.senders));
            prop_assert_eq!(got, naive.input(now, input), "input {} ({:?}) at {} ms", i, input, now);
        }
    }
}
