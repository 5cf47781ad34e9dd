//! Where an embedding is taken (pool5, fc6, fc7), and the frozen dense layers that take pool5
//! rows there: one implementation for the library's `embed` and `alexnet features --layer`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use super::dense::{DenseStack, GpuDense};
use super::Weights;
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::kernels::Precision;

/// Where an embedding is taken: the flattened pool5 (9216 floats for torchvision's net), or
/// the activations after fc6's or fc7's ReLU (4096 each): fc7 is the classic "AlexNet
/// features" of transfer-learning papers, torchvision's `classifier[5]` output (fc6 is
/// `classifier[2]`'s).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Tap {
    /// The pooled convolutional features (9216 floats: 256 x 6 x 6).
    Pool5,
    /// fc6 after its ReLU (4096 floats).
    Fc6,
    #[default]
    /// fc7 after its ReLU (4096 floats): the default.
    Fc7,
}

impl Tap {
    /// Every tap, bottom up.
    pub const ALL: [Tap; 3] = [Tap::Pool5, Tap::Fc6, Tap::Fc7];

    /// The tap's name ("pool5", "fc6", "fc7").
    pub fn name(self) -> &'static str {
        match self {
            Tap::Pool5 => "pool5",
            Tap::Fc6 => "fc6",
            Tap::Fc7 => "fc7",
        }
    }

    /// The dense layers from pool5 to this tap, each followed by its ReLU.
    pub fn dense_layers(self) -> &'static [&'static str] {
        match self {
            Tap::Pool5 => &[],
            Tap::Fc6 => &["fc6"],
            Tap::Fc7 => &["fc6", "fc7"],
        }
    }
}

impl fmt::Display for Tap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Tap {
    type Err = Error;
    fn from_str(s: &str) -> Result<Tap> {
        Tap::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| {
            Error::Invalid(format!("unknown layer '{s}': expected pool5, fc6 or fc7"))
        })
    }
}

/// Rows of pool5 features per dense submission (the GPU buffers hold this many rows).
const ROWS_PER_SUBMISSION: usize = 64;

/// The frozen dense layers from pool5 to a [`Tap`], uploaded once (f32, the network's own
/// dense forward) and run on each batch of pool5 rows; nothing at all for [`Tap::Pool5`].
pub struct TapLayers {
    tap: Tap,
    stack: Option<DenseStack>,
    dim: usize,
}

impl TapLayers {
    /// The layers of `weights` up to `tap`, for pool5 rows of `pool5_len` values.
    pub fn new(ctx: &GpuContext, weights: &Weights, tap: Tap, pool5_len: usize) -> Result<Self> {
        let names = tap.dense_layers();
        if names.is_empty() {
            return Ok(TapLayers {
                tap,
                stack: None,
                dim: pool5_len,
            });
        }
        let layers = names
            .iter()
            .map(|name| GpuDense::from_weights(ctx, weights, name, true, Precision::F32, None))
            .collect::<Result<Vec<_>>>()?;
        if layers[0].inp != pool5_len {
            return Err(Error::Invalid(format!(
                "pool5 gives {pool5_len} values per image but fc6 takes {}",
                layers[0].inp
            )));
        }
        let stack = DenseStack::new(ctx, layers, ROWS_PER_SUBMISSION)?;
        Ok(TapLayers {
            tap,
            dim: stack.output_len(),
            stack: Some(stack),
        })
    }

    /// The tap these layers end at.
    pub fn tap(&self) -> Tap {
        self.tap
    }

    /// Values per row at the tap.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The tap's rows for `pool5` (`[rows, pool5_len]`): `[rows, dim]`, `pool5` itself at
    /// [`Tap::Pool5`].
    pub fn apply<'a>(&mut self, ctx: &GpuContext, pool5: &'a [f32]) -> Result<Cow<'a, [f32]>> {
        match &mut self.stack {
            None => Ok(Cow::Borrowed(pool5)),
            Some(stack) => Ok(Cow::Owned(stack.forward(ctx, pool5)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tap parses from its name (the CLI's `--layer` values are these names) and an
    /// unknown one is refused, listing the three.
    #[test]
    fn taps_parse_from_their_names() {
        for tap in Tap::ALL {
            assert_eq!(tap.name().parse::<Tap>().unwrap(), tap);
            assert_eq!(tap.to_string(), tap.name());
        }
        let err = "fc8".parse::<Tap>().unwrap_err().to_string();
        assert!(
            err.contains("'fc8'") && err.contains("pool5, fc6 or fc7"),
            "{err}"
        );
        assert_eq!(Tap::Fc7.dense_layers(), ["fc6", "fc7"]);
    }
}
