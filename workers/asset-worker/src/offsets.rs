//! Which offsets may be committed when messages finish out of order.
//!
//! Files finish in any order on the probing pool, and their batches in the order results
//! arrive. An offset may only be committed once every message before it on its partition has
//! finished (its row written and its events acknowledged), or a crash would skip the
//! unfinished ones. The tracker keeps, per partition, the offsets begun but not finished; the
//! committable position is the lowest of those, or one past the highest begun when none is
//! pending.

use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Default)]
struct Partition {
    /// Begun, not finished.
    pending: BTreeSet<i64>,
    /// One past the highest offset begun.
    next: i64,
    /// Last position handed out for commit (nothing below it is handed out again).
    committed: i64,
}

/// Offsets in flight, per partition of the consumed topic.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<i32, Partition>,
}

impl OffsetTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// A message was received.
    pub fn begin(&mut self, partition: i32, offset: i64) {
        let state = self
            .partitions
            .entry(partition)
            .or_insert_with(|| Partition {
                pending: BTreeSet::new(),
                next: offset,
                committed: offset,
            });
        state.pending.insert(offset);
        state.next = state.next.max(offset + 1);
    }

    /// A message's work is durable. Unknown partitions (revoked meanwhile) are ignored.
    pub fn finish(&mut self, partition: i32, offset: i64) {
        if let Some(state) = self.partitions.get_mut(&partition) {
            state.pending.remove(&offset);
        }
    }

    /// Positions (next offset to consume) that moved since the last call, per partition.
    pub fn take_commits(&mut self) -> BTreeMap<i32, i64> {
        let mut out = BTreeMap::new();
        for (partition, state) in &mut self.partitions {
            let position = state.pending.first().copied().unwrap_or(state.next);
            if position > state.committed {
                state.committed = position;
                out.insert(*partition, position);
            }
        }
        out
    }

    /// The committable position of `partition` (whether or not it moved), if known.
    pub fn position(&self, partition: i32) -> Option<i64> {
        let state = self.partitions.get(&partition)?;
        Some(state.pending.first().copied().unwrap_or(state.next))
    }

    /// Forgets partitions this member no longer owns; their in-flight messages will be
    /// redelivered to the new owner.
    pub fn revoke(&mut self, partitions: &[i32]) {
        for partition in partitions {
            self.partitions.remove(partition);
        }
    }

    /// Messages begun and not finished, over all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.pending.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_the_contiguous_prefix() {
        let mut t = OffsetTracker::new();
        for offset in 10..15 {
            t.begin(0, offset);
        }
        t.begin(1, 3);
        t.finish(0, 12);
        t.finish(0, 11);
        assert!(t.take_commits().is_empty(), "10 is still pending");
        t.finish(0, 10);
        assert_eq!(t.take_commits(), BTreeMap::from([(0, 13)]));
        assert!(t.take_commits().is_empty(), "nothing moved");
        t.finish(0, 14);
        t.finish(0, 13);
        t.finish(1, 3);
        assert_eq!(t.take_commits(), BTreeMap::from([(0, 15), (1, 4)]));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn revoked_partitions_are_forgotten() {
        let mut t = OffsetTracker::new();
        t.begin(2, 100);
        t.revoke(&[2]);
        t.finish(2, 100);
        assert!(t.take_commits().is_empty());
        // Reassigned later, possibly from an older committed offset.
        t.begin(2, 90);
        t.finish(2, 90);
        assert_eq!(t.take_commits(), BTreeMap::from([(2, 91)]));
    }
}
