//! The real things a workload can be timed against, from the shared
//! compatibility kits beside the checkout (`../shared`, or
//! `QUIVER_SHARED`): the real OpenStack Placement (placement-suite's
//! `run-reference.sh` with its venv) and Nova's own filter scheduler
//! (nova-parity's `nova-bench.py` with its venv) on the kit's own fleet
//! (`fleet-gen.py`). Each is used only when its venv is there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use quiver_engine::Fleet;

/// The shared folder: `QUIVER_SHARED`, `../shared` from the working
/// directory, or the one beside the checkout this binary was built from.
pub fn shared_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("QUIVER_SHARED").map(PathBuf::from),
        Some(PathBuf::from("../shared")),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")),
    ];
    candidates.into_iter().flatten().find(|p| p.join("nova-parity").is_dir() || p.join("placement-suite").is_dir())
}

fn venv(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// The real Placement, started for one workload; stopped when dropped.
pub struct Reference {
    child: Child,
    /// Its base URL.
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Reference {
    /// The gunicorn master's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        // SIGTERM lets gunicorn stop its workers too
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the real Placement on a free loopback port with a fresh SQLite
/// database, or says why it cannot (`Ok(Err(reason))`: no kit, no venv).
///
/// # Errors
/// A kit and venv that are there but whose server does not come up.
pub fn start_placement() -> Result<std::result::Result<Reference, String>> {
    let Some(shared) = shared_dir() else { return Ok(Err("no ../shared/placement-suite".into())) };
    let script = shared.join("placement-suite/run-reference.sh");
    let venv = venv("PLACEMENT_VENV", "/tmp/placement-ref/venv");
    if !venv.join("bin/gunicorn").exists() {
        return Ok(Err(format!(
            "the real Placement's venv is not at {} (bash {}/placement-suite/setup-reference.sh makes it)",
            venv.display(),
            shared.display()
        )));
    }
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("bash")
        .arg(&script)
        .arg(port.to_string())
        .arg(dir.path())
        .env("PLACEMENT_VENV", &venv)
        // bulk loading without an fsync per commit; reads are unaffected
        .env("PLACEMENT_SQLITE_SYNCHRONOUS", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", script.display()))?;
    let r = Reference { child, base: format!("http://127.0.0.1:{port}"), _dir: dir };
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        if http.get(format!("{}/", r.base)).send().is_ok_and(|x| x.status().is_success()) {
            return Ok(Ok(r));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("the real Placement ({}) did not answer within 180 s", script.display())
}

/// The parity kit's fleet (`fleet-gen.py --hosts N --seed S`), the very
/// fleet `nova-bench.py` times Nova on, read into Quiver.
///
/// # Errors
/// No kit, no python3, or a fleet Quiver cannot read.
pub fn nova_parity_fleet(hosts: usize, seed: u64) -> Result<Fleet> {
    let kit =
        shared_dir().map(|s| s.join("nova-parity")).context("fleet = \"nova-parity\": no ../shared/nova-parity")?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("fleet.json");
    let st = Command::new("python3")
        .arg(kit.join("fleet-gen.py"))
        .args(["--hosts", &hosts.to_string(), "--seed", &seed.to_string(), "-o"])
        .arg(&out)
        .status()
        .context("python3 fleet-gen.py")?;
    if !st.success() {
        bail!("fleet-gen.py --hosts {hosts} --seed {seed} failed ({st})");
    }
    Ok(quiver_datasets::nova_json::read_fleet(&out)?)
}

/// Nova's own filter + weigh pass on the kit's fleet.
pub struct NovaTiming {
    pub median_ms: f64,
    pub p90_ms: f64,
    pub median_cpu_ms: f64,
    pub requests: usize,
    pub version: String,
}

/// Times Nova with `nova-bench.py` (plain m1.small requests), or says why
/// it cannot (`Ok(Err(reason))`: no kit or no venv).
///
/// # Errors
/// A kit and venv that are there but whose run fails.
pub fn nova_bench(
    hosts: usize,
    profile: &str,
    requests: usize,
    seed: u64,
) -> Result<std::result::Result<NovaTiming, String>> {
    let Some(kit) = shared_dir().map(|s| s.join("nova-parity")) else {
        return Ok(Err("no ../shared/nova-parity".into()));
    };
    let py = venv("NOVA_REF_VENV", "/tmp/nova-ref/venv").join("bin/python");
    if !py.exists() {
        return Ok(Err(format!("Nova's venv is not at {} ({}/setup.sh makes it)", py.display(), kit.display())));
    }
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("nova.json");
    let out = Command::new(&py)
        .arg(kit.join("nova-bench.py"))
        .args(["--sizes", &hosts.to_string(), "--profiles", profile, "--mixes", "plain"])
        .args(["--requests", &requests.max(1).to_string(), "--seed", &seed.to_string(), "--breakdown-requests", "0"])
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("nova-bench.py")?;
    if !out.status.success() {
        bail!("nova-bench.py failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    let run = &doc["results"][0]["runs"][0];
    let num = |k: &str| run[k].as_f64().with_context(|| format!("nova-bench.py's JSON has no {k}"));
    Ok(Ok(NovaTiming {
        median_ms: num("median_ms")?,
        p90_ms: num("p90_ms")?,
        median_cpu_ms: num("median_cpu_ms")?,
        requests: run["requests_timed"].as_u64().unwrap_or(0) as usize,
        version: doc["nova_version"].as_str().unwrap_or("?").to_owned(),
    }))
}
