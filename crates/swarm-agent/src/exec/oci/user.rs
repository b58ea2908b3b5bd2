//! The spec's `user` and `groups` resolved against the container's own
//! `/etc/passwd` and `/etc/group` (not the node's): `name`, `uid`,
//! `name:group` or `uid:gid`. A numeric uid without an entry is allowed
//! (its gid is then the uid's, unless given).

use std::path::Path;

use crate::exec::ExecError;

/// A user inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) additional_gids: Vec<u32>,
    pub(crate) home: String,
}

/// `(name, id, gid or members, home)` of the lines of a passwd or group
/// file; malformed lines are skipped.
fn entries(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 3 && f[2].parse::<u32>().is_ok())
}

fn read(rootfs: &Path, file: &str) -> String {
    // A root filesystem without the file has no names, only numbers.
    std::fs::read_to_string(rootfs.join(file)).unwrap_or_default()
}

fn group_id(groups: &str, name: &str, unknown: &dyn Fn() -> ExecError) -> Result<u32, ExecError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    entries(groups)
        .find(|f| f[0] == name)
        .and_then(|f| f[2].parse().ok())
        .ok_or_else(unknown)
}

/// Resolves `user` and `groups` against the files of `rootfs`.
pub(crate) fn resolve(
    rootfs: &Path,
    user: &str,
    groups: &[String],
) -> Result<ContainerUser, ExecError> {
    let passwd = read(rootfs, "etc/passwd");
    let group = read(rootfs, "etc/group");
    let unknown = || ExecError::UnknownUser(user.to_string());
    let (name, grp) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, gid, home) = if name.is_empty() {
        (0, 0, "/root".to_string())
    } else {
        let by_id = name.parse::<u32>().ok();
        let entry = entries(&passwd).find(|f| match by_id {
            Some(id) => f[2].parse() == Ok(id),
            None => f[0] == name,
        });
        match (entry, by_id) {
            (Some(f), _) => (
                f[2].parse().map_err(|_| unknown())?,
                f.get(3).and_then(|g| g.parse().ok()).unwrap_or(0),
                f.get(5).map_or("/", |h| *h).to_string(),
            ),
            (None, Some(id)) => (id, id, "/".to_string()),
            (None, None) => return Err(unknown()),
        }
    };
    let gid = match grp {
        Some(g) => group_id(&group, g, &unknown)?,
        None => gid,
    };
    let additional_gids = groups
        .iter()
        .map(|g| group_id(&group, g, &|| ExecError::UnknownUser(format!("group {g}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ContainerUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_root_filesystem() {
        let dir = std::env::temp_dir().join(format!("swarm-oci-user-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken\napp:x:1000:1001:App:/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.join("etc/group"), "root:x:0:\nstaff:x:50:app\n").unwrap();
        let r = |u: &str, g: &[&str]| {
            let g: Vec<String> = g.iter().map(|s| s.to_string()).collect();
            resolve(&dir, u, &g).map(|u| (u.uid, u.gid, u.additional_gids, u.home))
        };
        assert_eq!(r("", &[]).unwrap(), (0, 0, vec![], "/root".into()));
        assert_eq!(
            r("app", &[]).unwrap(),
            (1000, 1001, vec![], "/home/app".into())
        );
        assert_eq!(r("1000", &[]).unwrap().0, 1000);
        assert_eq!(r("app:staff", &["staff", "7"]).unwrap().1, 50);
        assert_eq!(r("app", &["staff", "7"]).unwrap().2, vec![50, 7]);
        assert_eq!(
            r("4242:4343", &[]).unwrap(),
            (4242, 4343, vec![], "/".into())
        );
        assert!(matches!(
            r("nobody-here", &[]),
            Err(ExecError::UnknownUser(_))
        ));
        assert!(r("app:nogroup", &[]).is_err());
        assert!(r("app", &["nogroup"]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
