//! `USER` / `--chown` specs resolved against the image's `/etc/passwd` and
//! `/etc/group` (pure: the caller reads the files inside the rootfs).
//! Rules as Docker applies them (<https://docs.docker.com/reference/dockerfile/#user>):
//! a numeric id needs no entry; a name must exist; without a group the
//! user's primary group is used (0 for an unknown numeric user).

/// Parses `name:x:uid:gid:...` lines; returns `(uid, gid)` of `name`.
fn passwd_entry(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn passwd_by_uid(passwd: &str, uid: u32) -> Option<u32> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[2].parse() == Ok(uid)).then(|| f[3].parse().ok())?
    })
}

fn group_entry(group: &str, name: &str) -> Option<u32> {
    group.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok())?
    })
}

/// Resolves `user[:group]` to numeric ids.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<(u32, u32), String> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err(format!("empty user in {spec:?}"));
    }
    let (uid, primary) = match user.parse::<u32>() {
        Ok(uid) => (uid, passwd_by_uid(passwd, uid).unwrap_or(0)),
        Err(_) => passwd_entry(passwd, user)
            .ok_or_else(|| format!("unknown user {user:?} (not in the image's /etc/passwd)"))?,
    };
    let gid = match grp {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entry(group, g)
                .ok_or_else(|| format!("unknown group {g:?} (not in the image's /etc/group)"))?,
        },
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:\napp:x:1001:\n";

    #[test]
    fn resolution_table() {
        type Want = Result<(u32, u32), &'static str>;
        let cases: &[(&str, Want)] = &[
            ("0", Ok((0, 0))),
            ("root", Ok((0, 0))),
            ("app", Ok((1000, 1001))),
            ("1000", Ok((1000, 1001))),
            ("1234", Ok((1234, 0))),
            ("app:staff", Ok((1000, 50))),
            ("app:7", Ok((1000, 7))),
            ("5:6", Ok((5, 6))),
            ("nobody", Err("unknown user \"nobody\"")),
            ("app:wheel", Err("unknown group \"wheel\"")),
            (":0", Err("empty user")),
        ];
        for (spec, want) in cases {
            let got = resolve(spec, PASSWD, GROUP);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{spec}"),
                (Err(w), Err(g)) => assert!(g.contains(w), "{spec}: {g}"),
                _ => panic!("{spec}: got {got:?}, want {want:?}"),
            }
        }
    }
}
