//! Reading the reviewed config from disk.

use std::path::{Path, PathBuf};

use airlock_policy::load::{Loaded, MAX_CONFIG_BYTES, load_config_str};

/// The config the CLI uses when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "airlock.json";

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error(
        "no --config given and no {DEFAULT_CONFIG} in this directory; pass the reviewed config with --config PATH"
    )]
    NoDefault,
    #[error("cannot read config {path}: {source}; check the path given to --config")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge { path: PathBuf },
}

/// The config a command uses: the `--config` it was given, else
/// `./airlock.json` when that file exists, else [`ConfigFileError::NoDefault`].
/// Every command that takes `--config` resolves it here.
pub fn resolve_config(given: Option<&Path>) -> Result<PathBuf, ConfigFileError> {
    match given {
        Some(path) => Ok(path.to_owned()),
        None if Path::new(DEFAULT_CONFIG).is_file() => Ok(PathBuf::from(DEFAULT_CONFIG)),
        None => Err(ConfigFileError::NoDefault),
    }
}

/// [`resolve_config`] then [`read_config`]: the path used and what it holds.
pub fn resolve_and_read(given: Option<&Path>) -> Result<(PathBuf, Loaded), ConfigFileError> {
    let path = resolve_config(given)?;
    let loaded = read_config(&path)?;
    Ok((path, loaded))
}

/// Read and validate a config file. Validation findings are in the result;
/// only an unreadable file is an `Err`.
pub fn read_config(path: &Path) -> Result<Loaded, ConfigFileError> {
    let meta = std::fs::metadata(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    if meta.len() > MAX_CONFIG_BYTES as u64 {
        return Err(ConfigFileError::TooLarge {
            path: path.to_owned(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(load_config_str(&text))
}

/// Resolve a path written in the config relative to the config file's directory.
pub fn relative_to_config(config_path: &Path, written: &str) -> PathBuf {
    let p = Path::new(written);
    if p.is_absolute() {
        return p.to_owned();
    }
    let base = config_path.parent().unwrap_or(Path::new(""));
    // Drop `.` components so paths print as `dir/tmp/x`, not `./././tmp/x`.
    let out: PathBuf = base
        .components()
        .chain(p.components())
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// Replace `path` with `bytes` atomically: a sibling temporary file, written
/// and synced, renamed over it. An existing file keeps its permissions and
/// (when allowed: root editing a service's config) its owner, and one
/// reached through a symbolic link is replaced where it lives. On failure the
/// temporary file is removed and `path` is untouched. The one file writer of
/// the commands that edit a config (`config lock`, `recipes apply`) or write
/// beside one (`config schema --output`).
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let existing = match std::fs::canonicalize(path) {
        Ok(real) => {
            let meta = std::fs::metadata(&real)?;
            Some((real, meta))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let target = existing
        .as_ref()
        .map_or_else(|| path.to_path_buf(), |(real, _)| real.clone());
    let name = target
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = target.with_file_name(tmp_name);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if let Some((_, meta)) = &existing {
            std::fs::set_permissions(&tmp, meta.permissions())?;
            let _ = std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()));
        }
        std::fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
