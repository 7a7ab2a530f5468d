//! Calls to a running Quiver's admin endpoints (`/v1/...` on the Compute
//! port) for the commands that take `--from URL`.

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The token for `--from`: the flag, else `$OS_TOKEN`, else `admin`
/// (noauth2).
pub fn token(flag: Option<&str>) -> String {
    flag.map(str::to_owned).or_else(|| std::env::var("OS_TOKEN").ok()).unwrap_or_else(|| "admin".into())
}

/// POSTs `body` to `root` + `path` and returns the JSON answer; a refusal
/// becomes an error carrying the server's own detail.
///
/// # Errors
/// An unreachable server, an answer that is not JSON, or an error status.
pub fn post(root: &str, path: &str, token: &str, body: &Value) -> Result<Value> {
    let url = format!("{}{path}", root.trim_end_matches('/'));
    let resp = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()?
        .post(&url)
        .header("X-Auth-Token", token)
        .json(body)
        .send()
        .with_context(|| format!("--from: POST {url}"))?;
    let status = resp.status();
    let v: Value = resp.json().with_context(|| format!("--from: reading the answer of {url}"))?;
    if !status.is_success() {
        let detail = v["errors"][0]["detail"].as_str().map_or_else(|| v.to_string(), str::to_owned);
        bail!("--from: POST {url} answered {status}: {detail}");
    }
    Ok(v)
}
