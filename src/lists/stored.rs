//! The last good copy of each list, kept in the state directory
//! (`ip-lists/NAME.json`, 0600, written atomically through
//! `crate::trusted`). A stored file that is not callgate's own (owner,
//! mode, a link) is never used, nor one fetched from another URL.

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::parse;
use crate::config::ip_list::IpList;
use crate::trusted::{self, TrustError};

/// A stored copy is at most this large (10,000 ranges as text fit in 1 MiB).
const MAX_STORED: u64 = 1 << 20;

/// One list's copy: its ranges, where and when they were fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Copy {
    pub(crate) nets: Vec<IpNet>,
    /// Unix seconds of the fetch that gave these ranges.
    pub(crate) fetched_at: i64,
}

#[derive(Serialize, Deserialize)]
struct File {
    url: String,
    fetched_at: i64,
    ranges: Vec<String>,
}

/// Why the stored copy is not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoredError {
    #[error(transparent)]
    Untrusted(#[from] TrustError),
    #[error("{0}: not a stored list ({1})")]
    Unreadable(PathBuf, String),
    #[error("{0}: fetched from {1}, not from the list's url: not used")]
    OtherSource(PathBuf, String),
    #[error("{0}: {1}")]
    Unusable(PathBuf, parse::Unusable),
}

/// Where `list`'s copy is kept in `dir`.
pub(crate) fn path(dir: &Path, list: &IpList) -> PathBuf {
    dir.join(format!("{}.json", list.name))
}

/// The stored copy of `list`, if there is one to use.
pub(crate) fn load(dir: &Path, list: &IpList) -> Result<Option<Copy>, StoredError> {
    let path = path(dir, list);
    let Some(bytes) = trusted::read_private(&path, MAX_STORED)? else {
        return Ok(None);
    };
    let file: File = serde_json::from_slice(&bytes)
        .map_err(|e| StoredError::Unreadable(path.clone(), e.to_string()))?;
    if file.url != list.url.to_string() {
        return Err(StoredError::OtherSource(path, file.url));
    }
    let nets = parse::checked(&file.ranges).map_err(|e| StoredError::Unusable(path, e))?;
    Ok(Some(Copy {
        nets,
        fetched_at: file.fetched_at,
    }))
}

/// Keep `copy` as `list`'s last good copy.
pub(crate) fn save(dir: &Path, list: &IpList, copy: &Copy) -> Result<(), TrustError> {
    let file = File {
        url: list.url.to_string(),
        fetched_at: copy.fetched_at,
        ranges: copy.nets.iter().map(ToString::to_string).collect(),
    };
    let bytes = serde_json::to_vec_pretty(&file).expect("a list serializes");
    trusted::write_private(dir, &path(dir, list), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn list() -> IpList {
        crate::config::ip_list::builtin().remove(0)
    }

    #[test]
    fn a_copy_round_trips_and_a_writable_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("ip-lists");
        let copy = Copy {
            nets: vec!["192.30.252.0/22".parse().unwrap()],
            fetched_at: 1_700_000_000,
        };
        save(&d, &list(), &copy).unwrap();
        let p = path(&d, &list());
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load(&d, &list()).unwrap(), Some(copy));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(load(&d, &list()), Err(StoredError::Untrusted(_))));
    }

    #[test]
    fn a_copy_from_another_url_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let copy = Copy {
            nets: vec!["10.0.0.0/8".parse().unwrap()],
            fetched_at: 1,
        };
        let mut other = list();
        other.url = "https://mirror.example/meta".parse().unwrap();
        save(dir.path(), &other, &copy).unwrap();
        assert!(matches!(
            load(dir.path(), &list()),
            Err(StoredError::OtherSource(..))
        ));
    }
}
