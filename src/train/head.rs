//! What `train-head` trains (`--head`, `--train-from`) and the trained layers' host-side values:
//! the dense layers and, from `--train-from conv1..conv5`, the trained convolutional part.

use std::str::FromStr;

use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::kernels::conv2d::Conv2dShape;
use crate::model::{Layer, Weights};

/// What `train-head` trains: the named layer and every layer above it (`--train-from`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// `--train-from fc8`: fc6 and fc7 frozen; a new last layer 4096 -> k on cached fc7
    /// activations.
    Last,
    /// `--train-from fc6`: fc6 and fc7 fine-tuned (with dropout) plus a new last layer, on
    /// cached pool5 features.
    Classifier,
    /// `--train-from fc7`: fc6 frozen (cached fc6 activations), fc7 and a new last layer.
    Fc7,
    /// `--train-from convN` (N = 1..5): convN..conv5, fc6, fc7 and a new last layer, on the
    /// cached input of convN (the frozen part's output).
    Conv(usize),
}

impl HeadKind {
    /// From a layer name as `alexnet summary` prints it (`conv1`..`conv5`, `fc6`..`fc8`).
    pub fn from_layer(name: &str) -> std::result::Result<Self, String> {
        match name {
            "fc8" => Ok(HeadKind::Last),
            "fc7" => Ok(HeadKind::Fc7),
            "fc6" => Ok(HeadKind::Classifier),
            _ => match name
                .strip_prefix("conv")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n @ 1..=5) => Ok(HeadKind::Conv(n)),
                _ => Err(format!(
                    "unknown layer '{name}' (expected conv1..conv5, fc6, fc7 or fc8)"
                )),
            },
        }
    }

    /// The first trained layer's name (`fc8` for `Last`).
    pub fn first_layer(self) -> String {
        match self {
            HeadKind::Last => "fc8".into(),
            HeadKind::Fc7 => "fc7".into(),
            HeadKind::Classifier => "fc6".into(),
            HeadKind::Conv(n) => format!("conv{n}"),
        }
    }

    /// The trained dense layers.
    pub fn dense_layers(self) -> &'static [&'static str] {
        match self {
            HeadKind::Last => &["fc8"],
            HeadKind::Fc7 => &["fc7", "fc8"],
            HeadKind::Classifier | HeadKind::Conv(_) => &["fc6", "fc7", "fc8"],
        }
    }
}

/// One trained convolution on the host: OIHW `weight` of `shape` (batch 1).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvHost {
    /// Its parameter name ("conv4").
    pub name: String,
    /// Its geometry.
    pub shape: Conv2dShape,
    /// OIHW weights.
    pub weight: Vec<f32>,
    /// One bias per output channel.
    pub bias: Vec<f32>,
}

/// The trained convolutional part: the layers from the first trained convolution up to the
/// flatten (convolutions, ReLUs, LRNs, pools) on inputs of `input` `[C, H, W]` (the frozen
/// part's output), with the convolutions' values in order.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvPart {
    /// `[C, H, W]` of its input.
    pub input: [usize; 3],
    /// Its layers, convolutions to the flatten.
    pub layers: Vec<Layer>,
    /// The convolutions' values, in order.
    pub convs: Vec<ConvHost>,
}

impl ConvPart {
    /// Floats of one input.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// The layers of `backbone` before the flatten, split at the convolution `first` (its
    /// index in the layer list), with the input shape of that convolution.
    pub fn split(backbone: &Weights, first: &str) -> Result<(Vec<Layer>, Vec<Layer>, [usize; 3])> {
        let spec = backbone.spec();
        let infos = spec.infer()?;
        let at = spec
            .layers
            .iter()
            .position(|l| matches!(l, Layer::Conv { name, .. } if *name == first))
            .ok_or_else(|| Error::Invalid(format!("the backbone has no layer {first}")))?;
        let flatten = spec
            .layers
            .iter()
            .position(|l| matches!(l, Layer::Flatten))
            .ok_or_else(|| Error::Invalid("the backbone has no flatten layer".into()))?;
        Ok((
            spec.layers[..at].to_vec(),
            spec.layers[at..flatten].to_vec(),
            infos[at].input.as_map(),
        ))
    }

    /// The trained part of `backbone` from convolution `first`, its values copied.
    pub fn from_backbone(backbone: &Weights, first: &str) -> Result<ConvPart> {
        let (_, layers, input) = Self::split(backbone, first)?;
        let convs = conv_hosts(backbone, &layers, input)?;
        Ok(ConvPart {
            input,
            layers,
            convs,
        })
    }
}

/// The convolutions of `layers` (run on `input`) with their values from `backbone`.
pub fn conv_hosts(
    backbone: &Weights,
    layers: &[Layer],
    input: [usize; 3],
) -> Result<Vec<ConvHost>> {
    let spec = crate::model::NetSpec {
        arch: backbone.arch,
        input,
        layers: layers.to_vec(),
    };
    let infos = spec.infer()?;
    let mut convs = Vec::new();
    for (l, info) in layers.iter().zip(&infos) {
        if let Layer::Conv { name, .. } = l {
            let shape = l.conv_shape(1, info.input.as_map()).expect("a conv layer");
            convs.push(ConvHost {
                name: name.to_string(),
                shape,
                weight: backbone.get(&format!("{name}.weight")).to_vec(),
                bias: backbone.get(&format!("{name}.bias")).to_vec(),
            });
        }
    }
    Ok(convs)
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
    /// Its parameter name ("fc8").
    pub name: String,
    /// Inputs.
    pub inp: usize,
    /// Outputs.
    pub out: usize,
    /// A ReLU follows (every dense layer but the last).
    pub relu: bool,
    /// `[out, inp]` weights, row-major.
    pub weight: Vec<f32>,
    /// One bias per output.
    pub bias: Vec<f32>,
}

/// The trained layers in order: the convolutional part (`--train-from conv1..conv5`), then the
/// dense layers (fc8 only; fc7, fc8; or fc6, fc7, fc8).
#[derive(Clone, Debug, PartialEq)]
pub struct HeadWeights {
    /// Which layers were trained.
    pub kind: HeadKind,
    /// The dense layers, in order (fc8 last).
    pub layers: Vec<DenseHost>,
    /// The convolutional part, when training started at a convolution.
    pub conv: Option<ConvPart>,
}

impl HeadWeights {
    /// The name of the first layer holding a NaN or infinite weight or bias, if any.
    pub fn non_finite(&self) -> Option<&str> {
        let bad = |w: &[f32], b: &[f32]| w.iter().chain(b).any(|v| !v.is_finite());
        let convs = self.conv.iter().flat_map(|c| &c.convs);
        convs
            .map(|c| (c.name.as_str(), bad(&c.weight, &c.bias)))
            .chain(
                self.layers
                    .iter()
                    .map(|l| (l.name.as_str(), bad(&l.weight, &l.bias))),
            )
            .find_map(|(name, b)| b.then_some(name))
    }

    /// A head for `classes` classes: the trained layers below fc8 copied from the backbone, a
    /// new fc8 initialised like PyTorch's `nn.Linear` (uniform +-1/sqrt(fan_in)) from `seed`.
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
        for name in kind.dense_layers().iter().filter(|n| **n != "fc8") {
            let s = if *name == "fc6" { &fc6 } else { &fc7 };
            layers.push(DenseHost {
                name: name.to_string(),
                out: s[0],
                inp: s[1],
                relu: true,
                weight: backbone.get(&format!("{name}.weight")).to_vec(),
                bias: backbone.get(&format!("{name}.bias")).to_vec(),
            });
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
        let conv = match kind {
            HeadKind::Conv(n) => Some(ConvPart::from_backbone(backbone, &format!("conv{n}"))?),
            _ => None,
        };
        Ok(HeadWeights { kind, layers, conv })
    }

    /// Values per training row: the trained part's input.
    pub fn input_len(&self) -> usize {
        match &self.conv {
            Some(c) => c.input_len(),
            None => self.layers[0].inp,
        }
    }

    /// Outputs of the last layer: the class count.
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
            return Err(Error::input(
                source.to_path_buf(),
                crate::error::InputErrorKind::Malformed,
                format!(
                    "{name}: expected weight [{}, {}] and bias [{}], found {} and {} values",
                    layer.out,
                    layer.inp,
                    layer.out,
                    weight.len(),
                    bias.len()
                ),
            ));
        }
        layer.weight = weight.to_vec();
        layer.bias = bias.to_vec();
        Ok(())
    }
}
