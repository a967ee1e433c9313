//! Recent mutations per target, for facts like "a second rollback within an hour".
//! Kept in memory: a restarted server starts with an empty history (the audit log keeps
//! the record).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::policy::Target;

const WINDOW: Duration = Duration::from_secs(3600);

/// Key of a target: kind/namespace/name.
pub fn key(t: &Target) -> String {
    format!("{}/{}/{}", t.kind, t.namespace, t.name)
}

/// Mutations of the last hour.
#[derive(Debug, Default)]
pub struct History {
    entries: Mutex<HashMap<String, Vec<(Instant, String)>>>,
}

impl History {
    /// Record an applied mutation.
    pub fn record(&self, key: String, action: &str) {
        if let Ok(mut m) = self.entries.lock() {
            let v = m.entry(key).or_default();
            v.retain(|(t, _)| t.elapsed() < WINDOW);
            v.push((Instant::now(), action.to_string()));
        }
    }

    /// Mutations of a target in the last hour, optionally of one action only.
    pub fn count(&self, key: &str, action: Option<&str>) -> i64 {
        self.entries
            .lock()
            .ok()
            .and_then(|m| {
                m.get(key).map(|v| {
                    v.iter()
                        .filter(|(t, a)| t.elapsed() < WINDOW && action.is_none_or(|x| x == a))
                        .count() as i64
                })
            })
            .unwrap_or(0)
    }
}
