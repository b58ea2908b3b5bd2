//! Damage on disk, made while the member is down: a torn tail is cut, a
//! flipped bit in a committed record or in a snapshot stops the start with
//! the file named, and damaged data is never served.

#![allow(clippy::unwrap_used, reason = "a panic is how a test reports failure")]

use std::fs::{self, OpenOptions};
use std::io::Write;

use swarm_raft::testing::{ScratchDir, entry, log_id};
use swarm_raft::{Wal, WalError, WalOptions};

fn segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

fn write_log(dir: &std::path::Path, n: u64, committed: Option<u64>) {
    let (mut wal, _) = Wal::open(dir, WalOptions::default()).unwrap();
    let es: Vec<_> = (0..n).map(|i| entry(1, i)).collect();
    wal.append(&es).unwrap();
    wal.sync().unwrap();
    if let Some(c) = committed {
        wal.save_committed(&Some(log_id(1, c))).unwrap();
    }
}

#[test]
fn a_torn_tail_is_cut_and_the_log_goes_on() {
    let dir = ScratchDir::new("torn");
    write_log(dir.path(), 10, Some(5));
    let seg = segment(dir.path());
    let full = fs::metadata(&seg).unwrap().len();
    // Half a record at the end: an append that never finished.
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&[9, 0, 0, 0, 1, 2])
        .unwrap();
    let (mut wal, rec) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(rec.entries.len(), 10);
    assert_eq!(rec.truncated_tail, 6);
    assert_eq!(fs::metadata(&seg).unwrap().len(), full);
    wal.append(&[entry(1, 10)]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, rec) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(rec.entries.len(), 11);
}

#[test]
fn damage_after_the_committed_index_is_an_unfinished_append() {
    let dir = ScratchDir::new("tail-bitflip");
    write_log(dir.path(), 10, Some(5));
    let seg = segment(dir.path());
    let mut bytes = fs::read(&seg).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x40;
    fs::write(&seg, &bytes).unwrap();
    let (_, rec) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(
        rec.entries.len(),
        9,
        "the damaged last (uncommitted) record is cut"
    );
}

#[test]
fn a_flipped_bit_in_a_committed_record_refuses_to_open_naming_file_and_offset() {
    let dir = ScratchDir::new("bitflip");
    write_log(dir.path(), 10, Some(9));
    let seg = segment(dir.path());
    let mut bytes = fs::read(&seg).unwrap();
    let record = bytes.len() / 10; // all records have the same size here
    let target = 3 * record + record / 2;
    bytes[target] ^= 0x01;
    fs::write(&seg, &bytes).unwrap();
    let err = Wal::open(dir.path(), WalOptions::default()).unwrap_err();
    match &err {
        WalError::Corrupt { file, offset, .. } => {
            assert_eq!(file, &seg);
            assert_eq!(*offset, 3 * record as u64);
        }
        other => panic!("expected corruption, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&seg.display().to_string()) && text.contains("offset"),
        "{text}"
    );
    // The file is left as it was for an operator to inspect.
    assert_eq!(fs::read(&seg).unwrap(), bytes);
}

#[test]
fn a_damaged_vote_file_refuses_to_open() {
    let dir = ScratchDir::new("vote");
    {
        let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        wal.save_vote(&swarm_raft::Vote::new(3, 1)).unwrap();
    }
    let path = dir.path().join("vote");
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len() - 2;
    bytes[n] ^= 0x08;
    fs::write(&path, bytes).unwrap();
    let err = Wal::open(dir.path(), WalOptions::default()).unwrap_err();
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
        },
    )
    .unwrap();
    let got: Vec<u64> = rec.entries.iter().map(|e| e.log_id.index).collect();
    assert_eq!(got, (26..35).collect::<Vec<_>>());
    assert_eq!(wal.next_index(), Some(35));
}
