//! What the metric returns for a pair: the distance with its per-layer terms ([`Distance`]),
//! maps ([`Map`], [`Spatial`]) and raw trunk outputs ([`Activation`]).

/// One pair's result: the distance and its five per-layer terms (the distance is their f32
/// sum in layer order, as the package adds them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distance {
    pub distance: f32,
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
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl Map {
    pub fn max(&self) -> f32 {
        self.data.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    }
}

/// One pair's result with its maps: the five native-resolution maps `lin_k((n_a - n_b)^2)`
/// (whose means are the terms) and the spatial map, their bilinear upsamplings to the input
/// size summed (lpips' `spatial=True`). The scalar distance comes from the native maps.
#[derive(Clone, Debug)]
pub struct Spatial {
    pub distance: Distance,
    pub layers: Vec<Map>,
    pub map: Map,
}

/// A raw trunk output (before normalisation): `[channels, height, width]`.
#[derive(Clone, Debug)]
pub struct Activation {
    pub shape: [usize; 3],
    pub data: Vec<f32>,
}
