//! Runs a script of `tests/browser/` (playwright-core driving Debian's
//! chromium, see `tests/browser/chromium.mjs`) and reads what it reports:
//! one JSON object per stdout line. A `{"waiting":true}` line hands control
//! to the test (it changes the world, e.g. stops ClickHouse), and the
//! script continues once the test calls [`Script::resume`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// Bounds a hung browser step; asserts no speed.
const STEP_DEADLINE: Duration = Duration::from_secs(180);

/// Where screenshots are kept after the test: `target/test-artifacts/<name>/`.
pub fn artifacts(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Script {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<Value>,
}

/// What the script said next.
pub enum Said {
    /// A report (kept for [`Script::finish`]).
    Report,
    /// The script waits for [`Script::resume`].
    Waiting,
    Done,
}

impl Script {
    pub fn start(script: &str, env: &[(&str, String)]) -> Script {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
        assert!(dir.join("node_modules/playwright-core").is_dir(), "tests/browser/node_modules is missing: run deploy/dev/setup.sh (npm ci in tests/browser)");
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(dir.join(script)).current_dir(&dir).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("node runs (Debian package nodejs)");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Script { name: script.to_string(), child, stdin: Some(stdin), lines, seen: Vec::new() }
    }

    pub async fn next(&mut self) -> Said {
        let line = tokio::time::timeout(STEP_DEADLINE, self.lines.next_line()).await;
        let line = match line {
            Ok(line) => line.expect("reading the script's output"),
            Err(_) => panic!("{} hung; reported so far: {:#?}", self.name, self.seen),
        };
        let Some(line) = line else { return Said::Done };
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{} printed a line that is not JSON: {line}", self.name));
        if v["waiting"] == true {
            return Said::Waiting;
        }
        self.seen.push(v);
        Said::Report
    }

    pub async fn resume(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin is open until finish");
        stdin.write_all(b"go\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Waits for the script's end; panics with its stderr if it failed.
    /// Returns every report, in order.
    pub async fn finish(mut self) -> Vec<Value> {
        self.stdin = None;
        while let Said::Report | Said::Waiting = self.next().await {}
        let status = tokio::time::timeout(STEP_DEADLINE, self.child.wait()).await.expect("the script did not exit").unwrap();
        let mut err = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut err).await.ok();
        assert!(status.success(), "{} failed ({status}): {err}\nreported: {:#?}", self.name, self.seen);
        self.seen
    }
}

/// The report of `step`.
pub fn step<'a>(reports: &'a [Value], step: &str) -> &'a Value {
    reports.iter().find(|r| r["step"] == step).unwrap_or_else(|| panic!("no {step:?} step in {reports:#?}"))
}
