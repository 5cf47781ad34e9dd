//! Starting a head from given values (`train-head --init-head FILE`).

use std::path::Path;

use super::head::HeadWeights;
use crate::error::{Error, Result};
use crate::model::params::MappedTensors;
use crate::weights::read_tensors;

/// Head values from a weights file in the model's key names (e.g. `classifier.6.*` or `fc8.*`,
/// or Keras `dense_2/*`: any name scheme and layout a weights file may have, mapped and converted
/// by the same code as whole weight files). Every layer of `head` found in the file is replaced;
/// shapes must match. `flatten_source` is the `[C, H, W]` map fc6 flattens (for a Keras fc6).
pub fn load_init_head(
    path: &Path,
    head: &mut HeadWeights,
    flatten_source: Option<[usize; 3]>,
) -> Result<()> {
    let raw = read_tensors(path)?;
    let mapped = MappedTensors::new(path, &raw).map_err(|_| {
        Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::Malformed,
            "no head weights recognised (expected e.g. classifier.6.weight or fc8.weight)",
        )
    })?;
    let bad = |message: String| {
        Error::input(
            path.to_path_buf(),
            crate::error::InputErrorKind::Malformed,
            message,
        )
    };
    let mut found = 0;
    let layers: Vec<(String, usize, usize)> = head
        .layers
        .iter()
        .map(|l| (l.name.clone(), l.out, l.inp))
        .collect();
    for (name, out, inp) in layers {
        let nhwc = (name == "fc6").then_some(flatten_source).flatten();
        let weight = mapped
            .convert(&format!("{name}.weight"), &[out, inp], nhwc)
            .map_err(|p| bad(format!("{p} (for the new {name})")))?;
        let bias = mapped
            .convert(&format!("{name}.bias"), &[out], None)
            .map_err(|p| bad(format!("{p} (for the new {name})")))?;
        let (Some(w), Some(b)) = (weight, bias) else {
            continue;
        };
        head.set(&name, &w, &b, path)?;
        found += 1;
    }
    if found == 0 {
        return Err(bad(format!(
            "holds none of the head's layers ({})",
            head.layers
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}
