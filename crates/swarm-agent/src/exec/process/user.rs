//! The `user` field of a spec: `name`, `uid`, `name:group` or `uid:gid`.

use nix::unistd::{Group, Uid, User};

use crate::exec::ExecError;

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) home: Option<String>,
}

/// Resolves `spec` against the node's user database.
pub(crate) fn resolve_user(spec: &str) -> Result<ResolvedUser, ExecError> {
    let unknown = || ExecError::UnknownUser(spec.to_string());
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)).map_err(|_| unknown())?,
        Err(_) => Some(
            User::from_name(user)
                .map_err(|_| unknown())?
                .ok_or_else(unknown)?,
        ),
    };
    let uid = match (&entry, user.parse::<u32>()) {
        (Some(e), _) => e.uid.as_raw(),
        (None, Ok(uid)) => uid,
        (None, Err(_)) => return Err(unknown()),
    };
    let gid = match group {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => Group::from_name(g)
                .map_err(|_| unknown())?
                .ok_or_else(unknown)?
                .gid
                .as_raw(),
        },
        None => entry.as_ref().map_or(uid, |e| e.gid.as_raw()),
    };
    Ok(ResolvedUser {
        uid,
        gid,
        home: entry.map(|e| e.dir.to_string_lossy().into_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        let root = resolve_user("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(resolve_user("0:0").unwrap().uid, 0);
        // A numeric uid without an entry is allowed (as in containers).
        let anon = resolve_user("54321:54322").unwrap();
        assert_eq!((anon.uid, anon.gid, anon.home), (54321, 54322, None));
        assert!(matches!(
            resolve_user("no-such-user-here"),
            Err(ExecError::UnknownUser(_))
        ));
        assert!(resolve_user("root:no-such-group-here").is_err());
    }
}
