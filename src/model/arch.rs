//! Layer descriptions and the three AlexNet presets.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::kernels::adaptive_avg_pool::AdaptivePoolShape;
use crate::kernels::conv2d::Conv2dShape;
use crate::kernels::lrn::Lrn;
use crate::kernels::max_pool::PoolShape;

/// The AlexNet variant: decides layer geometry, preprocessing and weight naming.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// torchvision's `alexnet`: 224 input, 64-192-384-256-256, adaptive avg-pool.
    Torchvision,
    /// The original BVLC/Caffe net: 227 input, grouped convolutions, LRN.
    Caffe,
    /// The plain Keras Sequential net: 227 input, 96-256-384-384-256, no groups, no LRN.
    Keras,
}

impl Arch {
    /// The three presets.
    pub const ALL: [Arch; 3] = [Arch::Torchvision, Arch::Caffe, Arch::Keras];

    /// The preset's name ("torchvision", "caffe", "keras").
    pub fn name(self) -> &'static str {
        match self {
            Arch::Torchvision => "torchvision",
            Arch::Caffe => "caffe",
            Arch::Keras => "keras",
        }
    }

    /// Square input side the preset was trained at.
    pub fn input_size(self) -> usize {
        match self {
            Arch::Torchvision => 224,
            Arch::Caffe | Arch::Keras => 227,
        }
    }

    /// The preset's full-size channel counts (1000 classes).
    pub fn default_widths(self) -> Widths {
        match self {
            Arch::Torchvision => Widths {
                conv: [64, 192, 384, 256, 256],
                fc6: 4096,
                fc7: 4096,
                classes: 1000,
            },
            Arch::Caffe | Arch::Keras => Widths {
                conv: [96, 256, 384, 384, 256],
                fc6: 4096,
                fc7: 4096,
                classes: 1000,
            },
        }
    }

    /// Groups of conv1..conv5.
    pub fn conv_groups(self) -> [usize; 5] {
        match self {
            Arch::Caffe => [1, 2, 1, 2, 2],
            _ => [1; 5],
        }
    }

    /// The layer list for the given widths.
    pub fn spec(self, widths: &Widths) -> NetSpec {
        let [c1, c2, c3, c4, c5] = widths.conv;
        let g = self.conv_groups();
        let conv = |name, out, kernel, stride, pad, groups| Layer::Conv {
            name,
            out,
            kernel,
            stride,
            pad,
            groups,
        };
        let pool = Layer::MaxPool {
            kernel: 3,
            stride: 2,
            ceil: false,
        };
        let (p1, p2) = match self {
            Arch::Torchvision => (2, 2),
            _ => (0, 2),
        };
        let mut layers = vec![conv("conv1", c1, 11, 4, p1, g[0]), Layer::Relu];
        if self == Arch::Caffe {
            layers.push(Layer::Lrn(Lrn::default()));
        }
        layers.extend([pool.clone(), conv("conv2", c2, 5, 1, p2, g[1]), Layer::Relu]);
        if self == Arch::Caffe {
            layers.push(Layer::Lrn(Lrn::default()));
        }
        layers.extend([
            pool.clone(),
            conv("conv3", c3, 3, 1, 1, g[2]),
            Layer::Relu,
            conv("conv4", c4, 3, 1, 1, g[3]),
            Layer::Relu,
            conv("conv5", c5, 3, 1, 1, g[4]),
            Layer::Relu,
            pool,
        ]);
        if self == Arch::Torchvision {
            layers.push(Layer::AdaptiveAvgPool { h: 6, w: 6 });
        }
        layers.extend([
            Layer::Flatten,
            Layer::Dropout(0.5),
            Layer::Dense {
                name: "fc6",
                out: widths.fc6,
            },
            Layer::Relu,
            Layer::Dropout(0.5),
            Layer::Dense {
                name: "fc7",
                out: widths.fc7,
            },
            Layer::Relu,
            Layer::Dense {
                name: "fc8",
                out: widths.classes,
            },
        ]);
        NetSpec {
            arch: self,
            input: [3, self.input_size(), self.input_size()],
            layers,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "torchvision" | "pytorch" | "torch" => Ok(Arch::Torchvision),
            "caffe" | "bvlc" => Ok(Arch::Caffe),
            "keras" => Ok(Arch::Keras),
            _ => Err(format!(
                "unknown arch '{s}' (expected torchvision, caffe or keras)"
            )),
        }
    }
}

/// Channel counts: the only thing besides the preset that a weights file decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Widths {
    /// Output channels of conv1..conv5.
    pub conv: [usize; 5],
    /// fc6's outputs.
    pub fc6: usize,
    /// fc7's outputs.
    pub fc7: usize,
    /// fc8's outputs: the class count.
    pub classes: usize,
}

/// One layer of a Sequential-style network description.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// A 2-D convolution (square kernel, stride and padding).
    Conv {
        /// Its parameter name ("conv1").
        name: &'static str,
        /// Output channels.
        out: usize,
        /// Kernel side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side.
        pad: usize,
        /// Channel groups (2 for Caffe's conv2, conv4, conv5).
        groups: usize,
    },
    /// ReLU.
    Relu,
    /// Max pooling.
    MaxPool {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Output size rounded up (Caffe's pooling; PyTorch's `ceil_mode=True`).
        ceil: bool,
    },
    /// Local response normalisation across channels.
    Lrn(Lrn),
    /// Adaptive average pooling to `h` x `w` (torchvision's 6 x 6).
    AdaptiveAvgPool {
        /// Output height.
        h: usize,
        /// Output width.
        w: usize,
    },
    /// Flatten to one vector per image (NCHW order).
    Flatten,
    /// A dense (fully connected) layer.
    Dense {
        /// Its parameter name ("fc6").
        name: &'static str,
        /// Outputs.
        out: usize,
    },
    /// The identity at inference.
    Dropout(f32),
    /// Softmax over the classes.
    Softmax,
}

impl Layer {
    /// The convolution geometry of a `Conv` layer for `batch` inputs of `[c, h, w]`.
    pub fn conv_shape(&self, batch: usize, [c, h, w]: [usize; 3]) -> Option<Conv2dShape> {
        match *self {
            Layer::Conv {
                out,
                kernel,
                stride,
                pad,
                groups,
                ..
            } => Some(Conv2dShape {
                batch,
                in_c: c,
                in_h: h,
                in_w: w,
                out_c: out,
                kernel,
                stride,
                pad,
                groups,
            }),
            _ => None,
        }
    }

    /// The pooling geometry of a `MaxPool` layer for `batch` inputs of `[c, h, w]`.
    pub fn pool_shape(&self, batch: usize, [c, h, w]: [usize; 3]) -> Option<PoolShape> {
        match *self {
            Layer::MaxPool {
                kernel,
                stride,
                ceil,
            } => Some(PoolShape {
                planes: batch * c,
                in_h: h,
                in_w: w,
                window: kernel,
                stride,
                ceil,
            }),
            _ => None,
        }
    }

    /// The geometry of an `AdaptiveAvgPool` layer for `batch` inputs of `[c, h, w]`.
    pub fn adaptive_pool_shape(
        &self,
        batch: usize,
        [c, h, w]: [usize; 3],
    ) -> Option<AdaptivePoolShape> {
        match *self {
            Layer::AdaptiveAvgPool { h: out_h, w: out_w } => Some(AdaptivePoolShape {
                planes: batch * c,
                in_h: h,
                in_w: w,
                out_h,
                out_w,
            }),
            _ => None,
        }
    }

    /// The layer in a few words, for tables and messages.
    pub fn describe(&self) -> String {
        match self {
            Layer::Conv {
                name,
                out,
                kernel,
                stride,
                pad,
                groups,
            } => {
                let g = if *groups > 1 {
                    format!(" groups {groups}")
                } else {
                    String::new()
                };
                format!("{name}: conv {out} k{kernel} s{stride} p{pad}{g}")
            }
            Layer::Relu => "relu".into(),
            Layer::MaxPool {
                kernel,
                stride,
                ceil,
            } => format!(
                "max-pool {kernel}/{stride}{}",
                if *ceil { " (ceil)" } else { "" }
            ),
            Layer::Lrn(l) => format!(
                "lrn size {} alpha {} beta {} k {}",
                l.size, l.alpha, l.beta, l.k
            ),
            Layer::AdaptiveAvgPool { h, w } => format!("adaptive avg-pool {h}x{w}"),
            Layer::Flatten => "flatten".into(),
            Layer::Dense { name, out } => format!("{name}: dense {out}"),
            Layer::Dropout(p) => format!("dropout {p} (identity at inference)"),
            Layer::Softmax => "softmax".into(),
        }
    }
}

/// A whole network: input channels/height/width and its layers.
#[derive(Clone, Debug, PartialEq)]
pub struct NetSpec {
    /// The preset.
    pub arch: Arch,
    /// `[C, H, W]` of one input image.
    pub input: [usize; 3],
    /// The layers, in order.
    pub layers: Vec<Layer>,
}

/// A tensor shape per image: `[C, H, W]` for feature maps, `[F]` once flattened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A feature map `[C, H, W]`.
    Map([usize; 3]),
    /// A flat vector of F values.
    Flat(usize),
}

impl Shape {
    /// `[C, H, W]`; a flat vector of F values is `[F, 1, 1]`.
    pub fn as_map(&self) -> [usize; 3] {
        match self {
            Shape::Map(m) => *m,
            Shape::Flat(f) => [*f, 1, 1],
        }
    }

    /// Values per image.
    pub fn len(&self) -> usize {
        match self {
            Shape::Map([c, h, w]) => c * h * w,
            Shape::Flat(f) => *f,
        }
    }

    /// Whether the shape holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Map([c, h, w]) => write!(f, "{c}x{h}x{w}"),
            Shape::Flat(n) => write!(f, "{n}"),
        }
    }
}

/// What shape inference learns about one layer.
#[derive(Clone, Debug)]
pub struct LayerInfo {
    /// Per-image shape into the layer.
    pub input: Shape,
    /// Per-image shape out of it.
    pub output: Shape,
    /// `(name, shape)` of each parameter tensor in our layout (conv OIHW, dense `[out, in]`).
    pub params: Vec<(String, Vec<usize>)>,
    /// Floating-point operations per image (multiply-add = 2).
    pub flops: f64,
}

impl NetSpec {
    /// The spec with another input size (the adaptive pool keeps the classifier's shapes).
    pub fn with_input_hw(&self, h: usize, w: usize) -> NetSpec {
        NetSpec {
            input: [self.input[0], h, w],
            ..self.clone()
        }
    }

    /// Infers every layer's shapes, or says which layer cannot take its input.
    pub fn infer(&self) -> Result<Vec<LayerInfo>> {
        let mut shape = Shape::Map(self.input);
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let ctx = |msg: String| {
                Error::Shape(format!(
                    "layer {} ({}), input {shape}: {msg}",
                    i + 1,
                    layer.describe()
                ))
            };
            let map = |s: &Shape| match s {
                Shape::Map(m) => Ok(*m),
                Shape::Flat(_) => Err(ctx(
                    "needs a feature map, got a flat vector (flatten came too early)".into(),
                )),
            };
            let (next, params, flops) = match layer {
                Layer::Conv { name, .. } => {
                    let conv = layer.conv_shape(1, map(&shape)?).expect("a conv layer");
                    let (oh, ow) = conv.out_hw().map_err(|e| ctx(e.to_string()))?;
                    (
                        Shape::Map([conv.out_c, oh, ow]),
                        vec![
                            (
                                format!("{name}.weight"),
                                vec![
                                    conv.out_c,
                                    conv.in_c / conv.groups,
                                    conv.kernel,
                                    conv.kernel,
                                ],
                            ),
                            (format!("{name}.bias"), vec![conv.out_c]),
                        ],
                        conv.flops(),
                    )
                }
                Layer::MaxPool { .. } => {
                    let [c, h, w] = map(&shape)?;
                    let pool = layer.pool_shape(1, [c, h, w]).expect("a max pool");
                    let (oh, ow) = pool.out_hw().map_err(|e| ctx(e.to_string()))?;
                    (Shape::Map([c, oh, ow]), vec![], 0.0)
                }
                Layer::AdaptiveAvgPool { h, w } => {
                    let [c, _, _] = map(&shape)?;
                    (Shape::Map([c, *h, *w]), vec![], 0.0)
                }
                Layer::Lrn(_) => {
                    map(&shape)?;
                    (shape.clone(), vec![], 0.0)
                }
                Layer::Flatten => (Shape::Flat(shape.len()), vec![], 0.0),
                Layer::Dense { name, out: o } => {
                    let inp = match &shape {
                        Shape::Flat(f) => *f,
                        Shape::Map(_) => {
                            return Err(ctx("a dense layer needs a flatten before it".into()))
                        }
                    };
                    (
                        Shape::Flat(*o),
                        vec![
                            (format!("{name}.weight"), vec![*o, inp]),
                            (format!("{name}.bias"), vec![*o]),
                        ],
                        2.0 * (*o * inp) as f64,
                    )
                }
                Layer::Relu | Layer::Dropout(_) | Layer::Softmax => (shape.clone(), vec![], 0.0),
            };
            if next.is_empty() {
                return Err(ctx("produces an empty tensor".into()));
            }
            out.push(LayerInfo {
                input: shape.clone(),
                output: next.clone(),
                params,
                flops,
            });
            shape = next;
        }
        Ok(out)
    }

    /// Parameter names and shapes, in layer order.
    pub fn param_shapes(&self) -> Result<Vec<(String, Vec<usize>)>> {
        Ok(self.infer()?.into_iter().flat_map(|l| l.params).collect())
    }

    /// Floating-point operations of one image's forward pass (a multiply-add counts 2).
    pub fn flops_per_image(&self) -> Result<f64> {
        Ok(self.infer()?.iter().map(|l| l.flops).sum())
    }
}
