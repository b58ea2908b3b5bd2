//! Small state files beside the segments (vote, purged position,
//! committed position): `<crc32c hex>\n<json>`, replaced atomically.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::WalError;

/// Writes `value` to `path` through a temporary file and a rename; with
/// `durable`, the file and the directory are synced first.
pub(crate) fn store<T: Serialize>(path: &Path, value: &T, durable: bool) -> Result<(), WalError> {
    let json = serde_json::to_vec(value).map_err(|e| WalError::Encode(e.to_string()))?;
    let mut text = format!("{:08x}\n", crc32c::crc32c(&json)).into_bytes();
    text.extend_from_slice(&json);
    let tmp = tmp_path(path);
    let io = |e| WalError::io(&tmp, e);
    let mut f = File::create(&tmp).map_err(io)?;
    f.write_all(&text).map_err(io)?;
    if durable {
        f.sync_data().map_err(io)?;
    }
    drop(f);
    fs::rename(&tmp, path).map_err(|e| WalError::io(path, e))?;
    if durable {
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

/// Reads a file written by [`store`]; `None` if it does not exist. A file
/// that fails its checksum or does not parse is an error naming it.
pub(crate) fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, WalError> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(WalError::io(path, e)),
    };
    let corrupt = |why: &str| WalError::Corrupt {
        file: path.to_path_buf(),
        offset: 0,
        detail: why.to_string(),
    };
    let nl = text
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| corrupt("no checksum line"))?;
    let want = std::str::from_utf8(&text[..nl])
        .ok()
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| corrupt("bad checksum line"))?;
    let json = &text[nl + 1..];
    if crc32c::crc32c(json) != want {
        return Err(corrupt("checksum mismatch"));
    }
    serde_json::from_slice(json)
        .map(Some)
        .map_err(|e| corrupt(&e.to_string()))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Makes a directory's entries (created, renamed, removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WalError::io(dir, e))
}
