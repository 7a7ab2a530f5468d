//! A `quiver serve` started for one bench run (a temporary data directory,
//! free loopback ports), the HTTP client the benches use, and percentiles.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The server; killed when dropped.
pub struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    /// Compute API base (`.../v2.1`).
    pub compute: String,
    /// Placement base.
    pub placement: String,
}

impl Server {
    /// The server process's id (its CPU time is the run's own).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `quiver serve` with `extra` arguments and waits until the Compute
/// API answers (at most 10 minutes: 100,000 embedded agents register first).
pub fn start(extra: &[String]) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let (p, c, i) = (free_port()?, free_port()?, free_port()?);
    let child = Command::new(std::env::current_exe()?)
        .args(["serve", "--data"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{p}"), "--compute-listen", &format!("127.0.0.1:{c}")])
        .args(["--image-listen", &format!("127.0.0.1:{i}")])
        .args(extra)
        .env("QUIVER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start quiver serve")?;
    let s = Server {
        child,
        _dir: dir,
        compute: format!("http://127.0.0.1:{c}/v2.1"),
        placement: format!("http://127.0.0.1:{p}"),
    };
    let http = client()?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        if http.get(format!("{}/os-hypervisors", s.compute)).send().is_ok_and(|r| r.status().is_success()) {
            return Ok(s);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("quiver serve did not come up")
}

/// An admin client at the newest microversions.
pub fn client() -> Result<reqwest::blocking::Client> {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("X-Auth-Token", "admin".parse()?);
    h.insert("OpenStack-API-Version", "compute 2.90, placement 1.39".parse()?);
    Ok(reqwest::blocking::Client::builder().default_headers(h).timeout(Duration::from_secs(120)).build()?)
}

/// The body of a successful response; an error with status and body else.
pub fn ok(r: reqwest::blocking::Response) -> Result<Value> {
    let st = r.status();
    let v: Value = r.json().unwrap_or(Value::Null);
    if !st.is_success() {
        bail!("{st}: {v}");
    }
    Ok(v)
}

/// Percentile `p` (0..1) of sorted samples (NaN for none).
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
