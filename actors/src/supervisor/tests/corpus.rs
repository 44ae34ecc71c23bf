//! The trace corpus (CONTRACT §11) through the real actor tree: every trace is walked
//! through a fresh supervisor, org actor and fake phone in paused time
//! ([`live::walk`]), with the healing policy and with the old rule, and judged by the
//! same rules as the model's replay ([`broken_labels`]).

use std::sync::OnceLock;

use super::*;
use crate::healing::HealingPolicy;
use crate::healing::corpus::{CORPUS, Entry, corpus};
use crate::healing::live::{self, Tree};
use crate::healing::replay::{Outcome, broken_labels, replay};
use crate::healing::trace::Trace;

/// `trace` with `policy` through a fresh rig, from a paired and connected org.
async fn through_the_tree(trace: &Trace, policy: HealingPolicy) -> Outcome {
    let rig = Rig::with(|c| *c = live::config(&c.sessions_dir.clone(), policy)).await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    let tree = Tree {
        sup: &rig.sup,
        sim: &rig.sim,
        org: &a,
        log: &rig.log,
    };
    let outcome = live::walk(trace, &tree).await.unwrap();
    assert_eq!(rig.sim.overlaps(), 0);
    if outcome.wiped_at.is_some() {
        let backups = rig.backups(&a);
        assert_eq!(backups.len(), 1, "a wipe keeps its backup: {backups:?}");
    } else {
        assert!(rig.backups(&a).is_empty());
        assert!(
            holds_credentials(&rig.live(&a)),
            "no wipe keeps the pairing"
        );
    }
    rig.sup.shutdown().await;
    outcome
}

struct Run {
    name: &'static str,
    trace: Trace,
    new: Outcome,
    old: Outcome,
}

/// The whole corpus through the tree, both policies, once for the tests below: on a
/// current-thread runtime in paused time, as `#[tokio::test(start_paused = true)]`.
fn the_corpus_through_the_tree() -> &'static [Run] {
    static RUNS: OnceLock<Vec<Run>> = OnceLock::new();
    RUNS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut runs = Vec::new();
            for Entry { name, trace } in corpus().unwrap() {
                let new = through_the_tree(&trace, HealingPolicy::default()).await;
                let old = through_the_tree(&trace, HealingPolicy::old_rule()).await;
                runs.push(Run {
                    name,
                    trace,
                    new,
                    old,
                });
            }
            runs
        })
    })
}

#[test]
fn every_trace_meets_its_label_through_the_actor_tree() {
    let runs = the_corpus_through_the_tree();
    assert_eq!(runs.len(), CORPUS.len());
    let broken: Vec<String> = runs
        .iter()
        .flat_map(|r| {
            broken_labels(&r.trace, &r.new, &r.old)
                .into_iter()
                .map(move |b| format!("{}: {b}", r.name))
        })
        .collect();
    assert!(broken.is_empty(), "{broken:#?}");
}

/// The replay's model of the actor, told what this tree does (its reconnect backoff,
/// restarts that take no virtual time over the fake phone), makes every trip the tree
/// makes, at the same time, and no other.
#[test]
fn the_model_of_the_actor_trips_as_the_actor_tree_does() {
    let model = live::model();
    let mut disagreements = Vec::new();
    for run in the_corpus_through_the_tree() {
        for (policy, tree) in [
            (HealingPolicy::default(), &run.new),
            (HealingPolicy::old_rule(), &run.old),
        ] {
            let modelled = on_the_millisecond(replay(&run.trace, policy, &model));
            if modelled != *tree {
                disagreements.push(format!(
                    "{} ({}):\n  tree:  {tree:?}\n  model: {modelled:?}",
                    run.name,
                    if policy.restart_first { "new" } else { "old" },
                ));
            }
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Tokio's timers fire on whole milliseconds, so the tree sees an event of the trace at
/// its time rounded up to one.
fn on_the_millisecond(mut outcome: Outcome) -> Outcome {
    let up = |d: Duration| Duration::from_millis(d.as_nanos().div_ceil(1_000_000) as u64);
    outcome.wiped_at = outcome.wiped_at.map(up);
    outcome.first_error_at = outcome.first_error_at.map(up);
    for (at, _) in &mut outcome.trips {
        *at = up(*at);
    }
    outcome
}

/// What the model's reconnects rest on: a heal restart is not a backoff, so when its
/// connect finds the network down the actor backs off from the first delay.
#[tokio::test(start_paused = true)]
async fn a_restart_that_finds_the_network_down_backs_off_from_the_first_delay() {
    let rig =
        Rig::with(|c| *c = live::config(&c.sessions_dir.clone(), HealingPolicy::default())).await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    for sender in ["573001110001", "573001110002"] {
        rig.inject(
            &a,
            Fault::BadMac {
                sender: Some(sender.into()),
            },
        )
        .await;
    }
    // The third trips a restart; the network is gone before the restart connects.
    rig.sim
        .inject(
            &a,
            Fault::BadMac {
                sender: Some("573001110003".into()),
            },
        )
        .unwrap();
    rig.sim.inject(&a, Fault::NetworkDown).unwrap();
    let backing_off = |s: &SessionSnapshot| s.next_attempt_at.is_some();
    let snapshot = rig.sup.wait_for(&a, LONG, backing_off).await.unwrap();
    let reason = snapshot.reason.unwrap_or_default();
    assert!(reason.ends_with("retrying in 1000 ms"), "{reason}");
    assert_eq!(healing_restarts(&rig), 1);
}

fn healing_restarts(rig: &Rig) -> usize {
    let events = rig.events.events();
    let restarts = events.iter().filter(|e| {
        matches!(
            e.kind,
            crate::EventKind::Healing {
                step: crate::healing::Step::Restart,
                ..
            }
        )
    });
    restarts.count()
}
