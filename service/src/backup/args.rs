//! The values that become restic arguments, validated when they are made: nothing reaches
//! restic's command line that could be read as a flag, split on a comma, or widen a filter.
use std::fmt;
use std::path::Path;

use super::error::BackupError;

/// A snapshot tag: `[A-Za-z0-9_.:=@+-]`, 1 to 128 characters, not starting with `-`. No comma
/// (restic splits `--tag a,b` on it) and no spaces.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: impl Into<String>) -> Result<Self, BackupError> {
        let s = s.into();
        let ok = (1..=128).contains(&s.len())
            && !s.starts_with('-')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.:=@+-".contains(c));
        if ok { Ok(Self(s)) } else { Err(BackupError::invalid("tag", format!("{s:?} (allowed: A-Z a-z 0-9 _ . : = @ + -, 1 to 128)"))) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A snapshot id as restic prints it: 8 (short) to 64 (full) lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SnapshotId(String);

impl SnapshotId {
    pub fn parse(s: impl Into<String>) -> Result<Self, BackupError> {
        let s = s.into();
        let ok = (8..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok { Ok(Self(s)) } else { Err(BackupError::invalid("snapshot id", format!("{s:?} (8 to 64 lowercase hex digits)"))) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which snapshots a call looks at. Empty means all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// Snapshots carrying every one of these tags.
    pub tags: Vec<Tag>,
    /// Snapshots written by this host only.
    pub host: Option<String>,
    /// These snapshots only.
    pub ids: Vec<SnapshotId>,
}

impl SnapshotFilter {
    /// Snapshots carrying every one of `tags`.
    pub fn tagged(tags: impl IntoIterator<Item = Tag>) -> Self {
        Self { tags: tags.into_iter().collect(), ..Self::default() }
    }

    /// These snapshots only.
    pub fn ids(ids: impl IntoIterator<Item = SnapshotId>) -> Self {
        Self { ids: ids.into_iter().collect(), ..Self::default() }
    }

    /// Flags (`--tag a,b`, `--host h`) and positionals (the ids).
    pub(crate) fn to_args(&self) -> Result<(Vec<String>, Vec<String>), BackupError> {
        let mut flags = Vec::new();
        if !self.tags.is_empty() {
            flags.push("--tag".to_string());
            flags.push(self.tags.iter().map(Tag::as_str).collect::<Vec<_>>().join(","));
        }
        if let Some(host) = &self.host {
            validate_host(host)?;
            flags.push("--host".to_string());
            flags.push(host.clone());
        }
        Ok((flags, self.ids.iter().map(|i| i.0.clone()).collect()))
    }
}

/// How many snapshots `forget` keeps per group: the last N days, M weeks, K months that have a
/// snapshot (restic's `--keep-daily/--keep-weekly/--keep-monthly`). Bounded, and never all zero:
/// a policy that keeps nothing would be a way to delete every backup by mistake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeepPolicy {
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

impl KeepPolicy {
    pub const MAX_DAILY: u32 = 366;
    pub const MAX_WEEKLY: u32 = 520;
    pub const MAX_MONTHLY: u32 = 240;

    pub fn new(daily: u32, weekly: u32, monthly: u32) -> Result<Self, BackupError> {
        let p = Self { daily, weekly, monthly };
        p.validate()?;
        Ok(p)
    }

    pub fn validate(&self) -> Result<(), BackupError> {
        if self.daily == 0 && self.weekly == 0 && self.monthly == 0 {
            return Err(BackupError::invalid("keep policy", "keeps nothing: at least one of daily, weekly, monthly must be above 0"));
        }
        for (what, n, max) in [("daily", self.daily, Self::MAX_DAILY), ("weekly", self.weekly, Self::MAX_WEEKLY), ("monthly", self.monthly, Self::MAX_MONTHLY)] {
            if n > max {
                return Err(BackupError::invalid("keep policy", format!("{what} {n} is above {max}")));
            }
        }
        Ok(())
    }

    pub(crate) fn to_args(self) -> Vec<String> {
        let mut args = Vec::new();
        for (flag, n) in [("--keep-daily", self.daily), ("--keep-weekly", self.weekly), ("--keep-monthly", self.monthly)] {
            if n > 0 {
                args.push(flag.to_string());
                args.push(n.to_string());
            }
        }
        args
    }
}

/// The host name recorded in a snapshot: a DNS-label-like name, 1 to 253 characters.
pub(crate) fn validate_host(host: &str) -> Result<(), BackupError> {
    let ok = (1..=253).contains(&host.len())
        && !host.starts_with(['-', '.'])
        && host.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
    if ok { Ok(()) } else { Err(BackupError::invalid("host", format!("{host:?} (A-Z a-z 0-9 - . _, 1 to 253)"))) }
}

/// The name a stdin backup is stored under (`/NAME` in the snapshot): one plain file name.
pub(crate) fn validate_stdin_name(name: &str) -> Result<(), BackupError> {
    let ok = (1..=128).contains(&name.len())
        && !name.starts_with(['-', '.'])
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
    if ok { Ok(()) } else { Err(BackupError::invalid("stdin name", format!("{name:?} (A-Z a-z 0-9 - . _, 1 to 128)"))) }
}

/// A path inside a snapshot (for `dump`, `restore --include`): absolute, no control characters
/// and no glob characters (an include pattern must name one file or folder, not a set).
pub(crate) fn validate_snapshot_path(path: &Path) -> Result<String, BackupError> {
    let s = path.to_str().ok_or_else(|| BackupError::invalid("path", format!("{} is not UTF-8", path.display())))?;
    let ok = s.starts_with('/') && s.len() <= 4096 && !s.chars().any(|c| c.is_control() || "*?[]\\".contains(c));
    if ok { Ok(s.to_string()) } else { Err(BackupError::invalid("path", format!("{s:?} (absolute, no control or glob characters)"))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_refuse_commas_spaces_and_flags() {
        for ok in ["site:42", "kind=disk", "a", "node-1.example"] {
            Tag::parse(ok).unwrap();
        }
        for bad in ["", "a,b", "a b", "-x", "é", &"x".repeat(129)] {
            assert!(Tag::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn snapshot_ids_are_hex() {
        SnapshotId::parse("5c56c024").unwrap();
        SnapshotId::parse("5c56c024dec3dbd8d51ee5e441519a96b81ce2549cd9cd726f8f947bf08e7947").unwrap();
        for bad in ["latest", "5c56c02", "5C56C024", "--help", "5c56c024 x"] {
            assert!(SnapshotId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keep_policy_is_bounded_and_never_empty() {
        assert_eq!(KeepPolicy::new(7, 4, 0).unwrap().to_args(), ["--keep-daily", "7", "--keep-weekly", "4"]);
        assert!(KeepPolicy::new(0, 0, 0).is_err());
        assert!(KeepPolicy::new(367, 0, 0).is_err());
        assert!(KeepPolicy::new(0, 521, 0).is_err());
        assert!(KeepPolicy::new(0, 0, 241).is_err());
    }

    #[test]
    fn filter_ands_tags_in_one_flag() {
        let f = SnapshotFilter { tags: vec![Tag::parse("site:1").unwrap(), Tag::parse("disk").unwrap()], host: Some("node1".into()), ids: vec![] };
        let (flags, pos) = f.to_args().unwrap();
        assert_eq!(flags, ["--tag", "site:1,disk", "--host", "node1"]);
        assert!(pos.is_empty());
        let bad = SnapshotFilter { host: Some("-rf".into()), ..Default::default() };
        assert!(bad.to_args().is_err());
    }

    #[test]
    fn snapshot_paths_are_absolute_and_literal() {
        assert_eq!(validate_snapshot_path(Path::new("/disk.qcow2")).unwrap(), "/disk.qcow2");
        for bad in ["disk", "/a/*", "/a?", "/a\nb"] {
            assert!(validate_snapshot_path(Path::new(bad)).is_err(), "{bad:?}");
        }
        assert!(validate_stdin_name("disk.qcow2").is_ok());
        assert!(validate_stdin_name("../x").is_err());
        assert!(validate_host("node-1.example").is_ok());
    }
}
