//! A host's base-image cache (Nova's `[DEFAULT] instances_path`, its
//! `_base` directory): images fetched from the image API ahead of boots
//! (aggregate image pre-caching, Compute API 2.81), one checked file per
//! image. A boot on the host uses the cached copy.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

/// One image to fetch: where from, and the checksum it must have.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageFetch {
    pub id: String,
    /// `GET` this for the image's bytes (the image API's `.../file`).
    pub url: String,
    /// Sent as `X-Auth-Token`.
    #[serde(default)]
    pub token: Option<String>,
    /// The image's MD5 (the image API's `checksum`), checked before the
    /// file is kept.
    #[serde(default)]
    pub checksum: Option<String>,
}

/// Nova's per-image results of `cache_images`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheOutcome {
    /// Fetched now.
    Cached,
    /// Already in the cache.
    Existing,
    /// This agent has no `instances_path`.
    Unsupported,
    /// The fetch or the check failed.
    Error,
}

impl CacheOutcome {
    /// Nova's name for it (`cached`, `existing`, `unsupported`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cached => "cached",
            Self::Existing => "existing",
            Self::Unsupported => "unsupported",
            Self::Error => "error",
        }
    }
}

/// The caches of one agent's hosts, under `root/<host>/_base`.
pub struct ImageCache {
    root: Option<PathBuf>,
    http: reqwest::blocking::Client,
}

impl ImageCache {
    /// A cache under `root` (`None`: no caching, every request is
    /// `unsupported`).
    pub fn new(root: Option<PathBuf>) -> Self {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(3600))
            .build()
            .unwrap_or_default();
        Self { root, http }
    }

    fn dir(&self, host: &str) -> Option<PathBuf> {
        self.root.as_ref().map(|r| r.join(host).join("_base"))
    }

    /// The cached file of image `id` on `host`, if it is there.
    pub fn cached(&self, host: &str, id: &str) -> Option<PathBuf> {
        self.dir(host).map(|d| d.join(id)).filter(|p| p.is_file())
    }

    /// The image ids cached on `host`.
    pub fn list(&self, host: &str) -> Vec<String> {
        let Some(Ok(entries)) = self.dir(host).map(std::fs::read_dir) else { return Vec::new() };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file() && e.path().extension().is_none())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        ids
    }

    /// Fetches each image into `host`'s cache, one after the other.
    pub fn fetch_all(&self, host: &str, images: &[ImageFetch]) -> BTreeMap<String, CacheOutcome> {
        images
            .iter()
            .map(|f| {
                let outcome = self.fetch(host, f).unwrap_or_else(|e| {
                    tracing::error!(host, image = %f.id, error = %e, "cannot cache the image");
                    CacheOutcome::Error
                });
                (f.id.clone(), outcome)
            })
            .collect()
    }

    /// Fetches one image; `Err(why)` when the fetch or its check failed
    /// (nothing is kept).
    fn fetch(&self, host: &str, f: &ImageFetch) -> Result<CacheOutcome, String> {
        let Some(dir) = self.dir(host) else { return Ok(CacheOutcome::Unsupported) };
        if f.id.is_empty() || f.id.contains(['/', '\\', '.']) {
            return Err(format!("{:?} is not an image id", f.id));
        }
        let path = dir.join(&f.id);
        if path.is_file() {
            return Ok(CacheOutcome::Existing);
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut req = self.http.get(&f.url);
        if let Some(t) = &f.token {
            req = req.header("X-Auth-Token", t);
        }
        let mut resp = req.send().map_err(|e| format!("GET {}: {e}", f.url))?;
        if !resp.status().is_success() {
            return Err(format!("GET {}: {}", f.url, resp.status()));
        }
        let tmp = path.with_extension("part");
        let written = (|| -> std::io::Result<String> {
            let mut out = std::fs::File::create(&tmp)?;
            let mut hasher = HashingWriter { inner: &mut out, md5: Md5::new() };
            resp.copy_to(&mut hasher).map_err(std::io::Error::other)?;
            let sum = format!("{:x}", hasher.md5.finalize());
            out.sync_all()?;
            Ok(sum)
        })();
        let sum = match written {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(format!("writing {}: {e}", tmp.display()));
            }
        };
        if let Some(want) = &f.checksum
            && !want.eq_ignore_ascii_case(&sum)
        {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("checksum {sum} is not the image's {want}"));
        }
        rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        tracing::info!(host, image = %f.id, path = %path.display(), "image cached");
        Ok(CacheOutcome::Cached)
    }
}

fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)?;
    // The rename is durable once the directory is.
    std::fs::File::open(to.parent().unwrap_or(to))?.sync_all()
}

/// Writes through, hashing what passes.
struct HashingWriter<'a, W: Write> {
    inner: &'a mut W,
    md5: Md5,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.md5.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
