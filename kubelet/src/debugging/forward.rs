//! `kubectl port-forward`: a connection to a pod's port is dialled on to the rule's
//! address, or piped through the rule's command (its stdin and stdout).

use std::process::Stdio;

use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
    process::Command,
};

use super::kinds::Forward;

/// Errors of forwarding one connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target does not answer.
    #[error("failed to dial {address}: {source}")]
    Dial {
        /// `host:port`.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The command cannot start.
    #[error("failed to run {command:?}: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The rule names neither a target nor a command.
    #[error("the port-forward rule has no target and no command")]
    Nothing,
}

/// Carries `stream` to what `forward` names until either side closes.
///
/// # Errors
/// The target cannot be dialled, the command cannot start, or the rule names neither.
pub async fn forward(
    forward: &Forward,
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
) -> Result<(), Error> {
    if let Some((program, args)) = forward.command.split_first() {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Spawn {
                command: program.clone(),
                source,
            })?;
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        let (mut read, mut write) = tokio::io::split(&mut stream);
        // stdin is moved in, so that it is closed (dropped) when the client's side ends.
        let to_child = async move {
            if let Some(mut stdin) = stdin {
                let _ = tokio::io::copy(&mut read, &mut stdin).await;
            }
        };
        let from_child = async move {
            if let Some(mut stdout) = stdout {
                let _ = tokio::io::copy(&mut stdout, &mut write).await;
                let _ = write.shutdown().await;
            }
        };
        // The command's output ending ends the connection.
        tokio::join!(to_child, from_child);
        let _ = child.wait().await;
        return Ok(());
    }
    let target = forward.target.as_ref().ok_or(Error::Nothing)?;
    let address = format!("{}:{}", target.address, target.port);
    let mut dialled = TcpStream::connect(&address)
        .await
        .map_err(|source| Error::Dial { address, source })?;
    let _ = tokio::io::copy_bidirectional(&mut stream, &mut dialled).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::debugging::kinds::ForwardTarget;

    #[tokio::test]
    async fn a_target_should_get_the_bytes_both_ways() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf.map(|b| b.to_ascii_uppercase())).await.unwrap();
        });
        let rule = Forward {
            target: Some(ForwardTarget {
                port,
                address: "127.0.0.1".into(),
            }),
            ..Default::default()
        };
        let (mut client, server) = tokio::io::duplex(64);
        let task = tokio::spawn(async move { forward(&rule, server).await });
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"PING");
        drop(client);
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_command_should_be_piped_through() {
        let rule = Forward {
            command: vec!["tr".into(), "a-z".into(), "A-Z".into()],
            ..Default::default()
        };
        let (mut client, server) = tokio::io::duplex(64);
        let task = tokio::spawn(async move { forward(&rule, server).await });
        client.write_all(b"pong").await.unwrap();
        client.shutdown().await.unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "PONG");
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_target_should_name_it() {
        let rule = Forward {
            target: Some(ForwardTarget {
                port: 1,
                address: "127.0.0.1".into(),
            }),
            ..Default::default()
        };
        let (_client, server) = tokio::io::duplex(64);
        let err = forward(&rule, server).await.unwrap_err().to_string();
        assert!(err.starts_with("failed to dial 127.0.0.1:1: "), "{err}");
    }
}
