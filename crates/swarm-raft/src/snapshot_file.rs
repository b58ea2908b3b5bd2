//! Snapshot files: `SWSNAP2\n`, a header (JSON metadata), a CRC-32C of
//! the header and the payload together, then the payload (the store as
//! protobuf). Written to a temporary file, synced and renamed, so a crash
//! while writing leaves the previous snapshot in place (and a `.snap.tmp`
//! file that the next start removes).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::codec::{Dec, Enc, from_json, json};
use crate::types::SnapshotMeta;
use crate::wal::{WalError, meta::sync_dir};

const MAGIC: &[u8] = b"SWSNAP2\n";

/// A snapshot read back from disk.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) path: PathBuf,
    pub(crate) meta: SnapshotMeta,
    pub(crate) data: Vec<u8>,
}

fn file_name(meta: &SnapshotMeta) -> String {
    let index = meta.last_log_id.map_or(0, |l| l.index);
    format!("{index:020}-{}.snap", meta.snapshot_id)
}

/// Writes a snapshot durably and removes older ones beyond `keep`.
pub(crate) fn save(
    dir: &Path,
    meta: &SnapshotMeta,
    data: &[u8],
    keep: usize,
) -> Result<PathBuf, WalError> {
    fs::create_dir_all(dir).map_err(|e| WalError::io(dir, e))?;
    let mut enc = Enc::default();
    enc.0.extend_from_slice(MAGIC);
    let header = json(meta);
    enc.bytes(&header);
    enc.u64(u64::from(checksum(&header, data)));
    enc.bytes(data);
    let path = dir.join(file_name(meta));
    let tmp = path.with_extension("snap.tmp");
    let io = |e| WalError::io(&tmp, e);
    let mut f = fs::File::create(&tmp).map_err(io)?;
    f.write_all(&enc.0).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    fs::rename(&tmp, &path).map_err(|e| WalError::io(&path, e))?;
    sync_dir(dir)?;
    let mut all = list(dir)?;
    all.reverse();
    for old in all.into_iter().skip(keep.max(1)) {
        fs::remove_file(&old).map_err(|e| WalError::io(&old, e))?;
    }
    Ok(path)
}

/// Snapshot files, oldest first; leftovers of interrupted writes are removed.
fn list(dir: &Path) -> Result<Vec<PathBuf>, WalError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(WalError::io(dir, e)),
    };
    for item in entries {
        let path = item.map_err(|e| WalError::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".snap.tmp") {
            fs::remove_file(&path).map_err(|e| WalError::io(&path, e))?;
        } else if name.ends_with(".snap") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Reads the newest snapshot, verifying it. A damaged file is an error
/// naming it: its data is never used.
pub(crate) fn load_latest(dir: &Path) -> Result<Option<Loaded>, WalError> {
    let Some(path) = list(dir)?.pop() else {
        return Ok(None);
    };
    load(&path).map(Some)
}

/// The checksum of a snapshot: header and payload.
fn checksum(header: &[u8], data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(header), data)
}

/// Reads and verifies one snapshot file.
pub(crate) fn load(path: &Path) -> Result<Loaded, WalError> {
    let bytes = fs::read(path).map_err(|e| WalError::io(path, e))?;
    let corrupt = |detail: String| WalError::CorruptSnapshot {
        file: path.to_path_buf(),
        detail,
    };
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| corrupt("not a snapshot file of this version".into()))?;
    let mut dec = Dec::new(body);
    let header = dec
        .bytes("snapshot header")
        .map_err(|e| corrupt(e.to_string()))?;
    let crc = dec
        .u64("snapshot checksum")
        .map_err(|e| corrupt(e.to_string()))?;
    let data = dec
        .bytes("snapshot data")
        .map_err(|e| corrupt(e.to_string()))?;
    if !dec.is_empty() {
        return Err(corrupt("trailing bytes after the snapshot".into()));
    }
    if u64::from(checksum(header, data)) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    // Only parsed once its checksum has passed.
    let meta: SnapshotMeta =
        from_json(header, "snapshot header").map_err(|e| corrupt(e.to_string()))?;
    Ok(Loaded {
        path: path.to_path_buf(),
        meta,
        data: data.to_vec(),
    })
}
