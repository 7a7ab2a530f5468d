//! `quiver bench auth`: what Keystone token validation adds to a request
//! once the token is in the cache, measured in process on the Placement
//! API: the same `GET /resource_providers/{uuid}` through the noauth2 app
//! and through the Keystone-protected one, interleaved so background load
//! hits both alike.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use axum::body::Body;
use axum::http::Request;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tower::ServiceExt;

use quiver_api::auth::{AuthStrategy, Credentials, KeystoneAuth, KeystoneConfig, PLACEMENT_PUBLIC, protect};
use quiver_api::placement_api::{Metrics, PlacementApi, app, policy::Policy};
use quiver_placement::Placement;
use quiver_placement::store::Durability;

/// Arguments of `quiver bench auth`.
#[derive(Debug, Args)]
#[command(after_help = "Reports medians over --rounds rounds (each round: --batch requests without
auth, then --batch with a cached Keystone token, alternating):
  noauth2 us    one GET /resource_providers/{uuid} through the Placement app, no token check
  keystone us   the same request, its token validated from the warm cache
  cost us       keystone - noauth2: what validation adds per request
  lookup us     KeystoneAuth::authenticate alone on a cached token

Keystone is not contacted: the token is put in the cache first, so this is
the warm path only (a cold token costs a round trip to Keystone).

Example:
  quiver bench auth --rounds 31 --batch 2000")]
pub struct AuthBenchArgs {
    /// Rounds (medians are taken over them).
    #[arg(long, default_value_t = 21)]
    pub rounds: usize,
    /// Requests per side per round.
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the bench.
///
/// # Errors
/// A data directory or runtime that cannot be made.
pub fn run(a: AuthBenchArgs) -> Result<()> {
    let (rounds, batch) = (a.rounds.max(1), a.batch.max(1));
    let dir = tempfile::tempdir()?;
    let placement = Arc::new(Placement::open(dir.path(), Durability::Process).map_err(|e| anyhow::anyhow!("{e}"))?);
    let api = Arc::new(PlacementApi {
        placement,
        policy: Policy::default(),
        cors: None,
        metrics: Metrics::default(),
        max_body_bytes: 4 << 20,
    });
    // Nothing listens on port 9: a cache miss would fail loudly as a 503.
    let config: KeystoneConfig = toml::from_str(
        "www_authenticate_uri = \"http://127.0.0.1:9/v3\"\nauth_url = \"http://127.0.0.1:9/v3\"\n\
         username = \"quiver\"\npassword = \"x\"\nproject_name = \"service\"\ntoken_cache_time = 86400\n",
    )?;
    let keystone = Arc::new(KeystoneAuth::new(config).map_err(|e| anyhow::anyhow!(e))?);
    let token = format!("gAAAAA{}", uuid::Uuid::new_v4().simple());
    let creds = Credentials {
        user_id: Some("bench-admin".into()),
        project_id: Some("bench".into()),
        roles: vec!["admin".into(), "member".into(), "reader".into()],
        from_keystone: true,
        ..Credentials::default()
    };
    keystone.remember(&token, creds, SystemTime::now() + Duration::from_secs(86400));
    let plain = app(Arc::clone(&api));
    let guarded = protect(app(api), &AuthStrategy::Keystone(Arc::clone(&keystone)), PLACEMENT_PUBLIC);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let uuid = uuid::Uuid::new_v4().to_string();
        let create = Request::post("/resource_providers")
            .header("x-auth-token", "admin")
            .header("content-type", "application/json")
            .header("openstack-api-version", "placement 1.20")
            .body(Body::from(json!({"name": "bench-rp", "uuid": uuid}).to_string()))?;
        let r = plain.clone().oneshot(create).await?;
        anyhow::ensure!(r.status().is_success(), "cannot create the provider: {}", r.status());
        let path = format!("/resource_providers/{uuid}");
        let one = |router: axum::Router, token: String, path: String| async move {
            let req = Request::get(path).header("x-auth-token", token).body(Body::empty()).expect("request");
            let r = router.oneshot(req).await.expect("infallible");
            anyhow::ensure!(r.status() == 200, "GET answered {}", r.status());
            Ok::<_, anyhow::Error>(())
        };
        let bar = ProgressBar::new(rounds as u64)
            .with_style(ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} rounds").context("style")?)
            .with_message("bench auth");
        let (mut noauth, mut keyed, mut lookup) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..batch {
                one(plain.clone(), "admin".into(), path.clone()).await?;
            }
            noauth.push(t.elapsed().as_secs_f64() * 1e6 / batch as f64);
            let t = Instant::now();
            for _ in 0..batch {
                one(guarded.clone(), token.clone(), path.clone()).await?;
            }
            keyed.push(t.elapsed().as_secs_f64() * 1e6 / batch as f64);
            let t = Instant::now();
            for _ in 0..batch {
                keystone.authenticate(Some(&token), None).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            lookup.push(t.elapsed().as_secs_f64() * 1e6 / batch as f64);
            bar.inc(1);
        }
        bar.finish_and_clear();
        let (n, k, l) = (median(noauth), median(keyed), median(lookup));
        println!("GET /resource_providers/{{uuid}}, in process, {rounds} rounds x {batch} requests per side (medians)");
        println!("  noauth2 us   {n:>8.2}");
        println!("  keystone us  {k:>8.2}   (warm token cache; x{:.2} of noauth2)", k / n);
        println!("  cost us      {:>8.2}", k - n);
        println!("  lookup us    {l:>8.2}   (KeystoneAuth::authenticate on a cached token)");
        Ok(())
    })
}
