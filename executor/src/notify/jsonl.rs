//! One JSON-lines sink: each notification appended as one line to a file
//! the executor owns (created `0600` by its umask, never through a link),
//! flushed to disk before it counts as delivered; or to standard output.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use airlock_policy::notify::JsonlTarget;

#[derive(Debug, Clone)]
pub enum Jsonl {
    File(PathBuf),
    Stdout,
}

impl Jsonl {
    /// `path` is relative to the config file's directory unless absolute.
    /// Its directory must exist when the executor starts: a typo stops the
    /// executor with a message rather than failing every delivery later.
    pub fn new(
        sink_id: &str,
        target: &JsonlTarget,
        config_path: &std::path::Path,
    ) -> Result<Jsonl, String> {
        match target {
            JsonlTarget::Path(p) => {
                let path = crate::config_file::relative_to_config(config_path, p);
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
                    _ => PathBuf::from("."),
                };
                if !dir.is_dir() {
                    return Err(format!(
                        "notification sink `{sink_id}`: the directory of {} does not exist; create it (writable by the executor) or change `path`",
                        path.display()
                    ));
                }
                Ok(Jsonl::File(path))
            }
            JsonlTarget::Stdout => Ok(Jsonl::Stdout),
        }
    }

    /// Append each body as a line; `Err` says why not (no secret can be in
    /// it: the path is the config's).
    pub async fn append(&self, bodies: &[&str]) -> Result<(), String> {
        let mut line = String::new();
        for body in bodies {
            line.push_str(body);
            line.push('\n');
        }
        let target = self.clone();
        tokio::task::spawn_blocking(move || match target {
            Jsonl::File(path) => {
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                    .open(&path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                // One write of whole lines: appends of concurrent writers
                // do not interleave inside one.
                file.write_all(line.as_bytes())
                    .and_then(|()| file.sync_data())
                    .map_err(|e| format!("cannot append to {}: {e}", path.display()))
            }
            Jsonl::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| format!("cannot write to standard output: {e}"))
            }
        })
        .await
        .map_err(|e| format!("the write did not finish: {e}"))?
    }

    pub fn describe(&self) -> String {
        match self {
            Jsonl::File(p) => p.display().to_string(),
            Jsonl::Stdout => "standard output".into(),
        }
    }
}
