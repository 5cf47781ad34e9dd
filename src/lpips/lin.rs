//! The lin layers' calibration ([`Lin`]): which learned 1x1 weights (the lpips 0.1.4 wheel's
//! v0.1 or v0.0, built in) or none, and whether the input goes through the scaling layer.

use std::path::Path;

use crate::error::Result;
use crate::weights::{read_tensors_from_bytes, Format};

use super::trunk::CHANNELS;

/// The learned lin weights of the 0.1.4 wheel (BSD-2-Clause, see `assets/lpips/`), built in:
/// 11 kB, and no path to look up at run time.
const LIN_V0_1: &[u8] = include_bytes!("../../assets/lpips/v0.1/alex.pth");
const LIN_V0_0: &[u8] = include_bytes!("../../assets/lpips/v0.0/alex.pth");

/// Which calibration of the lin layers (and of the input scaling) to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lin {
    /// `LPIPS(net='alex')`, the default: v0.1 lin weights, input scaling layer.
    #[default]
    V0_1,
    /// `LPIPS(net='alex', version='0.0')`: the original release's lin weights, and no input
    /// scaling (the package keeps that release's missing scaling for reproducibility).
    V0_0,
    /// `LPIPS(net='alex', lpips=False)`, the "baseline": no lin layers, the squared
    /// differences summed (not averaged) over channels; the v0.1 input scaling still applies.
    None,
}

impl Lin {
    /// Whether the input goes through the scaling layer (the package's `version == '0.1'`).
    pub fn scales_input(self) -> bool {
        self != Lin::V0_0
    }

    /// The version's name ("v0.1", "v0.0", "none"), as the package and the CLI spell it.
    pub fn name(self) -> &'static str {
        match self {
            Lin::V0_1 => "v0.1",
            Lin::V0_0 => "v0.0",
            Lin::None => "none",
        }
    }

    /// The five lin weight vectors (`[C_k]`): the built-in files, or ones for the baseline.
    pub fn weights(self) -> Result<Vec<Vec<f32>>> {
        let bytes = match self {
            Lin::V0_1 => LIN_V0_1,
            Lin::V0_0 => LIN_V0_0,
            Lin::None => return Ok(CHANNELS.iter().map(|&c| vec![1.0; c]).collect()),
        };
        let path = Path::new(match self {
            Lin::V0_1 => "<built-in lpips v0.1/alex.pth>",
            _ => "<built-in lpips v0.0/alex.pth>",
        });
        let raw = read_tensors_from_bytes(Format::Pth, bytes, path)?;
        (0..5)
            .map(|k| {
                let key = format!("lin{k}.model.1.weight");
                let t = raw.iter().find(|t| t.key == key).ok_or_else(|| {
                    crate::weights::raw::file_err(path, format!("no key '{key}'"))
                })?;
                let want = [1, CHANNELS[k], 1, 1];
                match &t.data {
                    Ok(d) if t.shape == want => Ok(d.clone()),
                    Ok(_) => Err(crate::weights::raw::file_err(
                        path,
                        format!("key '{key}': expected shape {want:?}, found {:?}", t.shape),
                    )),
                    Err(why) => Err(crate::weights::raw::file_err(
                        path,
                        format!("key '{key}': {why}"),
                    )),
                }
            })
            .collect()
    }
}

impl std::str::FromStr for Lin {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "v0.1" | "0.1" => Ok(Lin::V0_1),
            "v0.0" | "0.0" => Ok(Lin::V0_0),
            "none" | "baseline" => Ok(Lin::None),
            _ => Err(format!(
                "unknown LPIPS version {s:?} (expected v0.1, v0.0 or none)"
            )),
        }
    }
}

impl std::fmt::Display for Lin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
