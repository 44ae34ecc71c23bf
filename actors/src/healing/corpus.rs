//! The corpus of labelled traces (`corpus/*.trace`, CONTRACT §11), replayed by the
//! tests below and by `cargo bench -p wa-actors --bench healing_corpus`.

use super::HealingPolicy;
use super::replay::{DaemonModel, Outcome, replay};
use super::trace::{Trace, TraceError};

/// Every trace of the corpus: its name (the file name without `.trace`) and text.
pub const CORPUS: &[(&str, &str)] = &[
    ("broken_store", include_str!("corpus/broken_store.trace")),
    (
        "broken_store_after_outage",
        include_str!("corpus/broken_store_after_outage.trace"),
    ),
    (
        "cured_by_restart",
        include_str!("corpus/cured_by_restart.trace"),
    ),
    ("network_flaps", include_str!("corpus/network_flaps.trace")),
    (
        "offline_backlog",
        include_str!("corpus/offline_backlog.trace"),
    ),
    (
        "offline_backlog_every_morning",
        include_str!("corpus/offline_backlog_every_morning.trace"),
    ),
    (
        "one_broken_contact",
        include_str!("corpus/one_broken_contact.trace"),
    ),
    (
        "reconnect_noise",
        include_str!("corpus/reconnect_noise.trace"),
    ),
    ("restart_loop", include_str!("corpus/restart_loop.trace")),
    ("seed_incident", include_str!("corpus/seed_incident.trace")),
    (
        "stream_error_every_40s",
        include_str!("corpus/stream_error_every_40s.trace"),
    ),
    ("stream_hiccup", include_str!("corpus/stream_hiccup.trace")),
    (
        "two_broken_contacts_hours_apart",
        include_str!("corpus/two_broken_contacts_hours_apart.trace"),
    ),
    (
        "two_broken_contacts_same_minute",
        include_str!("corpus/two_broken_contacts_same_minute.trace"),
    ),
];

/// A corpus trace that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corpus trace {name}: {error}")]
pub struct CorpusError {
    pub name: &'static str,
    pub error: TraceError,
}

/// One parsed corpus trace.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: &'static str,
    pub trace: Trace,
}

/// Every corpus trace, parsed.
pub fn corpus() -> Result<Vec<Entry>, CorpusError> {
    CORPUS
        .iter()
        .map(|&(name, text)| {
            Trace::parse(text)
                .map(|trace| Entry { name, trace })
                .map_err(|error| CorpusError { name, error })
        })
        .collect()
}

/// One trace replayed with a policy and with the old rule.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub name: &'static str,
    pub trace: Trace,
    pub new: Outcome,
    pub old: Outcome,
}

/// Replays the whole corpus with `policy` and with [`HealingPolicy::old_rule`].
pub fn compare(policy: HealingPolicy, model: &DaemonModel) -> Result<Vec<Comparison>, CorpusError> {
    Ok(corpus()?
        .into_iter()
        .map(|Entry { name, trace }| Comparison {
            name,
            new: replay(&trace, policy, model),
            old: replay(&trace, HealingPolicy::old_rule(), model),
            trace,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::healing::replay::{broken_labels, verdict};

    #[test]
    fn every_file_in_the_corpus_directory_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/healing/corpus");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        let listed: Vec<String> = CORPUS.iter().map(|(n, _)| format!("{n}.trace")).collect();
        assert_eq!(files, listed);
    }

    #[test]
    fn every_label_holds() {
        let runs = compare(HealingPolicy::default(), &DaemonModel::default()).unwrap();
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

    #[test]
    fn the_corpus_shows_the_difference() {
        let runs = compare(HealingPolicy::default(), &DaemonModel::default()).unwrap();
        let benign: Vec<_> = runs.iter().filter(|r| !r.trace.is_corrupt()).collect();
        let corrupt: Vec<_> = runs.iter().filter(|r| r.trace.is_corrupt()).collect();
        assert!(
            benign.len() >= 6 && corrupt.len() >= 4,
            "{} benign, {} corrupt",
            benign.len(),
            corrupt.len()
        );
        // The new policy: no false wipe, no missed heal.
        for r in &runs {
            let v = verdict(&r.trace, &r.new);
            assert!(
                !v.false_wipe && !v.missed_heal,
                "{}: {v:?} {:?}",
                r.name,
                r.new
            );
        }
        // The old rule wipes most benign traces, and heals every corrupt one too (it
        // wipes at the first trip), so the corpus measures the difference.
        let old_false_wipes = benign
            .iter()
            .filter(|r| verdict(&r.trace, &r.old).false_wipe)
            .count();
        assert!(
            old_false_wipes * 2 > benign.len(),
            "old rule: {old_false_wipes} false wipes"
        );
        assert!(
            corrupt
                .iter()
                .all(|r| !verdict(&r.trace, &r.old).missed_heal)
        );
    }
}
