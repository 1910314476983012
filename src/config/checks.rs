//! The checks that touch the disk: the textfile's directory, secret files. (The spool directory is
//! probed where it is used, by `push::delivery`.)

use super::reader::Obj;
use super::{ConfigError, Secret};
use std::path::PathBuf;

/// The textfile is replaced by a rename at every push: an existing path that is not a regular
/// file (a device such as /dev/null, a directory) would be replaced or fail, so it is refused,
/// and so is a directory (or a `.prom` file's directory) that cannot be written.
pub(super) fn textfile(o: &Obj<'_>, p: PathBuf) -> Result<PathBuf, ConfigError> {
    let file = p.extension().is_some_and(|e| e == "prom");
    let dir = if file { p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new(".")) } else { &p };
    match std::fs::metadata(&p) {
        Ok(m) if file && !m.is_file() => return Err(o.invalid("textfile", &format!("{} exists and is not a regular file", p.display()))),
        Ok(m) if !file && !m.is_dir() => {
            return Err(o.invalid("textfile", &format!("{} is not a directory (a file's name must end in .prom)", p.display())));
        }
        _ => {}
    }
    crate::state::writable(dir).map_err(|e| o.invalid("textfile", &e.to_string()))?;
    Ok(p)
}

/// A secret from `file_key` (the file's content, without its final newline) or `env_key` (the
/// variable's value); giving both is refused.
pub(super) fn secret(o: &mut Obj<'_>, file_key: &str, env_key: &str) -> Result<Option<Secret>, ConfigError> {
    if o.has(file_key) && o.has(env_key) {
        return Err(o.invalid(env_key, &format!("cannot be combined with {file_key}: give one of them")));
    }
    if let Some(path) = o.opt_str(file_key)? {
        // The error names the file, never its content.
        let s = std::fs::read_to_string(&path).map_err(|e| o.invalid(file_key, &format!("cannot read {path}: {e}")))?;
        return Ok(Some(Secret(s.trim_end_matches(['\n', '\r']).to_string())));
    }
    if let Some(var) = o.opt_str(env_key)? {
        let s = std::env::var(&var).map_err(|_| o.invalid(env_key, &format!("environment variable {var} is not set")))?;
        return Ok(Some(Secret(s)));
    }
    Ok(None)
}
