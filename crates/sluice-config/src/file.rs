//! Reading the files a config names (itself, CA bundles) with a size bound, so a
//! path like `/dev/zero` or a huge file is an error instead of a hang that eats memory.

use std::io::Read;
use std::path::Path;

/// Reads a regular file of at most `max` bytes. The error says why, without the
/// path (callers name the file and the field).
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    // Checked on the open handle, so the file cannot be swapped in between.
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(format!("not a regular file ({})", kind(&meta.file_type())));
    }
    let too_big = || format!("larger than {} (the limit)", size(max));
    if meta.len() > max {
        return Err(too_big());
    }
    // The length can change after the metadata call (a growing file, procfs):
    // read one byte past the limit to notice.
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(too_big());
    }
    Ok(bytes)
}

fn kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

fn size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::read_bounded;
    use std::path::Path;

    #[test]
    fn devices_directories_and_big_files_are_refused() -> std::io::Result<()> {
        let e = read_bounded(Path::new("/dev/zero"), 1024).err();
        assert_eq!(
            e.as_deref(),
            Some("not a regular file (a character device)")
        );
        let e = read_bounded(Path::new("/"), 1024).err();
        assert_eq!(e.as_deref(), Some("not a regular file (a directory)"));

        let dir = std::env::temp_dir().join(format!("sluice-config-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("f");
        std::fs::write(&path, vec![b'x'; 2 * 1024 * 1024 + 1])?;
        let e = read_bounded(&path, 2 * 1024 * 1024).err();
        assert_eq!(e.as_deref(), Some("larger than 2 MiB (the limit)"));
        assert_eq!(
            read_bounded(&path, 3 * 1024 * 1024).map(|b| b.len()),
            Ok(2 * 1024 * 1024 + 1)
        );
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
