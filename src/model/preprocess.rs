//! Which input transform each preset expects. The transforms themselves are plain values of
//! the input layer (`data::Preprocess::{TORCHVISION, CAFFE, KERAS}`); the choice is the
//! network's, so it lives here and `data` needs no `Arch`. (An inherent impl may sit anywhere
//! in its crate: every caller keeps writing `Preprocess::for_arch(arch)`.)

use super::Arch;
use crate::data::Preprocess;

impl Preprocess {
    /// The preprocessing `arch`'s weights were trained with (torchvision's
    /// `weights.transforms()`).
    pub fn for_arch(arch: Arch) -> Preprocess {
        match arch {
            Arch::Torchvision => Preprocess::TORCHVISION,
            Arch::Caffe => Preprocess::CAFFE,
            Arch::Keras => Preprocess::KERAS,
        }
    }
}
