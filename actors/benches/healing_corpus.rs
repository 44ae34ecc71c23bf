//! `cargo bench -p wa-actors --bench healing_corpus`: the trace corpus (CONTRACT §11)
//! in virtual time, three ways: the healing policy through the real actor tree over the
//! fake phone (`healing::live`), the healing policy through the replay's model of the
//! actor, and the old server's rule through that model. Prints, per trace and in total,
//! false wipes (a benign trace wiped), missed heals (a corrupt trace not wiped within its
//! label's bound) and the time from the first error to the wipe (through the actor tree:
//! to `qr_ready`), as Markdown tables; then how long replaying the corpus takes.

use std::time::{Duration, Instant};

use wa_actors::healing::HealingPolicy;
use wa_actors::healing::corpus::{Comparison, compare};
use wa_actors::healing::live::replay_live;
use wa_actors::healing::replay::{DaemonModel, Outcome, verdict};
use wa_actors::healing::trace::{Expect, format_duration};

/// One trace: the model's replays and the actor tree's.
struct Row {
    model: Comparison,
    tree: Outcome,
}

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
    let started = Instant::now();
    let rows = match through_the_tree(runs, policy) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let tree_took = started.elapsed();
    println!("{}", per_trace(&rows));
    println!("{}", totals(&rows));
    println!("{}", replay_speed(policy, &model));
    println!(
        "Walking the corpus through the actor tree (one fresh tree per trace, paused time): {:.0} ms.",
        tree_took.as_secs_f64() * 1e3
    );
}

/// Every trace through a fresh actor tree, on a current-thread runtime in paused time.
fn through_the_tree(
    runs: Vec<Comparison>,
    policy: HealingPolicy,
) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    runtime.block_on(async {
        let mut rows = Vec::new();
        for model in runs {
            let dir = tempfile::tempdir()?;
            let tree = replay_live(&model.trace, policy, dir.path())
                .await
                .map_err(|e| format!("{}: {e}", model.name))?;
            rows.push(Row { model, tree });
        }
        Ok(rows)
    })
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

fn per_trace(rows: &[Row]) -> String {
    let mut out = String::from(
        "| trace | label | actor tree | restarts | first error → qr_ready | model | restarts | first error → wipe | old rule (model) | first error → wipe |\n\
         |---|---|---|---:|---:|---|---:|---:|---|---:|\n",
    );
    for Row { model: run, tree } in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            run.name,
            label(run.trace.expect),
            result(run, tree),
            tree.restarts,
            time_to_wipe(tree),
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

fn totals_of(rows: &[Row], pick: impl Fn(&Row) -> &Outcome) -> Totals {
    let mut t = Totals {
        false_wipes: 0,
        missed_heals: 0,
        times: Vec::new(),
        restarts: 0,
    };
    for row in rows {
        let (run, outcome) = (&row.model, pick(row));
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

fn totals(rows: &[Row]) -> String {
    let benign = rows.iter().filter(|r| !r.model.trace.is_corrupt()).count();
    let corrupt = rows.len() - benign;
    let tree = totals_of(rows, |r| &r.tree);
    let new = totals_of(rows, |r| &r.model.new);
    let old = totals_of(rows, |r| &r.model.old);
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
        "| corpus: {benign} benign, {corrupt} corrupt traces | new policy, actor tree | new policy, model | old rule, model |\n\
         |---|---:|---:|---:|\n\
         | false wipes (benign traces wiped) | {} / {benign} | {} / {benign} | {} / {benign} |\n\
         | missed heals (corrupt traces not wiped within their bound) | {} / {corrupt} | {} / {corrupt} | {} / {corrupt} |\n\
         | first error → wipe (tree: → qr_ready), corrupt traces: median | {} | {} | {} |\n\
         | first error → wipe (tree: → qr_ready), corrupt traces: max | {} | {} | {} |\n\
         | restarts made by healing, whole corpus | {} | {} | {} |\n",
        tree.false_wipes,
        new.false_wipes,
        old.false_wipes,
        tree.missed_heals,
        new.missed_heals,
        old.missed_heals,
        median(&tree),
        median(&new),
        median(&old),
        max(&tree),
        max(&new),
        max(&old),
        tree.restarts,
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
