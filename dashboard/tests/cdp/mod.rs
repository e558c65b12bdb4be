//! A small Chrome DevTools Protocol client: starts Debian's headless Chromium, attaches
//! to its page, evaluates JavaScript, resizes the viewport, takes screenshots and lets
//! downloads land in a folder. Enough for an end-to-end test, nothing more.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The Chromium binary: `AURUM_CHROMIUM_BIN`, else `/usr/bin/chromium` when present.
/// Missing: skip with a message, or fail under `CI=true`.
pub fn chromium_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("AURUM_CHROMIUM_BIN")
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    let default = Path::new("/usr/bin/chromium");
    if default.exists() {
        return Some(default.to_path_buf());
    }
    aurum_testkit::environment::required(
        "AURUM_CHROMIUM_BIN",
        "a Chromium binary (eval \"$(testenv/chromium.sh)\")",
    )
    .map(PathBuf::from)
}

/// A running headless Chromium with one attached page.
pub struct Browser {
    child: Child,
    socket: Socket,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium with a fresh profile; downloads go to `downloads`.
    pub async fn launch(bin: &Path, downloads: &Path) -> Browser {
        Self::launch_with_args(bin, downloads, &[]).await
    }

    /// [`Browser::launch`] with extra command-line switches, e.g.
    /// `--host-resolver-rules` to reach an ingress by its host names.
    pub async fn launch_with_args(bin: &Path, downloads: &Path, extra: &[String]) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        // The flags the machine notes call for: no sandbox as root, and no background
        // networking (this machine has no internet; those connections only fail).
        let child = Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
            ])
            .args(extra)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        // Chromium writes its port and browser endpoint once it listens.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    break (port.to_string(), path.to_string());
                }
            }
            assert!(
                Instant::now() < deadline,
                "Chromium did not open its DevTools port"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}{path}"))
            .await
            .expect("connect to Chromium's DevTools");
        let mut browser = Browser {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let targets = browser
            .call_browser("Target.getTargets", json!({}))
            .await
            .unwrap();
        let page = targets["targetInfos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .map(|t| t["targetId"].as_str().unwrap().to_string());
        let target_id = match page {
            Some(id) => id,
            None => browser
                .call_browser("Target.createTarget", json!({"url": "about:blank"}))
                .await
                .unwrap()["targetId"]
                .as_str()
                .unwrap()
                .to_string(),
        };
        let attached = browser
            .call_browser(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await
            .unwrap();
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser
            .call_browser(
                "Browser.setDownloadBehavior",
                json!({"behavior": "allow", "downloadPath": downloads.to_str().unwrap()}),
            )
            .await
            .unwrap();
        browser.call("Page.enable", json!({})).await.unwrap();
        browser
    }

    async fn send(&mut self, method: &str, params: Value, session: bool) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if session {
            message["sessionId"] = Value::String(self.session.clone());
        }
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .map_err(|e| format!("send {method}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = tokio::time::timeout(left, self.socket.next())
                .await
                .map_err(|_| format!("{method}: no answer from Chromium"))?;
            let text = match next {
                Some(Ok(Message::Text(t))) => t.to_string(),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("{method}: {e}")),
                None => return Err(format!("{method}: Chromium closed the connection")),
            };
            let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            // Events (no id) and answers to other calls are not waited for here.
            if v["id"].as_u64() != Some(id) {
                continue;
            }
            if let Some(err) = v.get("error") {
                return Err(format!("{method}: {err}"));
            }
            return Ok(v["result"].clone());
        }
    }

    /// A browser-level command.
    pub async fn call_browser(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.send(method, params, false).await
    }

    /// A command to the page.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.send(method, params, true).await
    }

    /// The value of a JavaScript expression in the page.
    pub async fn try_eval(&mut self, expression: &str) -> Result<Value, String> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(format!("{expression}: {ex}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// The value of a JavaScript expression in the page (panics on an exception).
    pub async fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression).await.unwrap()
    }

    /// Waits until `condition` (JavaScript) is true; evaluation errors while a page
    /// is being replaced count as "not yet".
    pub async fn wait_until(&mut self, condition: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Value::Bool(true)) = self.try_eval(condition).await {
                return;
            }
            if Instant::now() > deadline {
                let url = self.try_eval("location.href").await.unwrap_or_default();
                panic!("timed out waiting for {what} ({condition}); page at {url}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens `url` and waits for the page to have loaded.
    pub async fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}))
            .await
            .unwrap();
        self.wait_until("document.readyState === 'complete'", url)
            .await;
    }

    /// Sets the viewport (`mobile` also turns on the mobile meta viewport handling).
    pub async fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await
        .unwrap();
        // Let layout settle before anyone measures or shoots.
        self.wait_until(
            "document.readyState === 'complete' && innerWidth > 0",
            "layout",
        )
        .await;
    }

    /// A PNG screenshot of the viewport, written to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        self.capture(json!({"format": "png"}), path).await;
    }
}

impl Browser {
    /// A PNG screenshot of the whole page (beyond the viewport), written to `path`.
    pub async fn full_page_screenshot(&mut self, path: &Path) {
        let metrics = self.call("Page.getLayoutMetrics", json!({})).await.unwrap();
        let size = &metrics["cssContentSize"];
        self.capture(
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            }),
            path,
        )
        .await;
    }
}

impl Browser {
    /// `Page.captureScreenshot` with `params`, the PNG written to `path`.
    async fn capture(&mut self, params: Value, path: &Path) {
        let r = self.call("Page.captureScreenshot", params).await.unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Emulates the user's colour-scheme preference (`light` or `dark`).
    pub async fn color_scheme(&mut self, scheme: &str) {
        self.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        )
        .await
        .unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
