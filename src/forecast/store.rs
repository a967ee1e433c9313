//! Forecasts the server issued, kept on disk (bounded) so their accuracy can be measured
//! once the actual values are in.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Records kept at most; older ones are dropped when the file is compacted.
pub const MAX_RECORDS: usize = 2_000;

/// One stored forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredForecast {
    /// Id returned to the caller.
    pub id: String,
    /// When it was made (unix seconds).
    pub created: i64,
    /// What was forecast (the query as JSON, or "inline").
    pub subject: serde_json::Value,
    /// Model used.
    pub model: String,
    /// Seconds between steps.
    pub step: i64,
    /// MASE scale of the training history.
    pub mase_scale: f64,
    /// (t, point, lower, upper) per step.
    pub steps: Vec<(i64, f64, f64, f64)>,
}

/// The store: a JSON Lines file.
#[derive(Debug)]
pub struct ForecastStore {
    path: PathBuf,
    /// The file's length and line count after this process's last write, so that a write
    /// need not read the whole file back to count its lines; recounted when the length
    /// shows that someone else wrote to the file since.
    lock: Mutex<Option<(u64, usize)>>,
}

impl ForecastStore {
    /// A store in `path` (created on first write).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: Mutex::new(None),
        }
    }

    /// Append a forecast; compacts to the newest [`MAX_RECORDS`] when the file grows past
    /// twice that.
    pub fn put(&self, f: &StoredForecast) -> std::io::Result<()> {
        let mut known = self
            .lock
            .lock()
            .map_err(|_| std::io::Error::other("forecast store lock poisoned"))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let len_before = file.metadata()?.len();
        let mut line = serde_json::to_string(f).map_err(std::io::Error::other)?;
        line.push('\n');
        file.write_all(line.as_bytes())?;
        drop(file);
        let len_after = len_before + line.len() as u64;
        let count = match *known {
            Some((len, n)) if len == len_before => n + 1,
            _ => BufReader::new(std::fs::File::open(&self.path)?)
                .lines()
                .count(),
        };
        *known = Some((len_after, count));
        if count > 2 * MAX_RECORDS {
            let all = self.all_unlocked()?;
            let keep = &all[all.len().saturating_sub(MAX_RECORDS)..];
            let tmp = self.path.with_extension("tmp");
            let mut out = std::fs::File::create(&tmp)?;
            for r in keep {
                let mut l = serde_json::to_string(r).map_err(std::io::Error::other)?;
                l.push('\n');
                out.write_all(l.as_bytes())?;
            }
            out.sync_all()?;
            let len = out.metadata()?.len();
            std::fs::rename(&tmp, &self.path)?;
            *known = Some((len, keep.len()));
        }
        Ok(())
    }

    fn all_unlocked(&self) -> std::io::Result<Vec<StoredForecast>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect())
    }

    /// Find a forecast by id.
    pub fn get(&self, id: &str) -> std::io::Result<Option<StoredForecast>> {
        let _g = self
            .lock
            .lock()
            .map_err(|_| std::io::Error::other("forecast store lock poisoned"))?;
        Ok(self.all_unlocked()?.into_iter().rev().find(|f| f.id == id))
    }

    /// The newest forecasts, newest first.
    pub fn recent(&self, n: usize) -> std::io::Result<Vec<StoredForecast>> {
        let _g = self
            .lock
            .lock()
            .map_err(|_| std::io::Error::other("forecast store lock poisoned"))?;
        let mut all = self.all_unlocked()?;
        all.reverse();
        all.truncate(n);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_finds_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let s = ForecastStore::new(dir.path().join("f.jsonl"));
        for i in 0..(2 * MAX_RECORDS + 5) {
            s.put(&StoredForecast {
                id: format!("f{i}"),
                created: i as i64,
                subject: serde_json::json!("inline"),
                model: "naive".into(),
                step: 300,
                mase_scale: 1.0,
                steps: vec![(0, 1.0, 0.0, 2.0)],
            })
            .unwrap();
        }
        assert!(s.get("f3").unwrap().is_none(), "old records compacted away");
        assert_eq!(
            s.get(&format!("f{}", 2 * MAX_RECORDS + 4))
                .unwrap()
                .unwrap()
                .created,
            (2 * MAX_RECORDS + 4) as i64
        );
        let n = std::fs::read_to_string(dir.path().join("f.jsonl"))
            .unwrap()
            .lines()
            .count();
        assert!(n <= 2 * MAX_RECORDS, "{n}");
        assert_eq!(
            s.recent(2).unwrap()[0].id,
            format!("f{}", 2 * MAX_RECORDS + 4)
        );
    }

    #[test]
    fn two_writers_on_one_file_stay_bounded() {
        // each store counts its own writes; a write by the other shows in the file's length
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl");
        let (a, b) = (
            ForecastStore::new(path.clone()),
            ForecastStore::new(path.clone()),
        );
        for i in 0..(2 * MAX_RECORDS + 5) {
            let s = if i % 3 == 0 { &a } else { &b };
            s.put(&StoredForecast {
                id: format!("f{i}"),
                created: i as i64,
                subject: serde_json::json!("inline"),
                model: "naive".into(),
                step: 300,
                mase_scale: 1.0,
                steps: vec![(0, 1.0, 0.0, 2.0)],
            })
            .unwrap();
        }
        let n = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(n <= 2 * MAX_RECORDS, "{n}");
        assert!(a.get("f3").unwrap().is_none(), "old records compacted away");
    }
}
