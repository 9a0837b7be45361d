//! A small W3C WebDriver client: chromedriver driving Debian's Chromium headless, for tests of the pages the
//! node serves. `scripts/ensure-deps.sh --browser` (run by `scripts/test.sh`) installs both when missing;
//! `LODE_CHROMIUM` and `LODE_CHROMEDRIVER` point at other binaries.
//!
//! chromedriver runs in its own process group with a fresh profile directory; dropping the [`Browser`] kills
//! the group, so no Chromium outlives its test. Every command is bounded in time (see [`crate::support::http`]).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lode_test_ports::PortBlock;
use serde_json::{json, Value};

use crate::support::http_within;

/// How long starting a session (and with it Chromium) may take: past chromedriver's own 60 s.
const SESSION_START: Duration = Duration::from_secs(75);

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn binary(env: &str, candidates: &[&str]) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no {} found (looked for {candidates:?}; set {env} to use another): \
                 run `scripts/ensure-deps.sh --browser` to install Debian's chromium and chromium-driver",
                candidates[0]
            )
        })
}

/// A headless Chromium session behind chromedriver.
pub struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
    _ports: PortBlock,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a reserved loopback port and opens a headless Chromium session.
    pub async fn start() -> Browser {
        use std::os::unix::process::CommandExt;
        let chromium = binary(
            "LODE_CHROMIUM",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
        );
        let driver_bin = binary("LODE_CHROMEDRIVER", &["/usr/bin/chromedriver"]);
        let ports = PortBlock::reserve();
        let port = ports.port(0);
        let profile = tempfile::tempdir().expect("profile dir");
        let log = std::fs::File::create(profile.path().join("chromedriver.log")).expect("log");
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_bin.display()));
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            _ports: ports,
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect(("127.0.0.1", port)),
            )
            .await;
            if matches!(ready, Ok(Ok(_))) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The flags keep Chromium off the network it cannot reach on these machines (background services,
        // component updates, QUIC) and out of any profile but its own.
        let profile_dir = browser._profile.path().join("profile");
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                        format!("--user-data-dir={}", profile_dir.display()),
                    ],
                },
            }}
        });
        // A new session starts Chromium: with the rest of the suite running on two cores that alone has taken
        // over 20 s (the bound of every other command). chromedriver gives up on a browser that has not started
        // within 60 s and says why; this bound only has to outlast that.
        let v = browser
            .command_within("POST", "/session", Some(caps), SESSION_START)
            .await;
        browser.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {v}"))
            .to_owned();
        browser
    }

    /// One WebDriver command; its `value`. A WebDriver error fails the test with its message.
    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.command_within(method, path, body, Duration::from_secs(20))
            .await
    }

    /// [`Self::command`] bounded by `limit`.
    async fn command_within(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        limit: Duration,
    ) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (head, reply) = http_within(&self.base, request.as_bytes(), limit).await;
        let v: Value = serde_json::from_slice(&reply)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {head}"));
        if !head.starts_with("http/1.1 200") {
            panic!("WebDriver {method} {path} failed: {}", v["value"]);
        }
        v["value"].clone()
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.command("POST", &self.at("/url"), Some(json!({ "url": url })))
            .await;
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .command(
                "POST",
                &self.at("/element"),
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    /// Clears the element `css` and types `text` into it, as a user would.
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.command(
            "POST",
            &self.at(&format!("/element/{e}/clear")),
            Some(json!({})),
        )
        .await;
        self.command(
            "POST",
            &self.at(&format!("/element/{e}/value")),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.command(
            "POST",
            &self.at(&format!("/element/{e}/click")),
            Some(json!({})),
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page; its return value.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// The text of the first element matching `css`, or None when there is none.
    pub async fn text(&self, css: &str) -> Option<String> {
        self.eval(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([css]),
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// Waits (bounded by `within`) until the element `css` exists, the page is not loading and `ok` holds for
    /// its text; the text. Fails with the page's error line, if any, when time runs out.
    pub async fn wait_text(
        &self,
        css: &str,
        within: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + within;
        loop {
            let loading = self
                .eval("return document.body.dataset.loading;", json!([]))
                .await;
            if loading.as_str() == Some("false") {
                if let Some(t) = self.text(css).await {
                    if ok(&t) {
                        return t;
                    }
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "{css} did not show what was expected within {within:?}: {:?} (page error: {:?}, url {:?})",
                    self.text(css).await,
                    self.text("#error").await,
                    self.eval("return location.href;", json!([])).await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and every Chromium process it started share its process group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}
