//! Real inotify on temp directories. Absence of a notification is never concluded from
//! waiting: every "nothing fired" first waits for the watcher's own count of checked
//! bursts (a rewrite of the file with the bytes it already has is the fence, since the
//! kernel reports a directory's events in order), then reads what it decided.

use super::*;
use notify::event::{CreateKind, ModifyKind, RenameMode};
use std::fs;
use std::os::unix::fs::symlink;

const DEADLINE: Duration = Duration::from_secs(10);
const QUICK: Duration = Duration::from_millis(50);

/// Waits (bounded) for the next notification.
async fn next_change(w: &mut Watcher) {
    tokio::time::timeout(DEADLINE, w.changed())
        .await
        .expect("a notification within the deadline")
        .expect("the watch is running");
}

/// Waits (bounded) until `n` bursts have been checked, and returns the count then.
async fn bursts(w: &Watcher, n: u64) -> Stats {
    let mut stats = w.stats();
    let s = tokio::time::timeout(DEADLINE, stats.wait_for(|s| s.bursts >= n))
        .await
        .expect("bursts checked within the deadline")
        .expect("the watch is running");
    *s
}

/// Rewrites `path` with its own bytes as a fence, then checks that, all told, exactly
/// `fired` notifications were given and none is left pending.
async fn settled(w: &mut Watcher, path: &Path, fired: u64) {
    settled_after(w, fired, || {
        fs::write(path, fs::read(path).unwrap()).unwrap()
    })
    .await;
}

/// Like `settled`, with `fence` as the change that leaves the bytes alone.
async fn settled_after(w: &mut Watcher, fired: u64, fence: impl FnOnce()) {
    // The test runtime is single-threaded and the loop counts a burst in the same poll
    // that sends its notification, so this count includes every notification received.
    let before = w.stats().borrow().bursts;
    fence();
    let s = bursts(w, before + 1).await;
    assert_eq!(s.fired, fired, "{s:?}");
    assert!(w.changes.try_recv().is_err(), "no notification pending");
}

#[tokio::test]
async fn an_in_place_write_notifies_once() {
    let dir = sluice_testkit::scratch_dir();
    let path = dir.path().join("sluice.yaml");
    fs::write(&path, "a: 1\n").unwrap();
    let mut w = watch(&path, QUICK).unwrap();
    fs::write(&path, "a: 2\n").unwrap();
    next_change(&mut w).await;
    settled(&mut w, &path, 1).await;
}

#[tokio::test]
async fn an_atomic_rename_over_the_file_notifies() {
    let dir = sluice_testkit::scratch_dir();
    let path = dir.path().join("sluice.yaml");
    fs::write(&path, "a: 1\n").unwrap();
    let mut w = watch(&path, QUICK).unwrap();
    let temp = dir.path().join(".sluice.yaml.swp");
    fs::write(&temp, "a: 2\n").unwrap();
    fs::rename(&temp, &path).unwrap();
    next_change(&mut w).await;
    settled(&mut w, &path, 1).await;
    assert_eq!(fs::read_to_string(&path).unwrap(), "a: 2\n");
}

/// What the kubelet does to a ConfigMap volume: the new version in a fresh timestamped
/// directory, a `..data_tmp` link to it renamed over `..data`, the old directory removed.
fn configmap_update(d: &Path, version: &str, content: &str) {
    let old = fs::read_link(d.join("..data")).ok();
    let fresh = format!("..2026_01_01_{version}");
    fs::create_dir(d.join(&fresh)).unwrap();
    fs::write(d.join(&fresh).join("sluice.yaml"), content).unwrap();
    symlink(&fresh, d.join("..data_tmp")).unwrap();
    fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    if let Some(old) = old {
        fs::remove_dir_all(d.join(old)).unwrap();
    }
}

#[tokio::test]
async fn a_configmap_symlink_swap_notifies() {
    let dir = sluice_testkit::scratch_dir();
    let d = dir.path();
    configmap_update(d, "a", "a: 1\n");
    symlink("..data/sluice.yaml", d.join("sluice.yaml")).unwrap();
    let path = d.join("sluice.yaml");
    let mut w = watch(&path, QUICK).unwrap();

    configmap_update(d, "b", "a: 2\n");
    next_change(&mut w).await;
    assert_eq!(fs::read_to_string(&path).unwrap(), "a: 2\n");
    // Another key of the ConfigMap changing swaps the directory under an unchanged file.
    settled_after(&mut w, 1, || configmap_update(d, "c", "a: 2\n")).await;
}

#[tokio::test]
async fn a_burst_of_writes_notifies_once() {
    let dir = sluice_testkit::scratch_dir();
    let path = dir.path().join("sluice.yaml");
    fs::write(&path, "a: 0\n").unwrap();
    let mut w = watch(&path, Duration::from_millis(200)).unwrap();
    for i in 1..=10 {
        fs::write(&path, format!("a: {i}\n")).unwrap();
    }
    next_change(&mut w).await;
    settled(&mut w, &path, 1).await;
}

#[tokio::test]
async fn the_same_bytes_do_not_notify() {
    let dir = sluice_testkit::scratch_dir();
    let path = dir.path().join("sluice.yaml");
    fs::write(&path, "a: 1\n").unwrap();
    let mut w = watch(&path, QUICK).unwrap();
    settled(&mut w, &path, 0).await;
    // And the watch was live all along.
    fs::write(&path, "a: 2\n").unwrap();
    next_change(&mut w).await;
}

#[tokio::test]
async fn another_file_in_the_directory_does_not_notify() {
    let dir = sluice_testkit::scratch_dir();
    let path = dir.path().join("sluice.yaml");
    fs::write(&path, "a: 1\n").unwrap();
    let mut w = watch(&path, QUICK).unwrap();
    let other = dir.path().join("other.yaml");
    for i in 0..3 {
        fs::write(&other, format!("b: {i}\n")).unwrap();
    }
    fs::rename(&other, dir.path().join("other2.yaml")).unwrap();
    settled(&mut w, &path, 0).await;
}

#[tokio::test]
async fn dropping_the_watcher_stops_the_loop() {
    let dir = sluice_testkit::scratch_dir();
    let path = dir.path().join("sluice.yaml");
    fs::write(&path, "a: 1\n").unwrap();
    let w = watch(&path, QUICK).unwrap();
    let mut stats = w.stats();
    drop(w);
    // The loop owns the sender: the receiver sees it go once the loop has ended.
    let ended = tokio::time::timeout(DEADLINE, stats.changed()).await;
    assert!(ended.expect("loop ended within the deadline").is_err());
}

#[tokio::test]
async fn a_path_without_a_file_name_is_refused() {
    let err = watch(Path::new("/"), QUICK).err().expect("refused");
    assert!(err.contains("does not name a file"), "{err}");
}

#[test]
fn only_events_on_the_file_or_the_configmap_link_count() {
    let name = OsStr::new("sluice.yaml");
    let on = |kind: EventKind, file: &str| {
        relevant(
            &Event::new(kind).add_path(PathBuf::from("/etc/s").join(file)),
            name,
        )
    };
    let data = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any));
    assert!(on(data, "sluice.yaml"));
    assert!(on(
        EventKind::Modify(ModifyKind::Name(RenameMode::To)),
        "sluice.yaml"
    ));
    assert!(on(
        EventKind::Modify(ModifyKind::Name(RenameMode::To)),
        "..data"
    ));
    let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
    assert!(on(closed, "sluice.yaml"));
    assert!(!on(data, "other.yaml"));
    assert!(!on(EventKind::Create(CreateKind::File), "..data_tmp"));
    assert!(!on(
        EventKind::Access(AccessKind::Open(AccessMode::Any)),
        "sluice.yaml"
    ));
    let rescan = Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
    assert!(relevant(&rescan, name));
}
