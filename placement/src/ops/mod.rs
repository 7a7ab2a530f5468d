//! The writes and queries of the Placement API, on [`State`], one file per
//! Placement object as Placement's own `objects/` has. Every write
//! validates before it mutates and records what it touched in `dirty`; the
//! messages and codes are Placement's.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::Inventory;

mod aggregate;
mod allocation;
mod inventory;
mod reshaper;
mod resource_class;
mod resource_provider;
mod traits;
mod usage;

/// One consumer's allocations in a write (PUT or POST /allocations, reshaper).
#[derive(Clone, Debug, Default)]
pub struct ConsumerWrite {
    pub consumer: String,
    pub project: Option<String>,
    pub user: Option<String>,
    /// `None` when the microversion predates consumer generations.
    pub generation_check: Option<Option<i64>>,
    /// `None` when the microversion predates consumer types.
    pub consumer_type: Option<String>,
    /// Provider UUID to (class, amount); empty deletes the allocations.
    pub allocations: Vec<(String, Vec<(String, i64)>)>,
}

/// Consumer type to (used per class, consumer count).
pub type UsagesByType = BTreeMap<String, (BTreeMap<String, i64>, u64)>;

/// One provider's part of a reshape: uuid, generation, new inventory.
pub type ReshapeInventory = (String, i64, Vec<(String, Inventory)>);

/// Which message family the allocation write reports errors in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocationWriteKind {
    Put,
    Post,
    Reshape,
}

/// Filters of `GET /resource_providers`.
#[derive(Clone, Debug, Default)]
pub struct ProviderFilters {
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub member_of: Vec<BTreeSet<String>>,
    pub forbidden_aggs: BTreeSet<String>,
    pub in_tree: Option<String>,
    pub resources: Vec<(String, i64)>,
    pub required: Vec<BTreeSet<String>>,
    pub forbidden_traits: BTreeSet<String>,
}

pub const INCOMPLETE_CONSUMER_PROJECT: &str = "00000000-0000-0000-0000-000000000000";
pub const INCOMPLETE_CONSUMER_USER: &str = "00000000-0000-0000-0000-000000000000";
