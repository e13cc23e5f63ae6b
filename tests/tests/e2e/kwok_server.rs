//! kwok's own server (issue 22): HTTPS from `--tls-cert-file`/`--tls-private-key-file`,
//! verified against the cluster's CA, and `/debug/pprof/*` when a KwokConfiguration
//! enables it (`go tool pprof` reads the CPU profile), refused otherwise.

use std::{
    fs,
    path::Path,
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use crate::{
    kwok::bare_cluster,
    util::{KwokProcess, bin_dir, http_get},
};

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `curl` over HTTPS, trusting only `ca`; the body, or `None` when the request fails.
fn https_get(ca: &Path, port: u16, path: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "5", "--cacert"])
        .arg(ca)
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .expect("run curl");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Kills the child on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// See: issue 22 ("no `--tls-cert-file/--tls-private-key-file` serving").
#[test]
fn kwok_should_serve_https_with_the_given_certificate_and_key() {
    let cluster = bare_cluster("kwok-tls");
    let pki = cluster.dir().join("pki");
    let port = free_port();
    let log = fs::File::create(cluster.dir().join("logs/test-kwok-tls.log")).unwrap();
    let mut kwok = Killed(
        Command::new(bin_dir().join("kwok"))
            .arg(format!("--kubeconfig={}", cluster.kwok_kubeconfig().display()))
            .arg(format!("--server-address=127.0.0.1:{port}"))
            .arg(format!("--tls-cert-file={}", pki.join("serving.crt").display()))
            .arg(format!(
                "--tls-private-key-file={}",
                pki.join("serving.key").display()
            ))
            .arg("--node-lease-duration-seconds=0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start kwok"),
    );
    let start = Instant::now();
    let ca = pki.join("ca.crt");
    let body = loop {
        if let Some(body) = https_get(&ca, port, "/healthz") {
            break body;
        }
        if let Ok(Some(status)) = kwok.0.try_wait() {
            panic!("kwok exited with {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no HTTPS /healthz within 60 s"
        );
        sleep(Duration::from_millis(200));
    };
    assert_eq!(body.trim(), "ok");
    assert_eq!(
        https_get(&ca, port, "/livez").as_deref().map(str::trim),
        Some("ok")
    );
    let metrics = https_get(&ca, port, "/metrics").expect("metrics over HTTPS");
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    // Plain HTTP on the same port too, as upstream's server (its first byte tells).
    assert_eq!(http_get(&format!("127.0.0.1:{port}"), "/healthz").trim(), "ok");
}

/// See: issue 22: one flag without the other, or a file that does not load, is one
/// line naming the flag and the file, before kwok connects anywhere.
#[test]
fn kwok_should_refuse_half_or_unreadable_tls_flags_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    fs::write(&junk, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.key");
    let cases: [(&[String], String); 3] = [
        (
            &[format!("--tls-cert-file={}", junk.display())],
            format!(
                "--tls-cert-file {} needs --tls-private-key-file too",
                junk.display()
            ),
        ),
        (
            &[
                format!("--tls-cert-file={}", junk.display()),
                format!("--tls-private-key-file={}", missing.display()),
            ],
            format!("failed to load --tls-cert-file {}", junk.display()),
        ),
        (
            &[format!("--tls-private-key-file={}", missing.display())],
            format!(
                "--tls-private-key-file {} needs --tls-cert-file too",
                missing.display()
            ),
        ),
    ];
    for (args, expected) in cases {
        let out = Command::new(bin_dir().join("kwok"))
            // Nothing listens there: the error must come before any connection.
            .args(["--master=https://127.0.0.1:1", "--server-address=127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kwok");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // 1, as upstream kwok and kwokctl exit on an error (2 is left to clap for usage).
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
    }
}

/// See: issue 22 ("give `kwok` an equivalent [of go tool pprof] … off by default").
#[test]
fn kwok_should_serve_pprof_profiles_only_when_enabled() {
    let cluster = bare_cluster("kwok-pprof");
    let off = KwokProcess::start(&cluster, &["--node-lease-duration-seconds=0"]);
    let refused = raw_get(&off.address, "/debug/pprof/profile?seconds=1");
    assert!(
        refused.starts_with("HTTP/1.0 405") && refused.contains("profiling endpoint is disabled."),
        "{refused}"
    );
    drop(off);

    let config = cluster.dir().join("profiling.yaml");
    fs::write(
        &config,
        "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions:\n  enableProfilingHandler: true\n",
    )
    .unwrap();
    let on = KwokProcess::start(
        &cluster,
        &[
            &format!("--config={}", config.display()),
            "--node-lease-duration-seconds=0",
        ],
    );
    let profile = cluster.dir().join("cpu.pb.gz");
    let curl = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "30", "-o"])
        .arg(&profile)
        .arg(format!("http://{}/debug/pprof/profile?seconds=1", on.address))
        .status()
        .expect("run curl");
    assert!(curl.success());
    let bytes = fs::read(&profile).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip");
    let top = Command::new("go")
        .args(["tool", "pprof", "-top"])
        .arg(&profile)
        .output()
        .expect("run go tool pprof");
    let text = String::from_utf8_lossy(&top.stdout).into_owned() + &String::from_utf8_lossy(&top.stderr);
    assert!(top.status.success(), "{text}");
    assert!(text.contains("Type: cpu") && text.contains("flat"), "{text}");

    let heap = http_get(&on.address, "/debug/pprof/heap");
    assert!(
        heap.contains("RssAnon:") && heap.contains("allocator: mimalloc"),
        "{heap}"
    );
}

/// The raw response (status line, headers and body) of a GET.
fn raw_get(address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}
