//! Component images, built locally from the binaries kwokctl already has: no registry
//! is needed.
//!
//! An image is `FROM scratch` with the binary at `/usr/local/bin/<file>` as its
//! entrypoint, plus, for a dynamically linked binary (our Rust `kwok`, Debian's
//! `prometheus`), the shared libraries `ldd` says it loads, copied to their host paths.
//! That closure is the exact glibc the binary was linked against, a few MiB, and the
//! same recipe serves every binary; a Debian root would need a mirror (debootstrap)
//! or a base image from a registry, neither of which is reachable here.
//!
//! # Rebuilds
//! Each image carries the SHA-256 of everything copied into it (and of the layout
//! version [`LAYOUT`]) as label [`FINGERPRINT_LABEL`]. [`ensure`] rebuilds only when
//! that differs from the files on disk, so a rebuilt `kwok` gets a new image and an
//! unchanged one costs a hash.

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::Command,
};

use super::{Engine, Error, Result};
use crate::component::Component;

/// Label with the fingerprint of an image's files.
pub const FINGERPRINT_LABEL: &str = "io.kwok-rs.fingerprint";
/// Label with the component an image runs.
pub const COMPONENT_LABEL: &str = "io.kwok-rs.component";
/// Bumped when the way images are assembled changes, so old ones are rebuilt.
const LAYOUT: &str = "kwok-rs image layout 2";
/// Where the binary goes in the image.
const BIN_DIR: &str = "/usr/local/bin";

/// The image of `component` at `version`: `localhost/kwok-rs/<component>:<version>`
/// (the `localhost/` registry keeps docker and podman from looking anywhere else).
pub fn reference(component: Component, version: &str) -> String {
    format!("localhost/kwok-rs/{component}:{version}")
}

/// The version to tag `binary`'s image with: the cache folder's
/// (`<cache>/<name>/<version>/<name>`), this project's for its own `kwok`, else `local`.
pub fn version_of(component: Component, binary: &Path) -> String {
    let folder = binary
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .filter(|n| n.starts_with('v') && n[1..].starts_with(|c: char| c.is_ascii_digit()));
    match folder {
        Some(version) => version.to_owned(),
        None if component == Component::KwokController => format!("v{}", crate::pinned::KWOK_VERSION),
        None => "local".into(),
    }
}

/// One file of an image: where it is on the host and where it goes in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// On the host.
    pub host: PathBuf,
    /// In the image (absolute).
    pub image: PathBuf,
}

/// The path `binary` runs at in its image.
pub fn entrypoint(binary: &Path) -> PathBuf {
    let name = binary.file_name().unwrap_or(binary.as_os_str());
    Path::new(BIN_DIR).join(name)
}

/// The files of `binary`'s image: the binary, then the libraries it loads.
pub fn files(component: Component, binary: &Path) -> Result<Vec<File>> {
    let err = |detail: String| Error::Image {
        component: component.to_string(),
        detail,
    };
    if !binary.is_file() {
        return Err(err(format!("{} is not a file", binary.display())));
    }
    let mut files = vec![File {
        host: binary.to_owned(),
        image: entrypoint(binary),
    }];
    // `ldd` fails on a static binary ("not a dynamic executable"): no libraries.
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| err(format!("ldd: {e}")))?;
    if out.status.success() {
        let libraries = libraries(&String::from_utf8_lossy(&out.stdout));
        files.extend(libraries.into_iter().map(|path| File {
            host: path.clone(),
            image: path,
        }));
    }
    Ok(files)
}

/// The absolute library paths in `ldd` output (`libc.so.6 => /lib/…/libc.so.6 (0x…)`,
/// `/lib64/ld-linux-x86-64.so.2 (0x…)`); the vDSO has no file and is skipped.
fn libraries(ldd: &str) -> Vec<PathBuf> {
    ldd.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// SHA-256 (hex) of [`LAYOUT`] and every file's image path and contents.
pub fn fingerprint(files: &[File]) -> std::io::Result<String> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(LAYOUT.as_bytes());
    let mut buf = vec![0u8; 1 << 20];
    for file in files {
        context.update(file.image.as_os_str().as_encoded_bytes());
        context.update(&[0]);
        let mut f = fs::File::open(&file.host)?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            context.update(&buf[..n]);
        }
    }
    Ok(context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The image was there with the same files.
    Reused,
    /// It was built (missing or out of date).
    Built,
}

/// The fingerprint label of image `reference`, if the engine has that image.
pub fn fingerprint_of(engine: &Engine, reference: &str) -> Option<String> {
    let format = format!("{{{{index .Config.Labels \"{FINGERPRINT_LABEL}\"}}}}");
    let out = engine
        .run(&["image", "inspect", "--format", &format, reference])
        .ok()?;
    Some(out.trim().to_owned())
}

/// Makes sure image `reference` holds `binary` (for `component`) as it is now.
pub fn ensure(engine: &Engine, component: Component, binary: &Path, reference: &str) -> Result<Outcome> {
    let files = files(component, binary)?;
    let fingerprint = fingerprint(&files).map_err(|e| Error::Image {
        component: component.to_string(),
        detail: format!("failed to read {}: {e}", binary.display()),
    })?;
    if fingerprint_of(engine, reference).as_deref() == Some(fingerprint.as_str()) {
        return Ok(Outcome::Reused);
    }
    build(engine, component, &files, &fingerprint, reference)?;
    // The image this one replaced is untagged now; remove it unless a container uses it.
    let _ = engine.run(&[
        "image",
        "prune",
        "--force",
        "--filter",
        &format!("label={COMPONENT_LABEL}={component}"),
    ]);
    Ok(Outcome::Built)
}

/// The Dockerfile of an image whose root is the context's `rootfs/`.
fn dockerfile(entrypoint: &Path) -> String {
    format!(
        "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"{}\"]\n",
        entrypoint.display()
    )
}

fn build(
    engine: &Engine,
    component: Component,
    files: &[File],
    fingerprint: &str,
    reference: &str,
) -> Result<()> {
    let err = |detail: String| Error::Image {
        component: component.to_string(),
        detail,
    };
    let context = std::env::temp_dir().join(format!("kwokctl-image-{component}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&context);
    let result = (|| {
        let rootfs = context.join("rootfs");
        // Go binaries may write temporary files; scratch has no /tmp.
        fs::create_dir_all(rootfs.join("tmp")).map_err(|e| err(format!("{}: {e}", context.display())))?;
        for file in files {
            let target = rootfs.join(file.image.strip_prefix("/").unwrap_or(&file.image));
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| err(format!("{}: {e}", parent.display())))?;
            }
            // The file itself, not a symlink to it (`/lib64/ld-linux-x86-64.so.2` is one,
            // to a path the image may not have). A hard link spares copying 100 MiB when
            // the cache and temp dir share a disk.
            let source =
                fs::canonicalize(&file.host).map_err(|e| err(format!("{}: {e}", file.host.display())))?;
            fs::hard_link(&source, &target)
                .or_else(|_| fs::copy(&source, &target).map(|_| ()))
                .map_err(|e| err(format!("failed to copy {}: {e}", file.host.display())))?;
        }
        set_mode(&rootfs.join("tmp"), 0o1777);
        let entry = &files[0].image;
        fs::write(context.join("Dockerfile"), dockerfile(entry)).map_err(|e| err(e.to_string()))?;
        let args = [
            "build".to_owned(),
            "--quiet".into(),
            "--tag".into(),
            reference.into(),
            "--label".into(),
            format!("{FINGERPRINT_LABEL}={fingerprint}"),
            "--label".into(),
            format!("{COMPONENT_LABEL}={component}"),
            context.display().to_string(),
        ];
        engine.run(&args).map(|_| ()).map_err(|e| err(e.to_string()))
    })();
    let _ = fs::remove_dir_all(&context);
    result
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_should_be_the_absolute_paths_ldd_names() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f1)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f3)\n";
        assert_eq!(
            libraries(ldd),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                "/lib/x86_64-linux-gnu/libc.so.6".into(),
                "/lib64/ld-linux-x86-64.so.2".into(),
            ]
        );
    }

    #[test]
    fn version_should_come_from_the_cache_folder() {
        let cached = Path::new("/c/etcd/v3.6.16/etcd");
        assert_eq!(version_of(Component::Etcd, cached), "v3.6.16");
        assert_eq!(
            version_of(Component::Prometheus, Path::new("/usr/bin/prometheus")),
            "local"
        );
        let kwok = version_of(Component::KwokController, Path::new("/repo/target/debug/kwok"));
        assert_eq!(kwok, format!("v{}", crate::pinned::KWOK_VERSION));
    }

    #[test]
    fn fingerprint_should_change_with_the_contents_and_the_image_path() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("bin");
        fs::write(&host, "one").unwrap();
        let file = |image: &str| File {
            host: host.clone(),
            image: image.into(),
        };
        let first = fingerprint(&[file("/usr/local/bin/x")]).unwrap();
        assert_eq!(first, fingerprint(&[file("/usr/local/bin/x")]).unwrap());
        assert_ne!(first, fingerprint(&[file("/usr/local/bin/y")]).unwrap());
        fs::write(&host, "two").unwrap();
        assert_ne!(first, fingerprint(&[file("/usr/local/bin/x")]).unwrap());
        assert_eq!(first.len(), 64);
    }

    #[test]
    fn a_static_binary_should_need_no_library() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("tool");
        fs::write(&script, "#!/bin/sh\n").unwrap();
        let files = files(Component::Jaeger, &script).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].image, Path::new("/usr/local/bin/tool"));
    }
}
