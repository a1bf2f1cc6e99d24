//! Which offsets may be committed when messages finish out of order.
//!
//! Messages of one partition finish in any order: some are skipped at once, others wait for a
//! file to be read or for a batch to be written and its events acknowledged, and a row held by
//! another transaction is retried later. An offset may only be committed once every message
//! before it on its partition has finished, or a crash would skip the unfinished ones. The book
//! keeps, per partition, the offsets begun and not finished; the committable position is the
//! lowest of those, or one past the highest begun when none is pending.
//!
//! The book is shared between the runtime (which begins and finishes messages) and the
//! consumer's rebalance callback (which commits the finished prefix of revoked partitions and
//! forgets them): a cheap clonable handle over one mutex.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// A partition of a consumed topic.
pub type TopicPartition = (Arc<str>, i32);

#[derive(Debug, Default)]
struct Partition {
    /// Begun, not finished.
    pending: BTreeSet<i64>,
    /// One past the highest offset begun.
    next: i64,
    /// Last position handed out for commit (nothing at or below it is handed out again).
    committed: i64,
}

impl Partition {
    fn position(&self) -> i64 {
        self.pending.first().copied().unwrap_or(self.next)
    }
}

/// Offsets in flight, per partition.
#[derive(Clone, Debug, Default)]
pub struct OffsetBook {
    inner: Arc<Mutex<HashMap<TopicPartition, Partition>>>,
}

impl OffsetBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TopicPartition, Partition>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A message was received.
    pub fn begin(&self, topic: &Arc<str>, partition: i32, offset: i64) {
        let mut book = self.lock();
        let state = book
            .entry((Arc::clone(topic), partition))
            .or_insert_with(|| Partition {
                pending: BTreeSet::new(),
                next: offset,
                committed: offset,
            });
        state.pending.insert(offset);
        state.next = state.next.max(offset + 1);
    }

    /// A message's work is durable (written, and its events acknowledged). Unknown partitions
    /// (revoked meanwhile) are ignored: their new owner replays them.
    pub fn finish(&self, topic: &Arc<str>, partition: i32, offset: i64) {
        let mut book = self.lock();
        if let Some(state) = book.get_mut(&(Arc::clone(topic), partition)) {
            state.pending.remove(&offset);
        }
    }

    /// Positions (the next offset to consume) that moved since the last call.
    pub fn take_commits(&self) -> BTreeMap<TopicPartition, i64> {
        let mut out = BTreeMap::new();
        for (tp, state) in self.lock().iter_mut() {
            let position = state.position();
            if position > state.committed {
                state.committed = position;
                out.insert(tp.clone(), position);
            }
        }
        out
    }

    /// Takes the committable positions of `partitions` (whether they moved or not) and
    /// forgets those partitions: their unfinished messages go to the next owner.
    pub fn revoke(&self, partitions: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        let mut book = self.lock();
        partitions
            .iter()
            .filter_map(|tp| book.remove(tp).map(|state| (tp.clone(), state.position())))
            .collect()
    }

    /// Messages begun and not finished, over all owned partitions.
    pub fn in_flight(&self) -> usize {
        self.lock().values().map(|p| p.pending.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    #[test]
    fn commits_only_the_contiguous_prefix() {
        let (a, b) = (t("a"), t("b"));
        let book = OffsetBook::new();
        for offset in 10..15 {
            book.begin(&a, 0, offset);
        }
        book.begin(&b, 0, 3);
        book.finish(&a, 0, 12);
        book.finish(&a, 0, 11);
        assert!(book.take_commits().is_empty(), "10 is still pending");
        book.finish(&a, 0, 10);
        assert_eq!(book.take_commits(), BTreeMap::from([((a.clone(), 0), 13)]));
        assert!(book.take_commits().is_empty(), "nothing moved");
        book.finish(&a, 0, 14);
        book.finish(&a, 0, 13);
        book.finish(&b, 0, 3);
        assert_eq!(
            book.take_commits(),
            BTreeMap::from([((a.clone(), 0), 15), ((b, 0), 4)])
        );
        assert_eq!(book.in_flight(), 0);
    }

    #[test]
    fn revoked_partitions_hand_over_their_prefix_and_are_forgotten() {
        let a = t("a");
        let book = OffsetBook::new();
        book.begin(&a, 2, 100);
        book.begin(&a, 2, 101);
        book.finish(&a, 2, 100);
        assert_eq!(book.revoke(&[(a.clone(), 2)]), vec![((a.clone(), 2), 101)]);
        book.finish(&a, 2, 101);
        assert!(book.take_commits().is_empty());
        // Reassigned later, possibly from an older committed offset.
        book.begin(&a, 2, 90);
        book.finish(&a, 2, 90);
        assert_eq!(book.take_commits(), BTreeMap::from([((a, 2), 91)]));
    }
}
