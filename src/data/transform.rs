//! The per-preset transform settings, and the size an image is resized to before the crop:
//! what both the exact preprocessing and the fast decoders (which shrink while decoding) need.

/// How an image becomes a `[3, H, W]` float tensor.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Preprocess {
    /// Resize so the shorter side is this long (aspect kept), or to exactly this square.
    pub resize: usize,
    /// Resize to a `resize` x `resize` square (aspect not kept) instead of the shorter side.
    pub resize_square: bool,
    /// The side of the centre crop the network sees (224 or 227).
    pub crop: usize,
    /// Multiply 0..255 values by this before the mean and std.
    pub scale: f32,
    /// Per-channel mean subtracted after `scale`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by after the mean.
    pub std: [f32; 3],
    /// Channel order BGR instead of RGB (mean/std are given in the output order).
    pub bgr: bool,
}

/// The three presets' transforms. Which one a network expects is the model's to say
/// (`Preprocess::for_arch`, defined beside the presets of the network in `model::preprocess`),
/// so that this layer knows nothing of the network.
impl Preprocess {
    /// torchvision: Resize(256), CenterCrop(224), ToTensor, Normalize(ImageNet mean/std).
    pub const TORCHVISION: Preprocess = Preprocess {
        resize: 256,
        resize_square: false,
        crop: 224,
        scale: 1.0 / 255.0,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        bgr: false,
    };

    /// BVLC Caffe: warp to 256x256, centre crop 227, BGR 0..255 minus the mean pixel.
    pub const CAFFE: Preprocess = Preprocess {
        resize: 256,
        resize_square: true,
        crop: 227,
        scale: 1.0,
        mean: [104.0, 117.0, 123.0],
        std: [1.0, 1.0, 1.0],
        bgr: true,
    };

    /// The plain Keras net: shorter side 256, centre crop 227, x / 255.
    pub const KERAS: Preprocess = Preprocess {
        resize: 256,
        resize_square: false,
        crop: 227,
        scale: 1.0 / 255.0,
        mean: [0.0; 3],
        std: [1.0; 3],
        bgr: false,
    };
}

/// The size the preset resizes a `w` x `h` image to before the centre crop (torchvision's
/// `Resize(256)` rule: the shorter side to `resize`, the longer truncated; never under the crop).
pub fn resize_target(w: usize, h: usize, p: &Preprocess) -> (usize, usize) {
    let (nw, nh) = if p.resize_square {
        (p.resize, p.resize)
    } else if w <= h {
        // torchvision truncates the long side: int(size * long / short).
        (p.resize, (p.resize as f64 * h as f64 / w as f64) as usize)
    } else {
        ((p.resize as f64 * w as f64 / h as f64) as usize, p.resize)
    };
    (nw.max(p.crop), nh.max(p.crop))
}
