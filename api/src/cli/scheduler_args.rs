//! The scheduler options the planning commands share (`quiver explain`,
//! `quiver plan`): a filter profile or list, and Nova option overrides.

use anyhow::Result;
use clap::Args;
use quiver_engine::config::SchedulerConfig;

use super::decide::Profile;

/// Filters and option overrides, as `quiver decide` takes them.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Filter profile (ignored when --filters is given).
    #[arg(long, value_enum, default_value_t = Profile::Default)]
    pub profile: Profile,
    /// Explicit filter list, Nova class names, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub filters: Option<Vec<String>>,
    /// Nova option override `group.option=value`, repeatable, e.g.
    /// `filter_scheduler.ram_weight_multiplier=-1.0`.
    #[arg(long = "conf", value_name = "GROUP.OPTION=VALUE")]
    pub conf: Vec<String>,
}

impl SchedulerArgs {
    /// Sets the filters and applies the overrides to `conf` (after the
    /// fleet's and the request stream's own `nova_conf`).
    ///
    /// # Errors
    /// An unknown option or a value of the wrong type, named.
    pub fn apply(&self, conf: &mut SchedulerConfig) -> Result<()> {
        conf.enabled_filters = self.filters.clone().unwrap_or_else(|| self.profile.filters());
        for c in &self.conf {
            conf.set_override(c)?;
        }
        Ok(())
    }
}
