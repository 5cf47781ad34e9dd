//! The trainable head: which dense layers are trained and their host-side values.

use std::str::FromStr;

use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::model::Weights;

/// What `train-head` trains (the convolutional layers are always frozen).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// fc6 and fc7 frozen; a new last layer 4096 -> k on cached fc7 activations.
    Last,
    /// fc6 and fc7 fine-tuned (with dropout) plus a new last layer, on cached pool5 features.
    Classifier,
}

impl FromStr for HeadKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "last" => Ok(HeadKind::Last),
            "classifier" => Ok(HeadKind::Classifier),
            _ => Err(format!("unknown head '{s}' (expected last or classifier)")),
        }
    }
}

/// One dense layer on the host: `weight` is `[out, inp]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseHost {
    pub name: String,
    pub inp: usize,
    pub out: usize,
    pub relu: bool,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The head's layers in order (fc8 only, or fc6, fc7, fc8).
#[derive(Clone, Debug, PartialEq)]
pub struct HeadWeights {
    pub kind: HeadKind,
    pub layers: Vec<DenseHost>,
}

impl HeadWeights {
    /// A head for `classes` classes: fc6/fc7 copied from the backbone (for `classifier`), a new
    /// fc8 initialised like PyTorch's `nn.Linear` (uniform +-1/sqrt(fan_in)) from `seed`.
    pub fn new(
        kind: HeadKind,
        backbone: &Weights,
        classes: usize,
        seed: u64,
    ) -> Result<HeadWeights> {
        let spec = backbone.spec();
        let shapes = spec.param_shapes()?;
        let shape = |name: &str| {
            shapes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.clone())
                .ok_or_else(|| Error::Invalid(format!("the backbone has no {name}")))
        };
        let (fc6, fc7) = (shape("fc6.weight")?, shape("fc7.weight")?);
        let mut layers = Vec::new();
        if kind == HeadKind::Classifier {
            for (name, s) in [("fc6", &fc6), ("fc7", &fc7)] {
                layers.push(DenseHost {
                    name: name.into(),
                    out: s[0],
                    inp: s[1],
                    relu: true,
                    weight: backbone.get(&format!("{name}.weight")).to_vec(),
                    bias: backbone.get(&format!("{name}.bias")).to_vec(),
                });
            }
        }
        let inp = fc7[0];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x6865_6164);
        let bound = 1.0 / (inp as f32).sqrt();
        layers.push(DenseHost {
            name: "fc8".into(),
            out: classes,
            inp,
            relu: false,
            weight: (0..classes * inp)
                .map(|_| rng.random_range(-bound..bound))
                .collect(),
            bias: (0..classes)
                .map(|_| rng.random_range(-bound..bound))
                .collect(),
        });
        Ok(HeadWeights { kind, layers })
    }

    pub fn input_len(&self) -> usize {
        self.layers[0].inp
    }

    pub fn classes(&self) -> usize {
        self.layers.last().map(|l| l.out).unwrap_or(0)
    }

    /// Replaces layer values from `(name, weight, bias)` given by the user (`--init-head`),
    /// checking shapes.
    pub fn set(
        &mut self,
        name: &str,
        weight: &[f32],
        bias: &[f32],
        source: &std::path::Path,
    ) -> Result<()> {
        let Some(layer) = self.layers.iter_mut().find(|l| l.name == name) else {
            return Ok(());
        };
        if weight.len() != layer.weight.len() || bias.len() != layer.bias.len() {
            return Err(Error::WeightFile {
                path: source.to_path_buf(),
                message: format!(
                    "{name}: expected weight [{}, {}] and bias [{}], found {} and {} values",
                    layer.out,
                    layer.inp,
                    layer.out,
                    weight.len(),
                    bias.len()
                ),
            });
        }
        layer.weight = weight.to_vec();
        layer.bias = bias.to_vec();
        Ok(())
    }
}
