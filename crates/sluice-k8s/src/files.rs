//! Writing the translation's files (certificates, keys, CA bundles) to
//! `secrets_dir`, and removing those no config names any more.

use crate::secrets::Files;
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes each file not there yet. A file is written to a temporary name and
/// renamed, so a reader sees it whole or not at all; a path names its content, so
/// one already there is already right.
pub fn write(dir: &Path, files: &Files) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // An existing directory keeps its mode; keys must not be readable by others.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for (path, bytes) in files {
        if path.exists() {
            continue;
        }
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
    }
    Ok(())
}

/// Removes every file of `dir` not in `keep` (those of the config serving and of the
/// one before it, which a reload still running may be reading).
pub fn prune(dir: &Path, keep: &BTreeSet<PathBuf>) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && !keep.contains(&path) {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn files_are_private_and_pruned_when_no_config_names_them() -> std::io::Result<()> {
        let dir = std::env::temp_dir().join(format!("sluice-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = dir.join("ns.a.1.tls.key");
        let b = dir.join("ns.b.2.tls.key");
        let files: Files = [
            (a.clone(), Arc::from(&b"one"[..])),
            (b.clone(), Arc::from(&b"two"[..])),
        ]
        .into_iter()
        .collect();
        write(&dir, &files)?;
        assert_eq!(std::fs::read(&a)?, b"one");
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode(&a)?, 0o600);
        assert_eq!(mode(&dir)?, 0o700);
        assert_eq!(prune(&dir, &BTreeSet::from([a.clone()]))?, 1);
        assert!(a.exists() && !b.exists());
        std::fs::remove_dir_all(&dir)
    }
}
