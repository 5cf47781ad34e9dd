//! The recorded dispatches of one batch size: fixed ones, dropout (re-seeded each step) and the
//! cross-entropy (its uniform rewritten each step).

use crate::kernels::Dispatch;

pub(super) enum Step {
    Fixed(Dispatch),
    /// Dropout with this tag (the same mask forward and backward).
    Dropout(Dispatch, u32),
    CrossEntropy(Dispatch),
}

/// Dispatches for one batch size, built once.
pub(super) struct StepPlan {
    pub(super) train: Vec<Step>,
    pub(super) eval: Vec<Step>,
}
