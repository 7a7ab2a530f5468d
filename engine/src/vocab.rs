//! Names the engine knows: standard resource classes (os-resource-classes)
//! and traits (os-traits), plus custom ones (`CUSTOM_*`) created on demand.
//!
//! Traits get bits lazily: a trait gets a bit when the first host carries it,
//! so the per-host trait set stays as narrow as the fleet's real variety.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use crate::error::EngineError;

/// Standard resource classes, in os-resource-classes order.
pub const STANDARD_RESOURCE_CLASSES: &str = include_str!("vocab/os_resource_classes.txt");
/// Standard traits from os-traits.
pub const STANDARD_TRAITS: &str = include_str!("vocab/os_traits.txt");

fn standard(list: &'static str, cell: &'static OnceLock<HashSet<&'static str>>) -> &'static HashSet<&'static str> {
    cell.get_or_init(|| list.lines().collect())
}

/// True when `name` is a standard trait or a well-formed custom one.
pub fn is_known_trait(name: &str) -> bool {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    is_custom_name(name) || standard(STANDARD_TRAITS, &SET).contains(name)
}

/// True when `name` is a standard resource class or a well-formed custom one.
pub fn is_known_resource_class(name: &str) -> bool {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    is_custom_name(name) || standard(STANDARD_RESOURCE_CLASSES, &SET).contains(name)
}

/// Placement's rule for custom names: `CUSTOM_` then `[A-Z0-9_]+`.
pub fn is_custom_name(name: &str) -> bool {
    name.strip_prefix("CUSTOM_").is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// Assigns dense ids to names (traits, resource classes, metric names ...).
#[derive(Clone, Debug, Default)]
pub struct Interner {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Interner {
    /// The id of `name`, assigning the next one if new.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        id
    }

    /// The id of `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The name of `id`.
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// All names, in id order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Checks a trait name given by a caller.
///
/// # Errors
/// [`EngineError::Invalid`] naming the trait when it is neither standard nor
/// a well-formed `CUSTOM_` trait.
pub fn check_trait(name: &str) -> Result<(), EngineError> {
    if is_known_trait(name) {
        Ok(())
    } else {
        Err(EngineError::invalid(format!("unknown trait {name:?}: not an os-traits name and not CUSTOM_[A-Z0-9_]+")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_custom_names() {
        assert!(is_known_trait("HW_CPU_X86_AVX2"));
        assert!(is_known_trait("COMPUTE_STATUS_DISABLED"));
        assert!(is_known_trait("CUSTOM_GPU_A100"));
        assert!(!is_known_trait("CUSTOM_"));
        assert!(!is_known_trait("custom_gpu"));
        assert!(is_known_resource_class("VCPU"));
        assert!(is_known_resource_class("CUSTOM_BAREMETAL_GOLD"));
        assert!(!is_known_resource_class("RAM"));
        assert!(check_trait("NOT_A_TRAIT").is_err());
    }

    #[test]
    fn interner_is_dense_and_stable() {
        let mut i = Interner::default();
        assert_eq!(i.intern("a"), 0);
        assert_eq!(i.intern("b"), 1);
        assert_eq!(i.intern("a"), 0);
        assert_eq!(i.name(1), "b");
    }
}
