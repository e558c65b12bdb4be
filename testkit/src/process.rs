//! The services under test, run as child processes.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free loopback TCP port (free when asked; the tests bind it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process with its stderr in a log file; stopped (SIGTERM, then SIGKILL)
/// when dropped if it still runs.
pub struct Process {
    /// The child.
    pub child: Child,
    /// The file its stderr goes to.
    pub log: PathBuf,
}

impl Process {
    /// Spawns `cmd` with stdin and stdout on `/dev/null` and stderr into the file
    /// `log`; panics when it cannot start.
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Process {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Process { child, log }
    }

    /// Its log so far (empty when unreadable).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (up to 15 s, then SIGKILL) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `ready` every 50 ms until it returns true; panics with `what` and this
    /// process's log when `timeout` passes first.
    pub async fn wait_until(&self, timeout: Duration, what: &str, ready: impl AsyncFn() -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if ready().await {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {}", self.log_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}
