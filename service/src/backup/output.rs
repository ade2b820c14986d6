//! restic 0.14's `--json` output, as typed values. Only the fields we use are read; restic adds
//! fields between versions and unknown ones are ignored.
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

use super::error::BackupError;

/// How far a running backup is (restic's `status` lines, a few per second).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Progress {
    /// 0.0 to 1.0; stays 0 for stdin backups (restic cannot know the stream's size).
    pub percent_done: f64,
    pub bytes_done: u64,
    /// `None` until restic has scanned the files (and always for stdin backups).
    pub total_bytes: Option<u64>,
    pub files_done: u64,
    pub total_files: u64,
    pub seconds_elapsed: u64,
}

/// What a finished backup did (restic's `summary` line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    /// The new snapshot (restic prints its short id).
    pub snapshot_id: String,
    /// Bytes the backup added to the repository after deduplication and compression: what
    /// this backup costs in storage.
    pub data_added: u64,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub total_files_processed: u64,
    pub total_bytes_processed: u64,
    pub duration: Duration,
}

/// One snapshot in the repository.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Snapshot {
    pub id: String,
    pub short_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    pub hostname: String,
}

/// What `forget` kept and removed, over all groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForgetResult {
    pub kept: Vec<Snapshot>,
    pub removed: Vec<Snapshot>,
}

/// `stats --mode raw-data`: what the selected snapshots occupy in the repository (their blobs
/// after deduplication and compression, counting a blob shared between them once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct RawStats {
    pub total_size: u64,
    #[serde(default)]
    pub total_blob_count: u64,
    #[serde(default)]
    pub snapshots_count: u64,
}

/// One line of `backup --json`.
#[derive(Debug, PartialEq)]
pub(crate) enum BackupLine {
    Status(Progress),
    Summary(BackupSummary),
    /// `verbose_status`, `error` (restic 0.14 prints those on stderr, but a later one may not)...
    Other,
}

#[derive(Deserialize)]
struct RawBackupLine {
    message_type: String,
    #[serde(default)]
    percent_done: f64,
    #[serde(default)]
    bytes_done: u64,
    total_bytes: Option<u64>,
    #[serde(default)]
    files_done: u64,
    #[serde(default)]
    total_files: u64,
    #[serde(default)]
    seconds_elapsed: u64,
    snapshot_id: Option<String>,
    #[serde(default)]
    data_added: u64,
    #[serde(default)]
    files_new: u64,
    #[serde(default)]
    files_changed: u64,
    #[serde(default)]
    files_unmodified: u64,
    #[serde(default)]
    total_files_processed: u64,
    #[serde(default)]
    total_bytes_processed: u64,
    #[serde(default)]
    total_duration: f64,
}

pub(crate) fn parse_backup_line(line: &str) -> Result<BackupLine, BackupError> {
    let parse_err = |detail: String| BackupError::Parse { verb: "backup", line: bounded(line), detail };
    let raw: RawBackupLine = serde_json::from_str(line).map_err(|e| parse_err(e.to_string()))?;
    Ok(match raw.message_type.as_str() {
        "status" => BackupLine::Status(Progress {
            percent_done: raw.percent_done,
            bytes_done: raw.bytes_done,
            total_bytes: raw.total_bytes,
            files_done: raw.files_done,
            total_files: raw.total_files,
            seconds_elapsed: raw.seconds_elapsed,
        }),
        "summary" => BackupLine::Summary(BackupSummary {
            snapshot_id: raw.snapshot_id.ok_or_else(|| parse_err("summary without snapshot_id".into()))?,
            data_added: raw.data_added,
            files_new: raw.files_new,
            files_changed: raw.files_changed,
            files_unmodified: raw.files_unmodified,
            total_files_processed: raw.total_files_processed,
            total_bytes_processed: raw.total_bytes_processed,
            duration: Duration::try_from_secs_f64(raw.total_duration).unwrap_or_default(),
        }),
        _ => BackupLine::Other,
    })
}

#[derive(Deserialize)]
struct ForgetGroup {
    #[serde(default)]
    keep: Option<Vec<Snapshot>>,
    #[serde(default)]
    remove: Option<Vec<Snapshot>>,
}

/// `forget --json` prints one array of groups (or nothing when there was nothing to do).
pub(crate) fn parse_forget(out: &[u8]) -> Result<ForgetResult, BackupError> {
    let text = trimmed(out);
    if text.is_empty() {
        return Ok(ForgetResult::default());
    }
    let groups: Vec<ForgetGroup> = parse_json("forget", text)?;
    let mut result = ForgetResult::default();
    for g in groups {
        result.kept.extend(g.keep.unwrap_or_default());
        result.removed.extend(g.remove.unwrap_or_default());
    }
    Ok(result)
}

/// Parses a whole-output JSON document, keeping the (bounded) text on failure.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(verb: &'static str, text: &str) -> Result<T, BackupError> {
    serde_json::from_str(text).map_err(|e| BackupError::Parse { verb, line: bounded(text), detail: e.to_string() })
}

pub(crate) fn trimmed(out: &[u8]) -> &str {
    std::str::from_utf8(out).unwrap_or("").trim()
}

/// At most 512 bytes of a line, for error messages.
fn bounded(line: &str) -> String {
    if line.len() <= 512 {
        return line.to_string();
    }
    let mut end = 512;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_summary_lines_of_restic_0_14() {
        let s = parse_backup_line(r#"{"message_type":"status","seconds_elapsed":2,"seconds_remaining":3,"percent_done":0.5,"total_files":4,"files_done":2,"total_bytes":100,"bytes_done":50,"current_files":["/a"]}"#).unwrap();
        assert_eq!(
            s,
            BackupLine::Status(Progress { percent_done: 0.5, bytes_done: 50, total_bytes: Some(100), files_done: 2, total_files: 4, seconds_elapsed: 2 })
        );
        let s = parse_backup_line(r#"{"message_type":"summary","files_new":1,"files_changed":0,"files_unmodified":0,"dirs_new":1,"dirs_changed":0,"dirs_unmodified":0,"data_blobs":1,"tree_blobs":2,"data_added":708,"total_files_processed":1,"total_bytes_processed":6,"total_duration":0.242358707,"snapshot_id":"5c56c024"}"#).unwrap();
        let BackupLine::Summary(s) = s else { panic!("{s:?}") };
        assert_eq!((s.snapshot_id.as_str(), s.data_added, s.files_new, s.total_bytes_processed), ("5c56c024", 708, 1, 6));
        assert_eq!(s.duration.as_millis(), 242);
        assert_eq!(parse_backup_line(r#"{"message_type":"verbose_status","action":"new"}"#).unwrap(), BackupLine::Other);
    }

    #[test]
    fn broken_lines_keep_the_line() {
        let e = parse_backup_line("{\"message_type\": 3").unwrap_err();
        assert!(matches!(&e, BackupError::Parse { line, .. } if line.contains("message_type")), "{e}");
        let e = parse_backup_line(r#"{"message_type":"summary"}"#).unwrap_err();
        assert!(e.to_string().contains("snapshot_id"), "{e}");
    }

    #[test]
    fn snapshots_and_forget_groups() {
        let snaps: Vec<Snapshot> = parse_json("snapshots", r#"[{"time":"2026-12-07T22:21:41.555488107Z","tree":"86ac","paths":["/tmp/rt/d"],"hostname":"h1","username":"root","tags":["t1"],"id":"5c56c024dec3","short_id":"5c56c024"},{"time":"2026-12-07T23:21:41+01:00","tree":"11","hostname":"h2","id":"c3566c93aa","short_id":"c3566c93"}]"#).unwrap();
        assert_eq!(snaps.len(), 2);
        assert_eq!(snaps[0].tags, ["t1"]);
        assert!(snaps[1].tags.is_empty() && snaps[1].paths.is_empty());
        assert_eq!(snaps[0].time.unix_timestamp(), snaps[1].time.unix_timestamp());
        let f = parse_forget(br#"[{"tags":["t1"],"host":"h1","paths":null,"keep":[{"time":"2026-12-07T22:21:41Z","hostname":"h1","id":"aa","short_id":"aa"}],"remove":null,"reasons":[]}]"#).unwrap();
        assert_eq!((f.kept.len(), f.removed.len()), (1, 0));
        assert_eq!(parse_forget(b"\n").unwrap(), ForgetResult::default());
        let stats: RawStats = parse_json("stats", r#"{"total_size":1000824,"total_file_count":0,"total_blob_count":5,"snapshots_count":2}"#).unwrap();
        assert_eq!((stats.total_size, stats.snapshots_count), (1000824, 2));
    }
}
