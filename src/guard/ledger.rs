//! The change ledger: the guarded changes of the last hour, kept on the changed object itself
//! as an annotation and written in the same request as the change.
//!
//! Temporal rules ("a second rollback within an hour", "no staircase of small cuts") cannot
//! live in one process's memory: every stdio client starts its own server, HTTP replicas
//! each have their own, and a restart forgets. On the object, every process reads the same
//! history; and because the change and its ledger entry go out as one write with the
//! plan's resourceVersion as precondition, two racing changes planned on the same state
//! cannot both land — the API server refuses the second with a conflict.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The annotation holding the ledger (a JSON array of [`Entry`]).
pub const ANNOTATION: &str = "eks-ops-mcp/changes";

/// How far back the ledger looks.
pub const WINDOW_SECS: i64 = 3600;

/// Most entries kept: bounds the annotation's size (about 100 bytes an entry).
const MAX_ENTRIES: usize = 32;

/// One guarded change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When, in seconds since the Unix epoch (the writing server's clock).
    pub t: i64,
    /// The action (tool).
    pub a: String,
    /// Change id, to recognise this change when reading the object back.
    pub id: String,
    /// A human approved this change: cumulative limits count from its result, since the
    /// human saw the change being made.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub human: bool,
    /// Replicas before the change, for changes that set a replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// Replicas after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
}

/// The ledger of one object, as read with the plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    entries: Vec<Entry>,
    /// The annotation exists but is not a ledger (edited by hand, or by something else):
    /// the history is unknown, and the facts then assume the worst.
    unreadable: bool,
}

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Ledger {
    /// Read the ledger from an object's annotations.
    pub fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Self {
        match annotations.and_then(|a| a.get(ANNOTATION)) {
            None => Self::default(),
            Some(text) => match serde_json::from_str::<Vec<Entry>>(text) {
                Ok(entries) => Self {
                    entries,
                    unreadable: false,
                },
                Err(_) => Self {
                    entries: Vec::new(),
                    unreadable: true,
                },
            },
        }
    }

    /// Whether the annotation was present but could not be read.
    pub fn unreadable(&self) -> bool {
        self.unreadable
    }

    /// Entries within the window before `now` (an entry dated in the future, from a skewed
    /// clock, counts as recent).
    fn recent(&self, now: i64) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| now - e.t < WINDOW_SECS)
    }

    /// Changes in the window, of one action or of any. An unreadable ledger counts as
    /// "more than any rule allows", so that temporal rules escalate rather than pass.
    pub fn count(&self, now: i64, action: Option<&str>) -> i64 {
        if self.unreadable {
            return i64::from(u8::MAX);
        }
        self.recent(now)
            .filter(|e| action.is_none_or(|a| a == e.a))
            .count() as i64
    }

    /// Lowest and highest replica counts over the window, `current` included, counted from
    /// the last change a human approved (its result is the baseline). An unreadable ledger
    /// gives 0 to four times `current`, so that every cumulative rule sees a large change.
    pub fn replica_range(&self, now: i64, current: i64) -> (i64, i64) {
        if self.unreadable {
            return (0, current.saturating_mul(4).max(1));
        }
        let recent: Vec<&Entry> = self.recent(now).collect();
        let since = recent.iter().rposition(|e| e.human);
        let counts = recent.iter().enumerate().flat_map(|(i, e)| match since {
            Some(h) if i < h => [None, None],
            Some(h) if i == h => [None, e.to],
            _ => [e.from, e.to],
        });
        counts
            .flatten()
            .fold((current, current), |(lo, hi), r| (lo.min(r), hi.max(r)))
    }

    /// Whether a change with this id is recorded.
    pub fn contains(&self, id: &str) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    /// The annotation's new value: the window's entries plus `entry`, newest last, bounded.
    /// An unreadable ledger is replaced (its facts already escalated the change).
    pub fn with(&self, entry: Entry) -> String {
        let now = entry.t;
        let mut kept: Vec<&Entry> = self.recent(now).collect();
        kept.push(&entry);
        let skip = kept.len().saturating_sub(MAX_ENTRIES);
        let kept: Vec<&Entry> = kept.into_iter().skip(skip).collect();
        serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into())
    }
}

/// The metadata patch that records a change: merge it into the change's own patch.
pub fn annotation_patch(value: &str) -> Value {
    serde_json::json!({"annotations": {ANNOTATION: value}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(entries: &[(i64, &str, Option<i64>, Option<i64>)]) -> Ledger {
        let v: Vec<Entry> = entries
            .iter()
            .enumerate()
            .map(|(i, (t, a, from, to))| Entry {
                t: *t,
                a: a.to_string(),
                id: format!("c{i}"),
                human: false,
                from: *from,
                to: *to,
            })
            .collect();
        let mut ann = BTreeMap::new();
        ann.insert(ANNOTATION.to_string(), serde_json::to_string(&v).unwrap());
        Ledger::from_annotations(Some(&ann))
    }

    #[test]
    fn counts_only_the_window() {
        let now = 10_000;
        let l = ledger(&[
            (now - 3601, "rollback", None, None),
            (now - 3599, "rollback", None, None),
            (now - 10, "scale_deployment", Some(4), Some(3)),
        ]);
        assert_eq!(l.count(now, Some("rollback")), 1);
        assert_eq!(l.count(now, None), 2);
        assert_eq!(Ledger::default().count(now, None), 0);
    }

    #[test]
    fn the_replica_range_spans_the_window_and_now() {
        let now = 10_000;
        let l = ledger(&[
            (now - 4000, "scale_deployment", Some(50), Some(40)),
            (now - 3000, "scale_deployment", Some(10), Some(6)),
            (now - 2000, "scale_deployment", Some(6), Some(4)),
        ]);
        assert_eq!(l.replica_range(now, 4), (4, 10));
        assert_eq!(Ledger::default().replica_range(now, 7), (7, 7));
    }

    #[test]
    fn a_human_approved_change_resets_the_baseline() {
        let now = 10_000;
        let mut l = ledger(&[
            (now - 3000, "scale_deployment", Some(10), Some(6)),
            (now - 2000, "reserve_capacity", Some(0), Some(3)),
            (now - 1000, "scale_deployment", Some(3), Some(4)),
        ]);
        l.entries[1].human = true;
        // 10 and 0 are before the human's change; its result 3 is the baseline
        assert_eq!(l.replica_range(now, 4), (3, 4));
    }

    #[test]
    fn an_unreadable_ledger_assumes_the_worst() {
        let mut ann = BTreeMap::new();
        ann.insert(ANNOTATION.to_string(), "{not a ledger".to_string());
        let l = Ledger::from_annotations(Some(&ann));
        assert!(l.unreadable());
        assert!(l.count(0, Some("rollback")) >= 1);
        let (lo, hi) = l.replica_range(0, 5);
        assert!(lo == 0 && hi >= 10, "{lo} {hi}");
    }

    #[test]
    fn new_values_are_bounded_and_drop_old_entries() {
        let now = 100_000;
        let many: Vec<_> = (0..100)
            .map(|i| (now - 100 + i, "adjust_hpa", Some(i), Some(i + 1)))
            .collect();
        let mut with_old = vec![(now - 7200, "rollback", None, None)];
        with_old.extend(many);
        let l = ledger(&with_old);
        let text = l.with(Entry {
            t: now,
            a: "adjust_hpa".into(),
            id: "new".into(),
            human: false,
            from: Some(1),
            to: Some(2),
        });
        let back: Vec<Entry> = serde_json::from_str(&text).unwrap();
        assert_eq!(back.len(), MAX_ENTRIES);
        assert_eq!(back.last().unwrap().id, "new");
        assert!(back.iter().all(|e| e.a != "rollback"));
        assert!(text.len() < 4096, "{}", text.len());
    }
}
