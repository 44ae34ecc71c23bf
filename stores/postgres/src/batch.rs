//! Batched writes as one statement over arrays (`UNNEST`), with the meaning of the
//! same upserts run one by one.
//!
//! PostgreSQL refuses an `INSERT .. ON CONFLICT DO UPDATE` that touches one row
//! twice, while upstream's SQLite store runs a batch row by row, so a key repeated in
//! a batch is simply written twice there. These fold the repeats first, so that the
//! single statement leaves exactly what the row-by-row run would.

use std::collections::HashMap;
use std::hash::Hash;

/// For every key only its last item (what a run of plain upserts leaves), in the
/// order of the keys' first appearance.
pub(crate) fn last_wins<T, K: Eq + Hash>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    coalesce(items.iter(), |item| key(item), |kept, later| *kept = later)
}

/// Folds every item into the first item of its key with `merge(kept, later)`, in
/// the order of the keys' first appearance.
pub(crate) fn coalesce<T, K: Eq + Hash>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
    mut merge: impl FnMut(&mut T, T),
) -> Vec<T> {
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<T> = Vec::new();
    for item in items {
        match index.get(&key(&item)) {
            Some(&at) => merge(&mut out[at], item),
            None => {
                index.insert(key(&item), out.len());
                out.push(item);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_wins_keeps_the_last_item_of_each_key_in_first_seen_order() {
        let items = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)];
        let kept: Vec<_> = last_wins(&items, |(k, _)| *k)
            .into_iter()
            .copied()
            .collect();
        assert_eq!(kept, vec![("a", 3), ("b", 5), ("c", 4)]);
    }

    #[test]
    fn coalesce_merges_in_order_and_leaves_single_keys_alone() {
        let items = vec![
            ("a", vec![1]),
            ("b", vec![2]),
            ("a", vec![3]),
            ("a", vec![4]),
        ];
        let merged = coalesce(items, |(k, _)| *k, |kept, later| kept.1.extend(later.1));
        assert_eq!(merged, vec![("a", vec![1, 3, 4]), ("b", vec![2])]);
    }

    #[test]
    fn an_empty_batch_stays_empty() {
        let items: [(u8, u8); 0] = [];
        assert!(last_wins(&items, |(k, _)| *k).is_empty());
    }
}
