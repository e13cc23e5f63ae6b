//! `kubectl exec`: the command runs on kwok's host, as upstream's `local` target does,
//! with the rule's variables added to kwok's environment, its working directory and its
//! user and group. This is why exec is off unless a rule allows it and why the server
//! takes only clients whose certificate the cluster's CA signed.

use std::process::Stdio;

use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    process::Command,
};

use super::kinds::{ExecLocal, ExecTarget};

/// A reader of the client's input.
pub type Input = Box<dyn AsyncRead + Send + Unpin>;
/// A writer to the client.
pub type Output = Box<dyn AsyncWrite + Send + Unpin>;

/// Errors of running a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request names no command.
    #[error("no command given")]
    NoCommand,
    /// The rule has no `local` target (upstream's only kind).
    #[error("the exec rule has no local target")]
    NoLocal,
    /// The command cannot start (e.g. it does not exist).
    #[error("failed to run {command:?}: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the command failed.
    #[error("failed to wait for {command:?}: {source}")]
    Wait {
        /// The program.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The streams of one exec, as the client asked for them.
#[derive(Default)]
pub struct Streams {
    /// The client's input, when it sends any.
    pub stdin: Option<Input>,
    /// Standard output.
    pub stdout: Option<Output>,
    /// Standard error (with a terminal, the caller passes none: all goes to stdout).
    pub stderr: Option<Output>,
    /// Run the command on a pseudo-terminal (`kubectl exec -t`): its input, output and
    /// errors all go through it, so shells prompt and echo as on a terminal.
    pub tty: bool,
}

/// Runs `command` under `target`, copying the streams; gives the exit code (`None` when
/// a signal ended it).
///
/// # Errors
/// No command, no local target, or the command cannot start.
pub async fn run(target: &ExecTarget, command: &[String], streams: Streams) -> Result<Option<i32>, Error> {
    let local = target.local.as_ref().ok_or(Error::NoLocal)?;
    let (program, args) = command.split_first().ok_or(Error::NoCommand)?;
    let mut cmd = build(local, program, args);
    if streams.tty {
        return run_on_terminal(cmd, program, streams).await;
    }
    cmd.stdin(if streams.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(if streams.stdout.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    // Without a stderr stream (a terminal), errors go where the output goes, as a pty's would.
    cmd.stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        command: program.clone(),
        source,
    })?;
    let stdin_task = match (streams.stdin, child.stdin.take()) {
        (Some(mut from), Some(mut to)) => Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
            let _ = to.shutdown().await;
        })),
        _ => None,
    };
    let Streams { stdout, stderr, .. } = streams;
    let (stdout, stderr) = match (stdout, stderr) {
        (out, Some(err)) => (out, Some(err)),
        // A terminal: one stream for both.
        (Some(out), None) => {
            let (a, b) = split(out);
            (Some(a), Some(b))
        }
        (None, None) => (None, None),
    };
    let copy_out = copy(child.stdout.take(), stdout);
    let copy_err = copy(child.stderr.take(), stderr);
    let (status, (), ()) = tokio::join!(child.wait(), copy_out, copy_err);
    if let Some(task) = stdin_task {
        task.abort();
    }
    let status = status.map_err(|source| Error::Wait {
        command: program.clone(),
        source,
    })?;
    Ok(status.code())
}

/// Runs `cmd` with a pseudo-terminal as its stdin, stdout and stderr; the client's input
/// goes to the terminal and what the terminal shows to stdout. No controlling terminal
/// is set up (that needs code between fork and exec) and resizes are not passed on.
async fn run_on_terminal(mut cmd: Command, program: &str, streams: Streams) -> Result<Option<i32>, Error> {
    let spawn_err = |source: std::io::Error| Error::Spawn {
        command: program.to_owned(),
        source,
    };
    let pty = nix::pty::openpty(None, None).map_err(|e| spawn_err(e.into()))?;
    let slave = pty.slave;
    cmd.stdin(Stdio::from(slave.try_clone().map_err(spawn_err)?));
    cmd.stdout(Stdio::from(slave.try_clone().map_err(spawn_err)?));
    cmd.stderr(Stdio::from(slave));
    let mut child = cmd.spawn().map_err(spawn_err)?;
    // `cmd` holds the slave's copies until dropped: the master sees the end only then.
    drop(cmd);
    let master = std::fs::File::from(pty.master);
    let mut reader = tokio::fs::File::from_std(master.try_clone().map_err(spawn_err)?);
    let mut writer = tokio::fs::File::from_std(master);
    let input = streams.stdin.map(|mut stdin| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut stdin, &mut writer).await;
        })
    });
    let output = async {
        match streams.stdout {
            // Reading the master fails (EIO) once the command and its children are gone.
            Some(mut out) => {
                let _ = tokio::io::copy(&mut reader, &mut out).await;
                let _ = out.shutdown().await;
            }
            None => {
                let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
            }
        }
    };
    let (status, ()) = tokio::join!(child.wait(), output);
    if let Some(task) = input {
        task.abort();
    }
    let status = status.map_err(|source| Error::Wait {
        command: program.to_owned(),
        source,
    })?;
    Ok(status.code())
}

fn build(local: &ExecLocal, program: &str, args: &[String]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).kill_on_drop(true);
    cmd.envs(local.envs.iter().map(|e| (&e.name, &e.value)));
    if !local.work_dir.is_empty() {
        cmd.current_dir(&local.work_dir);
    }
    if let Some(sc) = &local.security_context {
        if let Some(gid) = sc.run_as_group {
            cmd.gid(gid);
        }
        if let Some(uid) = sc.run_as_user {
            cmd.uid(uid);
        }
    }
    cmd
}

async fn copy(from: Option<impl AsyncRead + Unpin>, to: Option<Output>) {
    match (from, to) {
        (Some(mut from), Some(mut to)) => {
            let _ = tokio::io::copy(&mut from, &mut to).await;
            let _ = to.shutdown().await;
        }
        // Nobody reads it: drain so the command never blocks on a full pipe.
        (Some(mut from), None) => {
            let _ = tokio::io::copy(&mut from, &mut tokio::io::sink()).await;
        }
        _ => {}
    }
}

/// Two writers into one (a terminal's single output stream).
fn split(out: Output) -> (Output, Output) {
    let shared = std::sync::Arc::new(tokio::sync::Mutex::new(out));
    (
        Box::new(Shared(shared.clone(), None)),
        Box::new(Shared(shared, None)),
    )
}

type Locking =
    std::pin::Pin<Box<dyn std::future::Future<Output = tokio::sync::OwnedMutexGuard<Output>> + Send>>;

/// One of the writers sharing an output; each write takes the lock for its duration.
struct Shared(std::sync::Arc<tokio::sync::Mutex<Output>>, Option<Locking>);

impl Shared {
    fn with<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        f: impl FnOnce(std::pin::Pin<&mut Output>, &mut std::task::Context<'_>) -> std::task::Poll<T>,
    ) -> std::task::Poll<T> {
        use std::task::Poll;
        let lock = self
            .1
            .get_or_insert_with(|| Box::pin(self.0.clone().lock_owned()));
        let mut guard = match lock.as_mut().poll(cx) {
            Poll::Ready(guard) => guard,
            Poll::Pending => return Poll::Pending,
        };
        let result = f(std::pin::Pin::new(&mut *guard), cx);
        self.1 = None;
        result
    }
}

impl AsyncWrite for Shared {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.get_mut().with(cx, |w, cx| w.poll_write(cx, buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.get_mut().with(cx, |w, cx| w.poll_flush(cx))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        // The other writer may still write: only flush.
        self.get_mut().with(cx, |w, cx| w.poll_flush(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debugging::kinds::EnvVar;

    fn target(envs: &[(&str, &str)], work_dir: &str) -> ExecTarget {
        ExecTarget {
            containers: Vec::new(),
            local: Some(ExecLocal {
                work_dir: work_dir.into(),
                envs: envs
                    .iter()
                    .map(|(n, v)| EnvVar {
                        name: (*n).into(),
                        value: (*v).into(),
                    })
                    .collect(),
                security_context: None,
            }),
        }
    }

    async fn output(
        target: &ExecTarget,
        command: &[&str],
        stdin: &'static [u8],
    ) -> (String, String, Option<i32>) {
        let (out_w, mut out_r) = tokio::io::duplex(1 << 16);
        let (err_w, mut err_r) = tokio::io::duplex(1 << 16);
        let streams = Streams {
            stdin: Some(Box::new(stdin)),
            stdout: Some(Box::new(out_w)),
            stderr: Some(Box::new(err_w)),
            tty: false,
        };
        let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        let code = run(target, &command, streams).await.unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        use tokio::io::AsyncReadExt;
        out_r.read_to_string(&mut out).await.unwrap();
        err_r.read_to_string(&mut err).await.unwrap();
        (out, err, code)
    }

    #[tokio::test]
    async fn a_command_should_see_the_rules_variables_and_directory() {
        let t = target(&[("TEST", "test")], "/tmp");
        let (out, _, code) = output(
            &t,
            &["sh", "-c", "echo $TEST; pwd; cat; echo oops >&2; exit 3"],
            b"in\n",
        )
        .await;
        assert_eq!(out, "test\n/tmp\nin\n");
        assert_eq!(code, Some(3));
        let (_, err, _) = output(&t, &["sh", "-c", "echo oops >&2"], b"").await;
        assert_eq!(err, "oops\n");
    }

    #[tokio::test]
    async fn a_missing_command_should_name_it() {
        let err = run(
            &target(&[], ""),
            &["no-such-command-kwok".into()],
            Streams::default(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("failed to run \"no-such-command-kwok\": "),
            "{err}"
        );
        let none = ExecTarget::default();
        assert!(matches!(
            run(&none, &["x".into()], Streams::default()).await,
            Err(Error::NoLocal)
        ));
    }

    #[tokio::test]
    async fn a_terminal_should_be_what_the_command_sees() {
        let (out_w, mut out_r) = tokio::io::duplex(1 << 16);
        let streams = Streams {
            stdin: None,
            stdout: Some(Box::new(out_w)),
            stderr: None,
            tty: true,
        };
        let cmd: Vec<String> = ["sh", "-c", "test -t 0 && test -t 1 && echo on a tty; exit 4"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let code = run(&target(&[], ""), &cmd, streams).await.unwrap();
        let mut out = String::new();
        use tokio::io::AsyncReadExt;
        out_r.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "on a tty\r\n");
        assert_eq!(code, Some(4));
    }

    #[tokio::test]
    async fn without_stderr_both_streams_should_reach_stdout() {
        let (out_w, mut out_r) = tokio::io::duplex(1 << 16);
        let streams = Streams {
            stdin: None,
            stdout: Some(Box::new(out_w)),
            stderr: None,
            tty: false,
        };
        let cmd: Vec<String> = ["sh", "-c", "echo a; sleep 0.1; echo b >&2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        run(&target(&[], ""), &cmd, streams).await.unwrap();
        let mut out = String::new();
        use tokio::io::AsyncReadExt;
        out_r.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "a\nb\n");
    }
}
