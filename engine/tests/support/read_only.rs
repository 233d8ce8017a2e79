//! A directory the OS refuses to write, for real: root ignores file modes, so the directory is
//! made a read-only bind mount of itself (EROFS), in a mount namespace of its own (`unshare`)
//! that only the command run in it sees. Nothing outside it changes, and the mount goes with
//! the command's last process.

use std::path::Path;
use std::process::Command;

/// Mounts `$1` read-only over itself, then runs the rest of the arguments; 77 if it cannot.
const SCRIPT: &str =
    r#"mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" || exit 77; shift; exec "$@""#;

/// A command that runs `program` where `dir` is read-only (add the program's arguments to it),
/// or why no such mount can be made here: no `unshare`, or no right to make a mount namespace
/// or to mount (an unprivileged container).
pub fn in_read_only_mount(dir: &Path, program: impl AsRef<Path>) -> Result<Command, String> {
    let probe = wrapped(dir, "true")
        .output()
        .map_err(|err| format!("unshare cannot be run: {err}"))?;
    if !probe.status.success() {
        return Err(format!(
            "no read-only bind mount in a mount namespace of its own ({}): {}",
            probe.status,
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    Ok(wrapped(dir, program))
}

fn wrapped(dir: &Path, program: impl AsRef<Path>) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        SCRIPT,
        "sh",
    ])
    .arg(dir)
    .arg(program.as_ref());
    cmd
}

/// Why `/sys` is not the kernel's sysfs here, or `None` if it is: a file system that makes no
/// directories and no files, for anyone (EPERM, EACCES; EROFS where it is mounted read-only).
#[allow(clippy::disallowed_methods, reason = "the OS's own table of mounts")]
pub fn sysfs_missing() -> Option<String> {
    match std::fs::read_to_string("/proc/self/mounts") {
        Ok(mounts) if mounts.lines().any(|l| l.starts_with("sysfs /sys sysfs ")) => None,
        Ok(_) => Some("/sys is not a sysfs mount".into()),
        Err(err) => Some(format!("/proc/self/mounts cannot be read: {err}")),
    }
}
