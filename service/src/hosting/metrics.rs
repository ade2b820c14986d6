//! Per-VM resource samples for the live charts: a ring buffer per running hosting, fed by a
//! periodic sampler (`background::sampler`), and broadcast to subscribers.
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use vmw_types::StatSample;
use crate::vm::VmStats;

/// 15 minutes at the default 5 s interval.
const KEEP: usize = 180;

#[derive(Default)]
pub(crate) struct Metrics {
    inner: Mutex<HashMap<i32, Series>>,
}

#[derive(Default)]
struct Series {
    last_raw: Option<VmStats>,
    samples: VecDeque<StatSample>,
}

impl Metrics {
    pub(crate) fn history(&self, id: i32) -> Vec<StatSample> {
        self.inner
            .lock()
            .unwrap()
            .get(&id)
            .map(|s| s.samples.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn forget(&self, id: i32) {
        self.inner.lock().unwrap().remove(&id);
    }

    /// Adds a raw reading; returns the derived sample once there are two readings.
    pub(crate) fn push(&self, id: i32, user_id: i32, raw: VmStats) -> Option<StatSample> {
        let mut map = self.inner.lock().unwrap();
        let series = map.entry(id).or_default();
        let sample = series.last_raw.as_ref().and_then(|prev| derive(id, user_id, prev, &raw));
        series.last_raw = Some(raw);
        if let Some(s) = &sample {
            series.samples.push_back(s.clone());
            while series.samples.len() > KEEP {
                series.samples.pop_front();
            }
        }
        sample
    }
}

fn derive(id: i32, user_id: i32, prev: &VmStats, cur: &VmStats) -> Option<StatSample> {
    let dt_ms = cur.sampled_at_ms - prev.sampled_at_ms;
    if dt_ms <= 0 || cur.cpu_time_ns < prev.cpu_time_ns {
        return None; // clock went backwards or the VM restarted: start a new baseline
    }
    let secs = dt_ms as f64 / 1000.0;
    let cpu_percent = (cur.cpu_time_ns - prev.cpu_time_ns) as f64 / 1e9 / secs * 100.0;
    Some(StatSample {
        hosting_id: id,
        user_id,
        t: cur.sampled_at_ms,
        cpu_percent: (cpu_percent * 10.0).round() / 10.0,
        memory_used_kib: cur.memory_rss_kib,
        memory_max_kib: cur.memory_max_kib,
        disk_read_bps: cur.disk_rd_bytes.saturating_sub(prev.disk_rd_bytes) as f64 / secs,
        disk_write_bps: cur.disk_wr_bytes.saturating_sub(prev.disk_wr_bytes) as f64 / secs,
    })
}

/// (MemTotal, MemAvailable) of the host in KiB, from /proc/meminfo.
pub(crate) fn host_memory_kib() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(t: i64, cpu_ns: u64, rd: u64) -> VmStats {
        VmStats { cpu_time_ns: cpu_ns, sampled_at_ms: t, disk_rd_bytes: rd, memory_rss_kib: 1000, ..Default::default() }
    }

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time() {
        let m = Metrics::default();
        assert!(m.push(1, 7, raw(0, 0, 0)).is_none(), "one reading is no rate yet");
        let s = m.push(1, 7, raw(2000, 1_000_000_000, 4096)).unwrap();
        assert_eq!(s.cpu_percent, 50.0);
        assert_eq!(s.disk_read_bps, 2048.0);
        assert_eq!(m.history(1).len(), 1);
        // A restarted VM (cpu time back to ~0) starts a new baseline instead of a negative rate.
        assert!(m.push(1, 7, raw(4000, 10, 0)).is_none());
    }

    #[test]
    fn history_keeps_the_last_fifteen_minutes() {
        let m = Metrics::default();
        for i in 0..(KEEP as i64 + 50) {
            m.push(3, 1, raw(i * 5000, (i as u64) * 1_000_000, 0));
        }
        let h = m.history(3);
        assert_eq!(h.len(), KEEP);
        assert!(h.windows(2).all(|w| w[0].t < w[1].t));
    }
}
