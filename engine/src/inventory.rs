//! Placement's inventory record of one resource class: total, reserved,
//! unit constraints and allocation ratio. The one type an agent reports,
//! Placement stores and a fleet row's capacity is made from, so no layer
//! converts field by field.

use serde::{Deserialize, Serialize};

/// Placement's `db_const.MAX_INT`, the largest `max_unit`.
pub const MAX_INT: i64 = 2_147_483_647;

/// One inventory record of a provider for one resource class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub total: i64,
    pub reserved: i64,
    pub min_unit: i64,
    pub max_unit: i64,
    pub step_size: i64,
    pub allocation_ratio: f64,
}

impl Default for Inventory {
    /// Placement's `INVENTORY_DEFAULTS` (total has none; it is required).
    fn default() -> Self {
        Inventory { total: 0, reserved: 0, min_unit: 1, max_unit: MAX_INT, step_size: 1, allocation_ratio: 1.0 }
    }
}

impl Inventory {
    /// `int((total - reserved) * allocation_ratio)`, as Placement computes it.
    pub fn capacity(&self) -> i64 {
        ((self.total - self.reserved) as f64 * self.allocation_ratio) as i64
    }

    /// Whether `used + amount` of this class fits, with unit constraints.
    pub fn fits(&self, used: i64, amount: i64) -> bool {
        (used + amount) as f64 <= (self.total - self.reserved) as f64 * self.allocation_ratio
            && self.min_unit <= amount
            && self.max_unit >= amount
            && amount % self.step_size == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_checks_capacity_with_ratio_and_units() {
        let inv =
            Inventory { total: 4, reserved: 1, step_size: 2, max_unit: 4, allocation_ratio: 2.0, ..Default::default() };
        assert_eq!(inv.capacity(), 6);
        assert!(inv.fits(2, 4));
        assert!(!inv.fits(4, 4), "over capacity");
        assert!(!inv.fits(0, 3), "not a multiple of step_size");
        assert!(!inv.fits(0, 6), "over max_unit");
    }

    #[test]
    fn serializes_with_placements_field_names() {
        let v = serde_json::to_value(Inventory { total: 8, ..Default::default() }).expect("json");
        assert_eq!(v["total"], 8);
        assert_eq!(v["max_unit"], MAX_INT);
        assert_eq!(v["allocation_ratio"], 1.0);
    }
}
