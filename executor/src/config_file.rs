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
