//! Where the executor keeps its sockets and its ledger, nobody else may
//! swap anything: every directory from `/` down must be one only root or
//! the executor's own user can change, and the executor opens its store
//! without following symbolic links.
//!
//! The rule (the same idea as OpenSSH's `StrictModes` and sudo's secure
//! path checks), applied to each directory from `/` down to the target, on
//! the path as given and on its canonical form (so a link's target is
//! checked too):
//!
//! * it must be owned by root or by the executor's uid;
//! * it must not be writable by group or others, unless it has the sticky
//!   bit (like `/tmp`): there others may add entries but cannot rename or
//!   delete ours, and the next component is still required to be owned by
//!   root or the executor;
//! * a symbolic link on the way must be owned by root or the executor (its
//!   own mode means nothing); its target is checked by the canonical walk.
//!
//! Components that do not exist yet are created by the executor, so they
//! are its own; the walk is repeated after creation, which also catches a
//! directory another user created in a sticky parent in the meantime.

use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use nix::fcntl::OFlag;

const STICKY: u32 = 0o1000;

/// Refuse `path` when any existing directory from `/` down to it could be
/// replaced by a user other than root or `own_uid`. `what` names the path
/// in messages (e.g. "socket directory").
pub fn check_ancestors(path: &Path, own_uid: u32, what: &str) -> anyhow::Result<()> {
    let given = std::path::absolute(path)
        .with_context(|| format!("cannot make the {what} {} absolute", path.display()))?;
    check_walk(path, &given, own_uid, what)?;
    if let Ok(real) = std::fs::canonicalize(&given)
        && real != given
    {
        check_walk(path, &real, own_uid, what)?;
    }
    Ok(())
}

fn check_walk(target: &Path, abs: &Path, own_uid: u32, what: &str) -> anyhow::Result<()> {
    let mut prefix = PathBuf::new();
    for component in abs.components() {
        prefix.push(component);
        let meta = match std::fs::symlink_metadata(&prefix) {
            Ok(m) => m,
            // The rest does not exist yet: the executor creates it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot inspect {} (on the way to the {what} {})",
                        prefix.display(),
                        target.display()
                    )
                });
            }
        };
        check_entry(target, &prefix, &meta, own_uid, what)?;
    }
    Ok(())
}

fn check_entry(
    target: &Path,
    entry: &Path,
    meta: &Metadata,
    own_uid: u32,
    what: &str,
) -> anyhow::Result<()> {
    let owner = meta.uid();
    if owner != 0 && owner != own_uid {
        bail!(
            "the {what} {} is not safe: {} belongs to uid {owner}, so that user could replace what lies below it; \
             only root or the executor's uid {own_uid} may own the {what} and every directory above it. \
             Fix: choose a directory whose every parent is owned by root or uid {own_uid} (e.g. /run/airlock under systemd, $XDG_RUNTIME_DIR/airlock on a laptop)",
            target.display(),
            entry.display()
        );
    }
    let mode = meta.mode() & 0o7777;
    if meta.is_dir() && mode & 0o022 != 0 && mode & STICKY == 0 {
        bail!(
            "the {what} {} is not safe: {} is writable by {} (mode {:04o}) without the sticky bit, so another user could rename it and put their own in its place. \
             Fix: `chmod go-w {}` (or choose a {what} elsewhere)",
            target.display(),
            entry.display(),
            if mode & 0o002 != 0 {
                "every user"
            } else {
                "its group"
            },
            mode,
            entry.display()
        );
    }
    Ok(())
}

/// The ledger's directory, opened without following a link, owned by the
/// executor and closed to everyone else. A missing directory is created
/// with mode 0700; an existing one is never chmodded — a loose mode is
/// refused with the command that fixes it.
pub fn open_store_dir(store: &Path, own_uid: u32) -> anyhow::Result<File> {
    let dir = match store.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => p.to_owned(),
        None => PathBuf::from("."),
    };
    check_ancestors(&dir, own_uid, "ledger directory")?;
    match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("cannot create the ledger directory {}", dir.display()))?;
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot inspect the ledger directory {}", dir.display()));
        }
        Ok(m) if m.file_type().is_symlink() => bail!(
            "the ledger directory {} is a symbolic link; the executor does not follow links for its store. \
             Fix: point --store (or storage.sqlite_path) at the real directory",
            dir.display()
        ),
        Ok(_) => {}
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW).bits())
        .open(&dir)
        .with_context(|| {
            format!(
                "cannot open the ledger directory {} (it must be a real directory, not a link)",
                dir.display()
            )
        })?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot inspect the ledger directory {}", dir.display()))?;
    if meta.uid() != own_uid {
        bail!(
            "the ledger directory {} belongs to uid {}, not to the executor's uid {own_uid}. Fix: `chown {own_uid} {}` or choose another --store",
            dir.display(),
            meta.uid(),
            dir.display()
        );
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        bail!(
            "the ledger directory {} has mode {mode:04o}: other users can reach the ledger. The executor does not change the mode of an existing directory. Fix: `chmod 700 {}`",
            dir.display(),
            dir.display()
        );
    }
    // Again, now that every component exists (one may have appeared meanwhile).
    check_ancestors(&dir, own_uid, "ledger directory")?;
    Ok(file)
}

/// Open (creating if missing) a file of the store without following a link
/// at its name.
pub fn open_store_file(path: &Path) -> anyhow::Result<File> {
    refuse_link(path, "store file")?;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(path)
        .with_context(|| format!("cannot open {} (links are not followed)", path.display()))
}

/// Refuse `path` when it is a symbolic link or anything but a regular file;
/// a missing file is fine (it will be created inside the checked directory).
pub fn refuse_link(path: &Path, what: &str) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot inspect the {what} {}", path.display())),
        Ok(m) if m.file_type().is_symlink() => bail!(
            "the {what} {} is a symbolic link; the executor does not follow links for its store (it would write wherever the link points). \
             Fix: remove the link (`rm {}`) and point --store at the real file",
            path.display(),
            path.display()
        ),
        Ok(m) if !m.is_file() => bail!(
            "the {what} {} is not a regular file; remove it or choose another --store",
            path.display()
        ),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn world_writable_parent_is_refused_unless_sticky() {
        let own = nix::unistd::geteuid().as_raw();
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        let err = check_ancestors(&open.join("run"), own, "socket directory").unwrap_err();
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        chmod(&open, 0o1777);
        check_ancestors(&open.join("run"), own, "socket directory").unwrap();
        chmod(&open, 0o775);
        let err = check_ancestors(&open.join("run"), own, "socket directory").unwrap_err();
        assert!(err.to_string().contains("its group"), "{err}");
        chmod(&open, 0o755);
        check_ancestors(&open.join("run"), own, "socket directory").unwrap();
    }

    #[test]
    fn a_link_is_checked_through_to_its_target() {
        let own = nix::unistd::geteuid().as_raw();
        let tmp = tempfile::tempdir().unwrap();
        let bad = tmp.path().join("bad");
        std::fs::create_dir(&bad).unwrap();
        chmod(&bad, 0o777);
        std::fs::create_dir(bad.join("run")).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(bad.join("run"), &link).unwrap();
        assert!(check_ancestors(&link, own, "socket directory").is_err());
    }
}
