//! Opening: creation, format version, refusing what is not a Cairn store.

use cairn_storage::Cause;
use cairn_storage::NodeStore;
use cairn_storage::StorageError;
use cairn_storage::Subject;
use cairn_storage::FORMAT_VERSION;

use crate::common::*;

fn open_err(path: &std::path::Path) -> StorageError {
    match NodeStore::open(path, small_options()) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e,
    }
}

fn version_key() -> Vec<u8> {
    let mut key = u64::MAX.to_be_bytes().to_vec();
    key.push(b'S');
    key.extend_from_slice(b"format_version");
    key
}

#[test]
fn creates_missing_and_empty_directories_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/store");
    drop(open(&nested));
    drop(open(&nested));

    let empty = tempfile::tempdir().unwrap();
    drop(open(empty.path()));
    let raw = rocksdb::DB::open_default(empty.path()).unwrap();
    assert_eq!(
        raw.get(version_key()).unwrap(),
        Some(FORMAT_VERSION.to_be_bytes().to_vec())
    );
}

#[test]
fn refuses_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"hello").unwrap();
    let e = open_err(&file);
    assert!(matches!(e.source, Cause::NotAStore { .. }), "{e}");
    assert_eq!(e.subject, Subject::Open);
    assert_eq!(std::fs::read(&file).unwrap(), b"hello");
}

#[test]
fn refuses_a_non_empty_directory_without_touching_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let e = open_err(dir.path());
    assert!(matches!(e.source, Cause::NotAStore { .. }), "{e}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);
}

#[test]
fn refuses_a_foreign_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    {
        let raw = rocksdb::DB::open_default(dir.path()).unwrap();
        raw.put(b"someone else's key", b"v").unwrap();
    }
    let e = open_err(dir.path());
    assert!(matches!(e.source, Cause::NotAStore { .. }), "{e}");
}

#[test]
fn refuses_another_format_version() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    {
        let raw = rocksdb::DB::open_default(dir.path()).unwrap();
        raw.put(version_key(), 99u32.to_be_bytes()).unwrap();
    }
    let e = open_err(dir.path());
    assert!(
        matches!(e.source, Cause::FormatVersion { found: 99, expected } if expected == FORMAT_VERSION),
        "{e}"
    );
    {
        let raw = rocksdb::DB::open_default(dir.path()).unwrap();
        raw.put(version_key(), b"x").unwrap();
    }
    let e = open_err(dir.path());
    assert!(e.is_corruption(), "{e}");
}

#[test]
fn a_store_cannot_be_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let e = open_err(dir.path());
    assert!(matches!(e.source, Cause::RocksDb(_)), "{e}");
    drop(first);
    // Closing the last handle (syncer thread included) releases the lock.
    drop(open(dir.path()));
}
