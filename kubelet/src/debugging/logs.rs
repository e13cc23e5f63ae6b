//! Container logs from a file, as the kubelet reads a container runtime's log: CRI lines
//! (`<RFC 3339 time> <stdout|stderr> <P|F> <text>`, `P` marking a partial line that the
//! next one continues) or Docker JSON lines (`{"log": …, "stream": …, "time": …}`), with
//! `kubectl logs`' options. A line in neither format is passed on as it is, so a plain
//! text file works too.

use std::{io::SeekFrom, path::Path, time::Duration};

use jiff::Timestamp;
use tokio::{
    fs::File,
    io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt, BufReader},
};

/// How often a followed file is checked for new lines: the kubelet waits on inotify;
/// a poll this short reads the same to a person and costs nothing when idle.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// `kubectl logs` options, as the kubelet's `/containerLogs` query carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// `-f`: keep reading as the file grows.
    pub follow: bool,
    /// `--tail`: only the last lines.
    pub tail_lines: Option<u64>,
    /// `--since`/`--since-time`: only lines from then on.
    pub since: Option<Timestamp>,
    /// `--limit-bytes`: stop after this many bytes.
    pub limit_bytes: Option<u64>,
    /// `--timestamps`: each line starts with its time.
    pub timestamps: bool,
}

/// Errors of serving a log file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be opened or read.
    #[error("failed to read logs file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The client went away.
    #[error("client went away: {0}")]
    Write(#[source] std::io::Error),
}

/// One log entry: a whole line once partial ones are joined.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    time: Option<Timestamp>,
    text: String,
}

/// The parts of a CRI line split into partial (`P`) lines, until the full (`F`) one.
#[derive(Debug, Default)]
struct Partial {
    /// The first part's time: the whole line's, as the kubelet stamps it.
    time: Option<Timestamp>,
    text: String,
}

impl Partial {
    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// Parses one line of the file; `pending` holds the partial CRI lines before it.
/// `None` while a partial line waits for its end.
fn parse_line(line: &str, pending: &mut Partial) -> Option<Entry> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    if let Some(entry) = parse_cri(line, pending) {
        return entry;
    }
    if let Some(entry) = parse_docker_json(line) {
        return Some(entry);
    }
    Some(Entry {
        time: pending.time.take(),
        text: format!("{}{line}\n", std::mem::take(&mut pending.text)),
    })
}

/// `Some(None)`: a CRI partial line, kept in `pending`.
fn parse_cri(line: &str, pending: &mut Partial) -> Option<Option<Entry>> {
    let mut parts = line.splitn(4, ' ');
    let (time_text, stream, tag) = (parts.next()?, parts.next()?, parts.next()?);
    let text = parts.next().unwrap_or_default();
    if !matches!(stream, "stdout" | "stderr") {
        return None;
    }
    let time: Timestamp = time_text.parse().ok()?;
    // Tags are `:`-separated; the first is P (partial) or F (full).
    match tag.split(':').next() {
        Some("P") => {
            pending.time.get_or_insert(time);
            pending.text.push_str(text);
            Some(None)
        }
        Some("F") => Some(Some(Entry {
            time: Some(pending.time.take().unwrap_or(time)),
            text: format!("{}{text}\n", std::mem::take(&mut pending.text)),
        })),
        _ => None,
    }
}

fn parse_docker_json(line: &str) -> Option<Entry> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let text = value.get("log")?.as_str()?.to_owned();
    let time = value
        .get("time")
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse().ok());
    Some(Entry { time, text })
}

/// What is written for `entry` under `opts` (`None`: filtered out).
fn render(entry: &Entry, opts: &LogOptions) -> Option<String> {
    if let (Some(since), Some(time)) = (opts.since, entry.time)
        && time < since
    {
        return None;
    }
    Some(if let (true, Some(time)) = (opts.timestamps, entry.time) {
        // cri-client's RFC3339NanoFixed: nine fraction digits, always.
        format!("{} {}", time.strftime("%Y-%m-%dT%H:%M:%S.%9fZ"), entry.text)
    } else {
        entry.text.clone()
    })
}

/// Writes `path`'s log to `out` under `opts`; with `follow`, keeps writing as the file
/// grows until the client goes away (a write fails) or `out` is closed.
///
/// # Errors
/// The file cannot be opened or read, or the client went away before the end.
pub async fn write_logs(
    path: &Path,
    opts: &LogOptions,
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<(), Error> {
    let read_err = |source| Error::Read {
        path: path.display().to_string(),
        source,
    };
    let mut file = File::open(path).await.map_err(read_err)?;
    // The tail counts the file's lines, partial ones too, and comes before `since`, as
    // the kubelet's reader takes them; it is found from the end, as the kubelet seeks,
    // so a long log is not read for its last lines.
    if let Some(n) = opts.tail_lines {
        let start = tail_start(&mut file, n, TAIL_BLOCK).await.map_err(read_err)?;
        file.seek(SeekFrom::Start(start)).await.map_err(read_err)?;
    }
    let mut reader = BufReader::new(file);
    let mut budget = opts.limit_bytes.unwrap_or(u64::MAX);
    let mut pending = Partial::default();
    let mut line = String::new();
    while reader.read_line(&mut line).await.map_err(read_err)? > 0 {
        if !line.ends_with('\n') {
            break; // a line still being written: followed below
        }
        if let Some(text) = parse_line(&line, &mut pending).and_then(|e| render(&e, opts))
            && !emit(out, &text, &mut budget).await?
        {
            return Ok(());
        }
        line.clear();
    }
    if !opts.follow {
        return Ok(());
    }
    follow(path, &mut reader, line, pending, opts, out, &mut budget).await
}

/// How much of a file is read at a time, backwards, to find where its tail starts.
const TAIL_BLOCK: u64 = 64 * 1024;

/// Where the last `lines` complete lines of `file` start: just after the newline that
/// ends the line before them, or 0 when the file has no more lines than that. Bytes
/// after the last newline (a line still being written) are not a line.
async fn tail_start(file: &mut File, lines: u64, block: u64) -> std::io::Result<u64> {
    let len = file.metadata().await?.len();
    let mut buf = vec![0; usize::try_from(block).unwrap_or(usize::MAX)];
    // The newline ending the last complete line is the first met from the end; the
    // tail starts after the (lines + 1)-th.
    let mut newlines = 0;
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(block);
        let chunk = &mut buf[..usize::try_from(end - start).unwrap_or(usize::MAX)];
        file.seek(SeekFrom::Start(start)).await?;
        file.read_exact(chunk).await?;
        for (i, byte) in chunk.iter().enumerate().rev() {
            if *byte == b'\n' {
                newlines += 1;
                if newlines == lines.saturating_add(1) {
                    return Ok(start + i as u64 + 1);
                }
            }
        }
        end = start;
    }
    Ok(0)
}

/// Reads on from where `reader` stands as the file grows; a file cut shorter (rotated or
/// truncated) is read again from its start.
async fn follow(
    path: &Path,
    reader: &mut BufReader<File>,
    mut line: String,
    mut pending: Partial,
    opts: &LogOptions,
    out: &mut (impl AsyncWrite + Unpin),
    budget: &mut u64,
) -> Result<(), Error> {
    let read_err = |source| Error::Read {
        path: path.display().to_string(),
        source,
    };
    loop {
        let n = reader.read_line(&mut line).await.map_err(read_err)?;
        if n == 0 {
            out.flush().await.map_err(Error::Write)?;
            tokio::time::sleep(FOLLOW_POLL).await;
            let position = reader.stream_position().await.map_err(read_err)?;
            let len = tokio::fs::metadata(path).await.map_err(read_err)?.len();
            if len < position {
                *reader = BufReader::new(File::open(path).await.map_err(read_err)?);
                line.clear();
                pending.clear();
            }
            continue;
        }
        if !line.ends_with('\n') {
            continue;
        }
        if let Some(text) = parse_line(&line, &mut pending).and_then(|e| render(&e, opts))
            && !emit(out, &text, budget).await?
        {
            return Ok(());
        }
        line.clear();
    }
}

/// Writes `text` within `budget`; `false` once the budget is spent.
async fn emit(out: &mut (impl AsyncWrite + Unpin), text: &str, budget: &mut u64) -> Result<bool, Error> {
    let bytes = text.as_bytes();
    let n = bytes.len().min(usize::try_from(*budget).unwrap_or(usize::MAX));
    out.write_all(&bytes[..n]).await.map_err(Error::Write)?;
    *budget -= n as u64;
    if *budget == 0 {
        out.flush().await.map_err(Error::Write)?;
    }
    Ok(*budget > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(content: &str, opts: LogOptions) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        std::fs::write(&path, content).unwrap();
        let mut out = Vec::new();
        write_logs(&path, &opts, &mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    const CRI: &str = "2016-10-06T00:00:00Z stdout F one\n\
                       2016-10-06T00:00:01.5Z stderr P tw\n\
                       2016-10-06T00:00:01.6Z stderr F o\n\
                       2016-10-06T00:00:02Z stdout F three\n";

    #[tokio::test]
    async fn cri_lines_should_join_partials_and_drop_their_prefix() {
        assert_eq!(read(CRI, LogOptions::default()).await, "one\ntwo\nthree\n");
    }

    #[tokio::test]
    async fn options_should_act_as_kubectl_logs_says() {
        let tail = LogOptions {
            tail_lines: Some(2),
            ..Default::default()
        };
        // The tail counts the file's lines, the partial one too (as the kubelet).
        assert_eq!(read(CRI, tail).await, "o\nthree\n");
        let since = LogOptions {
            since: Some("2016-10-06T00:00:01Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(read(CRI, since).await, "two\nthree\n");
        let stamped = LogOptions {
            timestamps: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        assert_eq!(read(CRI, stamped).await, "2016-10-06T00:00:02.000000000Z three\n");
        // A line in parts carries its first part's time.
        let stamped = LogOptions {
            timestamps: true,
            tail_lines: Some(3),
            ..Default::default()
        };
        let text = read(CRI, stamped).await;
        assert!(text.starts_with("2016-10-06T00:00:01.500000000Z two\n"), "{text}");
        let limited = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(read(CRI, limited).await, "one\ntw");
    }

    #[tokio::test]
    async fn the_tail_should_be_found_from_the_end_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let text = "one\ntwo\nthree\nfour\nhalf";
        std::fs::write(&path, text).unwrap();
        let mut file = File::open(&path).await.unwrap();
        for block in [1, 3, 4, 64 * 1024] {
            for (lines, want) in [
                (0, "half"),
                (1, "four\nhalf"),
                (3, "two\nthree\nfour\nhalf"),
                (4, text),
                (9, text),
                (u64::MAX, text),
            ] {
                let start = tail_start(&mut file, lines, block).await.unwrap();
                assert_eq!(&text[start as usize..], want, "tail {lines}, block {block}");
            }
        }
        // A file ending in a newline: the last line is complete.
        std::fs::write(&path, "a\nb\n").unwrap();
        let mut file = File::open(&path).await.unwrap();
        assert_eq!(tail_start(&mut file, 1, 1).await.unwrap(), 2);
        assert_eq!(tail_start(&mut file, 0, 1).await.unwrap(), 4);
    }

    #[tokio::test]
    async fn docker_json_and_plain_lines_should_both_read() {
        let text =
            "{\"log\":\"json\\n\",\"stream\":\"stdout\",\"time\":\"2016-10-06T00:00:00Z\"}\nplain text\n";
        assert_eq!(read(text, LogOptions::default()).await, "json\nplain text\n");
    }

    #[tokio::test]
    async fn a_missing_file_should_name_it() {
        let mut out = Vec::new();
        let err = write_logs(Path::new("/nonexistent/x.log"), &LogOptions::default(), &mut out)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("failed to read logs file /nonexistent/x.log: "),
            "{err}"
        );
    }

    #[tokio::test]
    async fn follow_should_pass_on_lines_appended_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        std::fs::write(&path, "2016-10-06T00:00:00Z stdout F one\n").unwrap();
        let (mut client, mut server) = tokio::io::duplex(1024);
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        let p = path.clone();
        let task = tokio::spawn(async move { write_logs(&p, &opts, &mut server).await });
        let mut got = String::new();
        let mut buf = [0u8; 64];
        use tokio::io::AsyncReadExt;
        let n = client.read(&mut buf).await.unwrap();
        got.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"2016-10-06T00:00:01Z stdout F two\n").unwrap();
        while got != "one\ntwo\n" {
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            got.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
        drop(client);
        // The next write fails once the client is gone; the task ends.
        f.write_all(b"2016-10-06T00:00:02Z stdout F three\n").unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(end, Err(Error::Write(_))), "{end:?}");
    }
}
