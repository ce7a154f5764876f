//! Storage classes: how many copies a key wants. `default` (2 copies)
//! always exists; creating more arrives with the cluster state.

pub const DEFAULT_CLASS: &str = "default";
const DEFAULT_REPLICAS: u32 = 2;

/// The copy count of `class`, or `None` when the class is unknown.
pub fn replicas(class: &str) -> Option<u32> {
    (class == DEFAULT_CLASS).then_some(DEFAULT_REPLICAS)
}
