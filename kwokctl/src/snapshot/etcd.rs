//! etcd snapshots: saved from the running etcd with etcdctl, turned into a fresh data
//! dir with etcdutl (etcdctl 3.6 no longer restores).

use std::{
    fs,
    io::Read as _,
    path::Path,
    process::{Command, Output},
};

use super::{Error, Result, io};

/// bbolt's magic number, in the meta page of every etcd backend file.
const BOLT_MAGIC: u32 = 0xED0C_DAED;
/// Where the magic sits: after the 16-byte page header of page 0.
const BOLT_MAGIC_OFFSET: usize = 16;

/// Saves the etcd at `endpoint` to `path` with `etcdctl` (through a temp file).
pub fn save(etcdctl: &Path, endpoint: &str, path: &Path) -> Result<()> {
    let tmp = super::tmp_path(path);
    let out = Command::new(etcdctl)
        .arg(format!("--endpoints={endpoint}"))
        .args(["snapshot", "save"])
        .arg(&tmp)
        .output()
        .map_err(io("run", etcdctl))?;
    if let Err(err) = check("etcdctl", &out) {
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    fs::rename(&tmp, path).map_err(io("rename", path))
}

/// Checks that `path` starts like an etcd backend file, before anything is stopped.
pub fn check_file(path: &Path) -> Result<()> {
    let not = |reason: String| Error::NotASnapshot {
        path: path.display().to_string(),
        format: "an etcd",
        reason,
    };
    let mut head = [0u8; BOLT_MAGIC_OFFSET + 4];
    let mut file = fs::File::open(path).map_err(io("open", path))?;
    if file.read_exact(&mut head).is_err() {
        return Err(not("it is too short".into()));
    }
    let magic = u32::from_le_bytes(head[BOLT_MAGIC_OFFSET..].try_into().expect("4 bytes"));
    if magic != BOLT_MAGIC {
        let hint = if head.iter().all(|b| b.is_ascii()) {
            "; it looks like text: a k8s snapshot needs --format k8s"
        } else {
            ""
        };
        return Err(not(format!("no bbolt header{hint}")));
    }
    Ok(())
}

/// Restores `snapshot` into the new data dir `data_dir` for the single member
/// `node0` with peer URL `peer`. The snapshot's integrity hash is checked.
pub fn restore_into(etcdutl: &Path, snapshot: &Path, data_dir: &Path, peer: &str) -> Result<()> {
    let out = Command::new(etcdutl)
        .args(["snapshot", "restore"])
        .arg(snapshot)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--name", "node0"])
        .arg(format!("--initial-cluster=node0={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .output()
        .map_err(io("run", etcdutl))?;
    check("etcdutl", &out)
}

fn check(tool: &'static str, out: &Output) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let last = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output");
    Err(Error::Tool {
        tool,
        message: format!("{} ({})", last, out.status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_file_should_refuse_text_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.yaml");
        fs::write(&path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n").unwrap();
        let err = check_file(&path).unwrap_err().to_string();
        assert!(err.contains("is not an etcd snapshot: no bbolt header"), "{err}");
        assert!(err.contains("--format k8s"), "{err}");
    }

    #[test]
    fn check_file_should_accept_the_bolt_magic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut bytes = vec![0u8; 4096];
        bytes[16..20].copy_from_slice(&BOLT_MAGIC.to_le_bytes());
        fs::write(&path, bytes).unwrap();
        check_file(&path).unwrap();
    }
}
