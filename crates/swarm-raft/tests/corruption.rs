//! Damage on disk, made while the member is down: a torn tail is cut, a
//! flipped bit in a committed record or in a snapshot stops the start with
//! the file named, and damaged data is never served.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use swarm_raft::testing::{ScratchDir, entry, log_id};
use swarm_raft::{Wal, WalError, WalOptions};

/// Small preallocated segments (the default is 64 MB).
fn options() -> WalOptions {
    WalOptions {
        max_segment_bytes: 1 << 20,
        ..WalOptions::default()
    }
}

/// Writes `n` entries (and a committed position); returns the segment and
/// where its data ends (the file is longer: preallocated).
fn write_log(dir: &std::path::Path, n: u64, committed: Option<u64>) -> (PathBuf, u64) {
    let (mut wal, _) = Wal::open(dir, options()).unwrap();
    let es: Vec<_> = (0..n).map(|i| entry(1, i)).collect();
    wal.append(&es).unwrap();
    wal.sync().unwrap();
    if let Some(c) = committed {
        wal.save_committed(&Some(log_id(1, c))).unwrap();
    }
    wal.data_end().unwrap()
}

fn write_at(path: &std::path::Path, offset: u64, bytes: &[u8]) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .write_all_at(bytes, offset)
        .unwrap();
}

fn flip(path: &std::path::Path, offset: u64, mask: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= mask;
    fs::write(path, &bytes).unwrap();
}

#[test]
fn a_torn_tail_is_cut_and_the_log_goes_on() {
    let dir = ScratchDir::new("torn");
    let (seg, end) = write_log(dir.path(), 10, Some(5));
    // Half a record after the data: an append that never finished.
    write_at(&seg, end, &[9, 0, 0, 0, 1, 2]);
    let (mut wal, rec) = Wal::open(dir.path(), options()).unwrap();
    assert_eq!(rec.entries.len(), 10);
    assert_eq!(rec.truncated_tail, 6);
    assert_eq!(wal.data_end(), Some((seg.clone(), end)));
    assert!(
        fs::read(&seg).unwrap()[end as usize..]
            .iter()
            .all(|b| *b == 0),
        "the space after the cut is zeroed"
    );
    wal.append(&[entry(1, 10)]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, rec) = Wal::open(dir.path(), options()).unwrap();
    assert_eq!(rec.entries.len(), 11);
}

#[test]
fn stray_bytes_after_the_end_are_an_unfinished_append() {
    // A write that reached the disk in part: its start is still zeros, a
    // later block is not. Those bytes must not come back once new records
    // are written in front of them.
    let dir = ScratchDir::new("stray");
    let (seg, end) = write_log(dir.path(), 10, Some(5));
    write_at(&seg, end + 4096, &[0xAB; 100]);
    let (mut wal, rec) = Wal::open(dir.path(), options()).unwrap();
    assert_eq!(rec.entries.len(), 10);
    assert_eq!(rec.truncated_tail, 4096 + 100);
    wal.append(&[entry(1, 10)]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, rec) = Wal::open(dir.path(), options()).unwrap();
    assert_eq!(rec.entries.len(), 11);
    assert_eq!(rec.truncated_tail, 0);
}

#[test]
fn damage_after_the_committed_index_is_an_unfinished_append() {
    let dir = ScratchDir::new("tail-bitflip");
    let (seg, end) = write_log(dir.path(), 10, Some(5));
    flip(&seg, end - 3, 0x40);
    let (_, rec) = Wal::open(dir.path(), options()).unwrap();
    assert_eq!(
        rec.entries.len(),
        9,
        "the damaged last (uncommitted) record is cut"
    );
}

#[test]
fn a_flipped_bit_in_a_committed_record_refuses_to_open_naming_file_and_offset() {
    let dir = ScratchDir::new("bitflip");
    let (seg, end) = write_log(dir.path(), 10, Some(9));
    let record = end / 10; // all records have the same size here
    flip(&seg, 3 * record + record / 2, 0x01);
    let damaged = fs::read(&seg).unwrap();
    let err = Wal::open(dir.path(), options()).unwrap_err();
    match &err {
        WalError::Corrupt { file, offset, .. } => {
            assert_eq!(file, &seg);
            assert_eq!(*offset, 3 * record);
        }
        other => panic!("expected corruption, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&seg.display().to_string()) && text.contains("offset"),
        "{text}"
    );
    // The file is left as it was for an operator to inspect.
    assert_eq!(fs::read(&seg).unwrap(), damaged);
}

#[test]
fn a_zeroed_committed_record_refuses_to_open() {
    // A committed record whose header reads as zeros (a lost block) with
    // the rest of the log after it: not the end of the data.
    let dir = ScratchDir::new("zeroed");
    let (seg, end) = write_log(dir.path(), 10, Some(9));
    let record = end / 10;
    write_at(&seg, 4 * record, &[0; 16]);
    let err = Wal::open(dir.path(), options()).unwrap_err();
    assert!(
        matches!(&err, WalError::Corrupt { file, offset, .. } if file == &seg && *offset == 4 * record),
        "{err}"
    );
}

#[test]
fn a_damaged_vote_file_refuses_to_open() {
    let dir = ScratchDir::new("vote");
    {
        let (mut wal, _) = Wal::open(dir.path(), options()).unwrap();
        wal.save_vote(&swarm_raft::Vote::new(3, 1)).unwrap();
    }
    let path = dir.path().join("vote");
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len() - 2;
    bytes[n] ^= 0x08;
    fs::write(&path, bytes).unwrap();
    let err = Wal::open(dir.path(), options()).unwrap_err();
    assert!(err.to_string().contains("vote"), "{err}");
}

#[test]
fn segments_rotate_and_reopen_intact() {
    let dir = ScratchDir::new("rotate");
    {
        let (mut wal, _) = Wal::open(
            dir.path(),
            WalOptions {
                max_segment_bytes: 300,
                ..WalOptions::default()
            },
        )
        .unwrap();
        for i in 0..40 {
            wal.append(&[entry(1, i)]).unwrap();
        }
        wal.sync().unwrap();
        assert!(wal.segment_paths().len() > 3, "{:?}", wal.segment_paths());
        wal.purge(log_id(1, 25)).unwrap();
        wal.truncate(35).unwrap();
    }
    let (wal, rec) = Wal::open(
        dir.path(),
        WalOptions {
            max_segment_bytes: 300,
            ..WalOptions::default()
        },
    )
    .unwrap();
    let got: Vec<u64> = rec.entries.iter().map(|e| e.log_id.index).collect();
    assert_eq!(got, (26..35).collect::<Vec<_>>());
    assert_eq!(wal.next_index(), Some(35));
}
