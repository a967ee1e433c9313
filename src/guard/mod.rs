//! The guard: the one path every mutating tool goes through
//! (plan → facts → decide → approve → apply → verify → record).

/// Proof of being the guard. Its field is private to this module, so no other code can
/// make one, and without one there is no [`crate::cluster::Writer`].
pub struct GuardToken(());
