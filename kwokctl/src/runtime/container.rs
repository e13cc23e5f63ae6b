//! Container runtimes: asks the engine whether it answers, then refuses either way
//! with the true reason.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{BinaryRuntime, Error, Result};

/// How long an engine gets to answer `info`.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn refuse(runtime: &str, engine: &str) -> Result<BinaryRuntime> {
    match engine_info(engine) {
        Ok(()) => Err(Error::Unsupported(runtime.to_owned())),
        Err(detail) => Err(Error::NoEngine {
            runtime: runtime.to_owned(),
            detail,
        }),
    }
}

/// Runs `<engine> info`; `Err` carries why the engine is not usable.
fn engine_info(engine: &str) -> Result<(), String> {
    let mut child = Command::new(engine)
        .arg("info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{engine}: {e}"))?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            if status.success() {
                return Ok(());
            }
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                use std::io::Read;
                let _ = pipe.read_to_string(&mut stderr);
            }
            let line = stderr
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("no output");
            return Err(format!("{engine} info: {line}"));
        }
        if start.elapsed() > ENGINE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{engine} info did not answer within {}s",
                ENGINE_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
