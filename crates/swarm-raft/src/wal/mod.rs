//! The write-ahead log: segment files of checksummed records, plus small
//! state files for the vote and the purged and committed positions.
//!
//! Layout of a directory:
//!
//! ```text
//! 00000000000000000000.wal   records with indexes 0..   (name: first index)
//! 00000000000000004096.wal   records with indexes 4096..
//! vote                       <crc>\n<json>   synced before a vote is answered
//! purged                     <crc>\n<json>   synced before segments are deleted
//! committed                  <crc>\n<json>   written lazily, not synced
//! ```
//!
//! Segments are preallocated to their full size (`fallocate`) when
//! created, and records are written into that space: the file's size does
//! not change with each append, so an `fdatasync` writes the data alone
//! (on ext4 without a journal, growing the file costs a second write for
//! the inode on every sync). The data of a segment ends where a record
//! header is all zeros; beyond it, the segment is zeros.
//!
//! On open, every segment is read and every record's checksum verified. A
//! damaged record at or below the last known committed index stops the
//! open with [`WalError::Corrupt`] naming the file and offset: that data
//! was acknowledged and is gone, and serving around it would be wrong. A
//! damaged or partial record above it, or stray bytes after the end of
//! the data, can only be an append that never finished its fsync (so it
//! was never acknowledged): the log is cut there, and the space after the
//! cut is zeroed again.

pub(crate) mod meta;
pub(crate) mod record;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::codec::{CodecError, encode_entry_to, entry_from_bytes, size_hint};
use crate::types::{Entry, LogId, Vote};

/// Why the log could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// An I/O error on a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Data that fails its checksum, or does not decode, where it must be
    /// good. The log refuses to open rather than serve around it.
    #[error("corrupt write-ahead log {} at offset {offset}: {detail}", file.display())]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// A snapshot file that fails its checksum or does not decode. Its
    /// data is not used.
    #[error("corrupt snapshot {}: {detail}", file.display())]
    CorruptSnapshot {
        /// The damaged file.
        file: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Entries appended out of order.
    #[error("append of index {got} where index {want} was expected")]
    OutOfOrder {
        /// The index expected next.
        want: u64,
        /// The index given.
        got: u64,
    },
    /// A value could not be encoded.
    #[error("encode: {0}")]
    Encode(String),
}

impl WalError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        WalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Tuning of the log.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// A new segment is started once the current one exceeds this size.
    pub max_segment_bytes: u64,
    /// Allocate each segment's space when it is created (see the module
    /// documentation). Without it, every sync also writes the grown size.
    pub preallocate: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            max_segment_bytes: 64 * 1024 * 1024,
            preallocate: true,
        }
    }
}

/// Allocates the space of a segment up to `size` bytes (data already there
/// is kept; the new space reads as zeros). A file system that cannot does
/// without.
fn preallocate(f: &File, path: &Path, size: u64) -> Result<(), WalError> {
    #[cfg(target_os = "linux")]
    {
        use nix::errno::Errno;
        use nix::fcntl::{FallocateFlags, fallocate};
        let len = i64::try_from(size).unwrap_or(i64::MAX);
        match fallocate(f, FallocateFlags::empty(), 0, len) {
            Ok(()) | Err(Errno::EOPNOTSUPP) => Ok(()),
            Err(e) => Err(WalError::io(path, e.into())),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (f, path, size);
        Ok(())
    }
}

/// Whether `b` holds only zeros (compared in blocks: a preallocated
/// segment is mostly zeros).
fn all_zero(b: &[u8]) -> bool {
    const ZEROS: [u8; 4096] = [0; 4096];
    b.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

/// Cuts a segment's data at `len` and zeroes the space after it (stray
/// bytes of an unfinished append must not be read back later), durably.
fn cut(path: &Path, len: u64, options: &WalOptions) -> Result<File, WalError> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| WalError::io(path, e))?;
    f.set_len(len).map_err(|e| WalError::io(path, e))?;
    if options.preallocate {
        preallocate(&f, path, options.max_segment_bytes)?;
    }
    f.sync_all().map_err(|e| WalError::io(path, e))?;
    Ok(f)
}

/// What opening a log found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The entries after the purged position, in order.
    pub entries: Vec<Entry>,
    /// The last vote saved.
    pub vote: Option<Vote>,
    /// The last committed position saved (possibly behind).
    pub committed: Option<LogId>,
    /// The position up to which entries were purged.
    pub purged: Option<LogId>,
    /// Bytes cut from the end of the log (an unfinished append).
    pub truncated_tail: u64,
}

#[derive(Debug)]
struct Segment {
    first: u64,
    path: PathBuf,
}

#[derive(Debug, Clone, Copy)]
struct Loc {
    /// Position of the segment in `segments`.
    segment: usize,
    offset: u64,
}

/// Counters for group-commit statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WalStats {
    /// Entries written.
    pub entries: u64,
    /// `fdatasync` calls on segments.
    pub syncs: u64,
}

/// How much of the segment being appended to is known to be on disk: the
/// bytes past `synced` (up to `written`) were written but no `fdatasync`
/// covering them has finished, so a power loss may take them. For crash
/// drills (see [`crate::testing::lose_unsynced`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalExtent {
    /// The segment file being appended to.
    pub segment: PathBuf,
    /// Where its data ends.
    pub written: u64,
    /// Where the data covered by the last finished sync ends.
    pub synced: u64,
}

/// A sync of the current segment made without holding the log (see
/// [`Wal::sync_target`]).
#[derive(Debug)]
pub struct SyncTarget {
    /// A handle on the segment.
    pub file: File,
    /// Its path, for errors.
    pub path: PathBuf,
    /// Where its data ended when the handle was taken.
    len: u64,
    /// The log's cut counter then.
    cuts: u64,
}

/// The write-ahead log files of one member.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    segments: Vec<Segment>,
    /// The last segment, open for appending.
    file: Option<File>,
    /// Where the data of the last segment ends (its file may be longer:
    /// preallocated).
    file_len: u64,
    /// Location of every entry from `first_index` on.
    locs: VecDeque<Loc>,
    first_index: u64,
    /// Index the next append must have (`None`: empty log, nothing purged).
    next_index: Option<u64>,
    dir_dirty: bool,
    stats: WalStats,
    /// How much of the last segment's data a finished sync covers.
    synced: u64,
    /// Bumped whenever the last segment changes or its data is cut, so
    /// that a sync begun before does not count for the new data.
    cuts: u64,
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.wal")
}

impl Wal {
    /// Opens (or creates) the log in `dir`, verifying every record.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Wal, Recovered), WalError> {
        fs::create_dir_all(dir).map_err(|e| WalError::io(dir, e))?;
        let vote: Option<Vote> = meta::load(&dir.join("vote"))?;
        let purged: Option<LogId> = meta::load(&dir.join("purged"))?;
        let committed: Option<LogId> = meta::load(&dir.join("committed"))?;
        let purged_index = purged.map(|p| p.index);
        let committed_index = committed.map(|c| c.index);

        let mut found: Vec<Segment> = Vec::new();
        for item in fs::read_dir(dir).map_err(|e| WalError::io(dir, e))? {
            let item = item.map_err(|e| WalError::io(dir, e))?;
            let name = item.file_name();
            let Some(first) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".wal"))
                .and_then(|n| n.parse().ok())
            else {
                continue;
            };
            found.push(Segment {
                first,
                path: item.path(),
            });
        }
        found.sort_by_key(|s| s.first);

        let mut wal = Wal {
            dir: dir.to_path_buf(),
            options,
            segments: Vec::new(),
            file: None,
            file_len: 0,
            locs: VecDeque::new(),
            first_index: purged_index.map_or(0, |p| p + 1),
            next_index: purged_index.map(|p| p + 1),
            dir_dirty: false,
            stats: WalStats::default(),
            synced: 0,
            cuts: 0,
        };
        let mut recovered = Recovered {
            vote,
            committed,
            purged,
            ..Recovered::default()
        };
        let mut cut_rest = false;
        for seg in found {
            if cut_rest {
                fs::remove_file(&seg.path).map_err(|e| WalError::io(&seg.path, e))?;
                wal.dir_dirty = true;
                continue;
            }
            let data = fs::read(&seg.path).map_err(|e| WalError::io(&seg.path, e))?;
            let position = wal.segments.len();
            let mut offset = 0usize;
            let mut expected = seg.first;
            let mut kept_any = false;
            loop {
                let bad = match record::read(&data, offset) {
                    record::Read::End if all_zero(&data[offset..]) => break,
                    record::Read::End => Some("stray bytes after the end of the data".to_string()),
                    record::Read::Record {
                        index,
                        payload,
                        next,
                    } => {
                        if index != expected {
                            Some(format!("index {index} where {expected} was expected"))
                        } else if purged_index.is_some_and(|p| index <= p) {
                            offset = next;
                            expected += 1;
                            continue;
                        } else {
                            if wal.next_index.is_some_and(|n| n != index) {
                                return Err(WalError::Corrupt {
                                    file: seg.path.clone(),
                                    offset: offset as u64,
                                    detail: format!(
                                        "gap: index {index} follows {:?}",
                                        wal.next_index
                                    ),
                                });
                            }
                            let entry = entry_from_bytes(payload).map_err(|e: CodecError| {
                                WalError::Corrupt {
                                    file: seg.path.clone(),
                                    offset: offset as u64,
                                    detail: e.to_string(),
                                }
                            })?;
                            if wal.locs.is_empty() {
                                wal.first_index = index;
                            }
                            wal.locs.push_back(Loc {
                                segment: position,
                                offset: offset as u64,
                            });
                            recovered.entries.push(entry);
                            wal.next_index = Some(index + 1);
                            kept_any = true;
                            offset = next;
                            expected += 1;
                            None
                        }
                    }
                    record::Read::Partial => Some("record cut short".to_string()),
                    record::Read::Bad => Some("checksum mismatch".to_string()),
                };
                if let Some(detail) = bad {
                    if committed_index.is_some_and(|c| expected <= c) {
                        return Err(WalError::Corrupt {
                            file: seg.path.clone(),
                            offset: offset as u64,
                            detail,
                        });
                    }
                    // An append that never completed: cut the log here.
                    tracing::warn!(file = %seg.path.display(), offset, %detail, "cutting unfinished tail of the log");
                    let stray = data[offset..]
                        .iter()
                        .rposition(|b| *b != 0)
                        .map_or(0, |p| p + 1);
                    recovered.truncated_tail += stray as u64;
                    cut(&seg.path, offset as u64, &wal.options)?;
                    cut_rest = true;
                    break;
                }
            }
            let len = offset as u64;
            if !kept_any && len == 0 && cut_rest {
                fs::remove_file(&seg.path).map_err(|e| WalError::io(&seg.path, e))?;
                wal.dir_dirty = true;
                continue;
            }
            wal.segments.push(seg);
            wal.file_len = len;
        }
        if let Some(last) = wal.segments.last() {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&last.path)
                .map_err(|e| WalError::io(&last.path, e))?;
            if wal.options.preallocate {
                preallocate(&f, &last.path, wal.options.max_segment_bytes)?;
            }
            wal.file = Some(f);
        }
        if wal.dir_dirty {
            meta::sync_dir(dir)?;
            wal.dir_dirty = false;
        }
        Ok((wal, recovered))
    }

    /// Index the next append must have, if fixed yet.
    pub fn next_index(&self) -> Option<u64> {
        self.next_index
    }

    /// Writes entries (not yet durable: see [`Wal::sync`]).
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut want = self.next_index.unwrap_or(first.log_id.index);
        let mut buf =
            Vec::with_capacity(entries.iter().map(|e| record::HEADER + size_hint(e)).sum());
        let mut offsets = Vec::with_capacity(entries.len());
        for e in entries {
            if e.log_id.index != want {
                return Err(WalError::OutOfOrder {
                    want,
                    got: e.log_id.index,
                });
            }
            offsets.push(buf.len() as u64);
            record::encode_with(&mut buf, want, |out| encode_entry_to(out, e));
            want += 1;
        }
        if self.file.is_none()
            || (self.file_len > 0
                && self.file_len + buf.len() as u64 > self.options.max_segment_bytes)
        {
            self.rotate(first.log_id.index)?;
        }
        let position = self.segments.len() - 1;
        let path = &self.segments[position].path;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| WalError::io(path, std::io::Error::other("no open segment")))?;
        file.write_all_at(&buf, self.file_len)
            .map_err(|e| WalError::io(path, e))?;
        if self.locs.is_empty() {
            self.first_index = first.log_id.index;
        }
        for off in offsets {
            self.locs.push_back(Loc {
                segment: position,
                offset: self.file_len + off,
            });
        }
        self.file_len += buf.len() as u64;
        self.next_index = Some(want);
        self.stats.entries += entries.len() as u64;
        Ok(())
    }

    /// Starts a new segment whose first entry is `first`.
    fn rotate(&mut self, first: u64) -> Result<(), WalError> {
        if let Some(f) = self.file.take() {
            let path = &self.segments[self.segments.len() - 1].path;
            f.sync_data().map_err(|e| WalError::io(path, e))?;
        }
        let path = self.dir.join(segment_name(first));
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| WalError::io(&path, e))?;
        if self.options.preallocate {
            preallocate(&f, &path, self.options.max_segment_bytes)?;
        }
        self.segments.push(Segment { first, path });
        self.file = Some(f);
        self.file_len = 0;
        self.synced = 0;
        self.cuts += 1;
        self.dir_dirty = true;
        Ok(())
    }

    /// Makes every written entry durable (`fdatasync`, and the directory
    /// when a segment was created).
    pub fn sync(&mut self) -> Result<(), WalError> {
        if let (Some(f), Some(seg)) = (&self.file, self.segments.last()) {
            f.sync_data().map_err(|e| WalError::io(&seg.path, e))?;
            self.stats.syncs += 1;
            self.synced = self.file_len;
        }
        if self.dir_dirty {
            meta::sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// A handle on the segment being appended to, to sync it without
    /// holding the log (`fdatasync` on it makes everything written to the
    /// log before durable, since earlier segments were synced when they
    /// were closed). `None` before the first append.
    pub fn sync_target(&self) -> Result<Option<SyncTarget>, WalError> {
        let (Some(f), Some(seg)) = (&self.file, self.segments.last()) else {
            return Ok(None);
        };
        let file = f.try_clone().map_err(|e| WalError::io(&seg.path, e))?;
        Ok(Some(SyncTarget {
            file,
            path: seg.path.clone(),
            len: self.file_len,
            cuts: self.cuts,
        }))
    }

    /// Records a finished sync made through [`Wal::sync_target`]: it
    /// covers the data written before the target was taken, unless the
    /// segment changed or was cut since.
    pub fn synced_through(&mut self, target: &SyncTarget) {
        self.stats.syncs += 1;
        if target.cuts == self.cuts {
            self.synced = self.synced.max(target.len);
        }
    }

    /// How much of the segment being appended to is on disk. `None` while
    /// the log has no segment.
    pub fn extent(&self) -> Option<WalExtent> {
        self.segments.last().map(|s| WalExtent {
            segment: s.path.clone(),
            written: self.file_len,
            synced: self.synced,
        })
    }

    /// Whether a segment was created since the last sync (its directory
    /// entry is not durable yet: only [`Wal::sync`] syncs it).
    pub fn dir_dirty(&self) -> bool {
        self.dir_dirty
    }

    /// Removes every entry with index `since` or above, durably.
    pub fn truncate(&mut self, since: u64) -> Result<(), WalError> {
        let Some(next) = self.next_index else {
            return Ok(());
        };
        if since >= next {
            return Ok(());
        }
        if since < self.first_index {
            return self.drop_all(since);
        }
        let k = usize::try_from(since - self.first_index).unwrap_or(usize::MAX);
        let Some(loc) = self.locs.get(k).copied() else {
            return Ok(());
        };
        self.file = None;
        while self.segments.len() > loc.segment + 1 {
            if let Some(seg) = self.segments.pop() {
                fs::remove_file(&seg.path).map_err(|e| WalError::io(&seg.path, e))?;
            }
        }
        let seg = &self.segments[loc.segment];
        self.file = Some(cut(&seg.path, loc.offset, &self.options)?);
        self.file_len = loc.offset;
        self.synced = loc.offset;
        self.cuts += 1;
        self.locs.truncate(k);
        self.next_index = Some(since);
        meta::sync_dir(&self.dir)?;
        Ok(())
    }

    /// Forgets every entry up to and including `upto` (covered by a
    /// snapshot), deleting the segments that hold nothing newer.
    pub fn purge(&mut self, upto: LogId) -> Result<(), WalError> {
        meta::store(&self.dir.join("purged"), &upto, true)?;
        let next = self.next_index.unwrap_or(0);
        if upto.index + 1 >= next {
            return self.drop_all(upto.index + 1);
        }
        let drop_n = usize::try_from((upto.index + 1).saturating_sub(self.first_index))
            .unwrap_or(usize::MAX);
        let drop_n = drop_n.min(self.locs.len());
        self.locs.drain(..drop_n);
        self.first_index = upto.index + 1;
        // Whole segments before the one holding the first kept entry go.
        let keep_from = self
            .locs
            .front()
            .map_or(self.segments.len().saturating_sub(1), |l| l.segment);
        if keep_from > 0 {
            for seg in self.segments.drain(..keep_from) {
                fs::remove_file(&seg.path).map_err(|e| WalError::io(&seg.path, e))?;
            }
            for l in &mut self.locs {
                l.segment -= keep_from;
            }
            meta::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Deletes every segment; the next entry will have index `next`.
    fn drop_all(&mut self, next: u64) -> Result<(), WalError> {
        self.file = None;
        for seg in self.segments.drain(..) {
            fs::remove_file(&seg.path).map_err(|e| WalError::io(&seg.path, e))?;
        }
        self.locs.clear();
        self.first_index = next;
        self.next_index = Some(next);
        self.file_len = 0;
        self.synced = 0;
        self.cuts += 1;
        meta::sync_dir(&self.dir)?;
        Ok(())
    }

    /// Saves the vote durably.
    pub fn save_vote(&mut self, vote: &Vote) -> Result<(), WalError> {
        meta::store(&self.dir.join("vote"), vote, true)
    }

    /// Saves the committed position (lazily: not synced).
    pub fn save_committed(&mut self, committed: &Option<LogId>) -> Result<(), WalError> {
        match committed {
            Some(c) => meta::store(&self.dir.join("committed"), c, false),
            None => Ok(()),
        }
    }

    /// Group-commit counters.
    pub fn stats(&self) -> WalStats {
        self.stats
    }

    /// The segment being appended to and where its data ends (the file
    /// itself is longer when preallocated).
    pub fn data_end(&self) -> Option<(PathBuf, u64)> {
        self.segments
            .last()
            .map(|s| (s.path.clone(), self.file_len))
    }

    /// Paths of the segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }
}
