//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary
//! directory, started by `pg_ctl` on a free local port (its socket in that
//! directory too), stopped on drop. No system service is touched. As root
//! the cluster runs as the `postgres` user, since `initdb` refuses root.
//! `scripts/test` installs PostgreSQL where it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_user: Option<String>,
}

/// The directory holding `initdb` and `pg_ctl`: on `PATH`, or Debian's
/// `/usr/lib/postgresql/N/bin` (the newest).
fn bin_dir() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("initdb").exists() && d.join("pg_ctl").exists() {
                return Some(d);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl TestCluster {
    /// Starts a cluster; panics with the reason when PostgreSQL is missing.
    pub fn start() -> TestCluster {
        let bin = bin_dir().expect("PostgreSQL (initdb, pg_ctl) not found: run scripts/test, which installs it");
        let dir = tempfile::tempdir().expect("tempdir");
        let uid = Command::new("id").arg("-u").output().expect("id -u");
        let root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let as_user = root.then(|| "postgres".to_owned());
        if root {
            let status = Command::new("chown").args(["-R", "postgres:"]).arg(dir.path()).status().expect("chown");
            assert!(status.success(), "chown {} to postgres", dir.path().display());
        }
        let data = dir.path().join("data");
        let port = free_port();
        let c = TestCluster { dir, bin, port, as_user };
        c.run("initdb", &["-D", path(&data), "-U", "quiver", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        c.restart();
        c
    }

    /// Starts the server again after [`TestCluster::stop`] (same port, same
    /// data).
    pub fn restart(&self) {
        let data = self.dir.path().join("data");
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        self.run("pg_ctl", &["-D", path(&data), "-l", path(&log), "-o", &opts, "-w", "start"]);
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.as_user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd.args(args).output().unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A connection string for database `db` (created on first use).
    pub fn url(&self, db: &str) -> String {
        let admin = format!("postgresql://quiver@127.0.0.1:{}/postgres", self.port);
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("connect to the test cluster");
        let exists = c.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db]).expect("query").is_some();
        if !exists {
            c.batch_execute(&format!("CREATE DATABASE \"{db}\"")).expect("create database");
        }
        format!("postgresql://quiver@127.0.0.1:{}/{db}", self.port)
    }
}

impl TestCluster {
    /// Stops the server (immediately, as a crash would); a no-op when it
    /// is already stopped.
    pub fn stop(&self) {
        let data = self.dir.path().join("data");
        let exe = self.bin.join("pg_ctl");
        let mut cmd = match &self.as_user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let _ = cmd.args(["-D", path(&data), "-m", "immediate", "stop"]).output();
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}
