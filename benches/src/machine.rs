//! The machine a benchmark ran on, and how busy it was meanwhile: the CPU
//! time other processes took and the time the hypervisor stole, read from
//! `/proc` around the measurement, so a reader knows when to distrust it.

use serde::{Deserialize, Serialize};

/// Another process took more than this share of all CPU time during a
/// measurement: the run is flagged busy.
pub const BUSY_OTHERS: f64 = 0.15;
/// The hypervisor stole more than this share: the run is flagged busy.
pub const BUSY_STEAL: f64 = 0.05;

/// What the machine is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// Threads of the engine's rayon pool.
    pub pool_threads: usize,
    pub memory_gib: f64,
    pub os: String,
}

impl Machine {
    /// Reads `/proc` (fields it cannot read stay empty or zero).
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split(':').nth(1)))
            .map_or_else(|| std::env::consts::ARCH.to_owned(), |s| s.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kb: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|x| x.parse().ok())
            .unwrap_or(0.0);
        let os = std::fs::read_to_string("/etc/os-release")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map_or_else(|| std::env::consts::OS.to_owned(), |s| s.trim_matches('"').to_owned());
        Self {
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            pool_threads: rayon::current_num_threads(),
            memory_gib: mem_kb / (1024.0 * 1024.0),
            os,
        }
    }
}

/// How busy the machine was over one measurement window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// 1-minute load average when the window opened.
    pub load_average_before: f64,
    /// Share of all CPU time in the window used by processes other than
    /// this one (and the servers it started): 0 on an idle machine.
    pub others_cpu_share: f64,
    /// Share of all CPU time the hypervisor stole.
    pub steal_share: f64,
    /// `others_cpu_share` above [`BUSY_OTHERS`] or `steal_share` above
    /// [`BUSY_STEAL`]. (The load average is reported, not judged: it still
    /// carries the run's own earlier workloads for minutes.)
    pub busy: bool,
    /// Why it is busy, in words (empty when not).
    pub why: String,
}

/// A measurement window: opened before the work, closed after it.
pub struct LoadWindow {
    load_before: f64,
    stat: Option<CpuTimes>,
    own: u64,
    pids: Vec<u32>,
}

/// Jiffies of the machine, from the `cpu` line of `/proc/stat`.
#[derive(Clone, Copy)]
struct CpuTimes {
    total: u64,
    idle: u64,
    steal: u64,
}

fn cpu_times() -> Option<CpuTimes> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is
    // already inside user)
    let total: u64 = v.iter().take(8).sum();
    Some(CpuTimes { total, idle: v.get(3)? + v.get(4).unwrap_or(&0), steal: *v.get(7).unwrap_or(&0) })
}

/// utime + stime of a process (and its waited-for children), jiffies.
fn process_jiffies(pid: &str) -> u64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0 };
    // fields after the command name, which is in parentheses
    let Some(rest) = s.rsplit_once(')').map(|x| x.1) else { return 0 };
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(4).filter_map(|x| x.parse().ok()).collect();
    f.iter().sum()
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0.0)
}

/// `pids` and every process below them (a server's workers).
fn with_descendants(pids: &[u32]) -> Vec<u32> {
    let mut out = pids.to_vec();
    if pids.is_empty() {
        return out;
    }
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut k = 0;
    while k < out.len() {
        let p = out[k];
        out.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        k += 1;
    }
    out
}

impl LoadWindow {
    /// Opens a window; `pids` are processes started for the run (servers)
    /// whose CPU time, and their children's, counts as the run's own.
    pub fn open(pids: &[u32]) -> Self {
        let pids = with_descendants(pids);
        let own = process_jiffies("self") + pids.iter().map(|p| process_jiffies(&p.to_string())).sum::<u64>();
        Self { load_before: load_average(), stat: cpu_times(), own, pids }
    }

    /// Closes the window.
    pub fn close(self) -> Load {
        let own_now = process_jiffies("self") + self.pids.iter().map(|p| process_jiffies(&p.to_string())).sum::<u64>();
        let (mut others, mut steal) = (0.0, 0.0);
        if let (Some(a), Some(b)) = (self.stat, cpu_times()) {
            let total = b.total.saturating_sub(a.total).max(1) as f64;
            let busy = (b.total - b.idle).saturating_sub(a.total - a.idle) as f64;
            let own = own_now.saturating_sub(self.own) as f64;
            others = ((busy - own) / total).clamp(0.0, 1.0);
            steal = (b.steal.saturating_sub(a.steal) as f64 / total).clamp(0.0, 1.0);
        }
        let mut why = Vec::new();
        if others > BUSY_OTHERS {
            why.push(format!("other processes took {:.0}% of the CPUs", 100.0 * others));
        }
        if steal > BUSY_STEAL {
            why.push(format!("the hypervisor stole {:.0}%", 100.0 * steal));
        }
        Load {
            load_average_before: self.load_before,
            others_cpu_share: others,
            steal_share: steal,
            busy: !why.is_empty(),
            why: why.join("; "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_loop_in_another_process_shows_as_other_cpu_time() {
        if cpu_times().is_none() {
            return; // not Linux
        }
        let quiet = LoadWindow::open(&[]);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let _ = quiet.close();
        // a child process that spins for a while
        let mut child = std::process::Command::new("sh")
            .args(["-c", "end=$(( $(date +%s) + 2 )); while [ $(date +%s) -lt $end ]; do :; done"])
            .spawn()
            .expect("sh");
        let w = LoadWindow::open(&[]);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let load = w.close();
        child.wait().expect("wait");
        // one spinning CPU out of `cpus`: well above zero
        let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        assert!(load.others_cpu_share > 0.3 / cpus, "{load:?}");
        // counted as the run's own when its pid is given
        let mut child = std::process::Command::new("sh")
            .args(["-c", "end=$(( $(date +%s) + 2 )); while [ $(date +%s) -lt $end ]; do :; done"])
            .spawn()
            .expect("sh");
        let w = LoadWindow::open(&[child.id()]);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let own = w.close();
        child.wait().expect("wait");
        assert!(own.others_cpu_share < load.others_cpu_share, "{own:?} vs {load:?}");
    }
}
