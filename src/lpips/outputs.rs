//! What the metric returns for a pair: the distance with its per-layer terms ([`Distance`]),
//! maps ([`Map`], [`Spatial`]) and raw trunk outputs ([`Activation`]).

/// One pair's result: the distance and its five per-layer terms (the distance is their f32
/// sum in layer order, as the package adds them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distance {
    /// The LPIPS distance: 0 for identical images, larger for more different ones.
    pub distance: f32,
    /// The terms of relu1..relu5 (their f32 sum is `distance`).
    pub layers: [f32; 5],
}

impl Distance {
    pub(crate) fn from_layers(layers: [f32; 5]) -> Distance {
        // `val = 0 + res[0] + ... + res[4]` in f32, in order.
        let distance = layers.iter().fold(0f32, |acc, &v| acc + v);
        Distance { distance, layers }
    }
}

/// A `[height, width]` map, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Map {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height * width` values, row-major.
    pub data: Vec<f32>,
}

impl Map {
    /// The largest value (negative infinity for an empty map).
    pub fn max(&self) -> f32 {
        self.data.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    }
}

/// One pair's result with its maps: the five native-resolution maps `lin_k((n_a - n_b)^2)`
/// (whose means are the terms) and the spatial map, their bilinear upsamplings to the input
/// size summed (lpips' `spatial=True`). The scalar distance comes from the native maps.
#[derive(Clone, Debug)]
pub struct Spatial {
    /// The distance and its per-layer terms.
    pub distance: Distance,
    /// The five native-resolution per-layer maps (relu1..relu5).
    pub layers: Vec<Map>,
    /// The per-pixel map at the input size (their upsampled sum).
    pub map: Map,
}

/// A raw trunk output (before normalisation): `[channels, height, width]`.
#[derive(Clone, Debug)]
pub struct Activation {
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
    /// The values, channel-major (NCHW without the N).
    pub data: Vec<f32>,
}
