//! `cargo bench -p wa-actors --bench healing_corpus`: the trace corpus (CONTRACT §11)
//! replayed through the healing policy and through the old server's rule, in virtual
//! time. Prints, per trace and in total, false wipes (a benign trace wiped), missed heals
//! (a corrupt trace not wiped within its label's bound) and the time from the first
//! error to the wipe, as Markdown tables; then how long replaying the corpus takes.

use std::time::{Duration, Instant};

use wa_actors::healing::HealingPolicy;
use wa_actors::healing::corpus::{Comparison, compare};
use wa_actors::healing::replay::{DaemonModel, Outcome, verdict};
use wa_actors::healing::trace::{Expect, format_duration};

fn main() {
    let policy = HealingPolicy::default();
    let model = DaemonModel::default();
    let runs = match compare(policy, &model) {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!("{}", per_trace(&runs));
    println!("{}", totals(&runs));
    println!("{}", replay_speed(policy, &model));
}

fn label(expect: Expect) -> String {
    match expect {
        Expect::NoWipe => "benign: no wipe".to_owned(),
        Expect::WipeWithin(d) => format!("corrupt: wipe ≤ {}", format_duration(d)),
    }
}

/// `wipe at 5m35s` or `no wipe`, marked when it breaks the label.
fn result(run: &Comparison, outcome: &Outcome) -> String {
    let v = verdict(&run.trace, outcome);
    let text = match outcome.wiped_at {
        Some(at) => format!("wipe at {}", format_duration(at)),
        None => "no wipe".to_owned(),
    };
    match (v.false_wipe, v.missed_heal) {
        (true, _) => format!("**{text}** (false wipe)"),
        (_, true) => format!("**{text}** (missed heal)"),
        _ => text,
    }
}

fn time_to_wipe(outcome: &Outcome) -> String {
    outcome
        .time_to_wipe()
        .map(format_duration)
        .unwrap_or_else(|| "–".to_owned())
}

fn per_trace(runs: &[Comparison]) -> String {
    let mut out = String::from(
        "| trace | label | new policy | restarts | first error → wipe | old rule | first error → wipe |\n\
         |---|---|---|---:|---:|---|---:|\n",
    );
    for run in runs {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            run.name,
            label(run.trace.expect),
            result(run, &run.new),
            run.new.restarts,
            time_to_wipe(&run.new),
            result(run, &run.old),
            time_to_wipe(&run.old),
        ));
    }
    out
}

struct Totals {
    false_wipes: usize,
    missed_heals: usize,
    times: Vec<Duration>,
    restarts: usize,
}

fn totals_of(runs: &[Comparison], pick: impl Fn(&Comparison) -> &Outcome) -> Totals {
    let mut t = Totals {
        false_wipes: 0,
        missed_heals: 0,
        times: Vec::new(),
        restarts: 0,
    };
    for run in runs {
        let outcome = pick(run);
        let v = verdict(&run.trace, outcome);
        t.false_wipes += usize::from(v.false_wipe);
        t.missed_heals += usize::from(v.missed_heal);
        t.restarts += outcome.restarts;
        if run.trace.is_corrupt()
            && let Some(d) = outcome.time_to_wipe()
        {
            t.times.push(d);
        }
    }
    t.times.sort();
    t
}

fn totals(runs: &[Comparison]) -> String {
    let benign = runs.iter().filter(|r| !r.trace.is_corrupt()).count();
    let corrupt = runs.len() - benign;
    let new = totals_of(runs, |r| &r.new);
    let old = totals_of(runs, |r| &r.old);
    let median = |t: &Totals| {
        t.times
            .get(t.times.len().saturating_sub(1) / 2)
            .map_or("–".to_owned(), |d| format_duration(*d))
    };
    let max = |t: &Totals| {
        t.times
            .last()
            .map_or("–".to_owned(), |d| format_duration(*d))
    };
    format!(
        "| corpus: {benign} benign, {corrupt} corrupt traces | new policy | old rule |\n\
         |---|---:|---:|\n\
         | false wipes (benign traces wiped) | {} / {benign} | {} / {benign} |\n\
         | missed heals (corrupt traces not wiped within their bound) | {} / {corrupt} | {} / {corrupt} |\n\
         | first error → wipe, corrupt traces: median | {} | {} |\n\
         | first error → wipe, corrupt traces: max | {} | {} |\n\
         | restarts made by healing, whole corpus | {} | {} |\n",
        new.false_wipes,
        old.false_wipes,
        new.missed_heals,
        old.missed_heals,
        median(&new),
        median(&old),
        max(&new),
        max(&old),
        new.restarts,
        old.restarts,
    )
}

fn replay_speed(policy: HealingPolicy, model: &DaemonModel) -> String {
    let rounds = 20;
    let start = Instant::now();
    let mut events = 0;
    for _ in 0..rounds {
        let runs = compare(policy, model).expect("parsed above");
        events += runs.iter().map(|r| r.trace.events.len()).sum::<usize>();
    }
    let per_round = start.elapsed() / rounds;
    format!(
        "Parsing and replaying the corpus twice (both policies): {:.2} ms per round, {} trace events per round ({} rounds).",
        per_round.as_secs_f64() * 1e3,
        events / rounds as usize,
        rounds
    )
}
