//! The whole network on the CPU, layer by layer with the kernels' f64-accumulating references.
//! Slow (seconds per full-size image): for tests, not for use.

use super::Layer;
use super::Weights;
use crate::error::Result;
use crate::kernels::{adaptive_avg_pool, conv2d, dense, lrn, max_pool, relu, softmax};

/// Returns (logits `[batch, classes]`, flattened features `[batch, F]` if the net flattens).
pub fn forward_cpu(
    weights: &Weights,
    input: &[f32],
    batch: usize,
    h: usize,
    w: usize,
) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    let spec = weights.spec().with_input_hw(h, w);
    let infos = spec.infer()?;
    let mut x = input.to_vec();
    let mut features = None;
    for (layer, info) in spec.layers.iter().zip(&infos) {
        let [c, ih, iw] = info.input.as_map();
        x = match layer {
            Layer::Conv { name, .. } => {
                let shape = layer.conv_shape(batch, [c, ih, iw]).expect("a conv layer");
                conv2d::reference(
                    &shape,
                    weights.get(&format!("{name}.weight")),
                    weights.get(&format!("{name}.bias")),
                    &x,
                    false,
                )
            }
            Layer::Dense { name, .. } => dense::reference(
                weights.get(&format!("{name}.weight")),
                weights.get(&format!("{name}.bias")),
                &x,
                batch,
                false,
            ),
            Layer::Relu => relu::reference(&x),
            Layer::MaxPool { .. } => max_pool::reference(
                &x,
                &layer.pool_shape(batch, [c, ih, iw]).expect("a max pool"),
            ),
            Layer::Lrn(l) => lrn::reference(l, &x, batch, c, ih * iw),
            Layer::AdaptiveAvgPool { .. } => adaptive_avg_pool::reference(
                &x,
                &layer
                    .adaptive_pool_shape(batch, [c, ih, iw])
                    .expect("an adaptive pool"),
            ),
            Layer::Flatten => {
                features = Some(x.clone());
                x
            }
            Layer::Dropout(_) => x,
            Layer::Softmax => softmax::reference(&x, batch, info.input.len()),
        };
    }
    Ok((x, features))
}
