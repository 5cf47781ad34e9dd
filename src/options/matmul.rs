//! Which matmul kernels run, as plain values: the path ([`MatmulPath`]), the `mm.wgsl` tile
//! shapes ([`Tile`]) and what a user forces ([`Force`]). Part of the runtime options (it
//! imports nothing of the crate), so that the GPU context that carries them can name a matmul
//! path without depending on the kernels; `kernels::mm` adds the heuristics and dispatch.

/// How convolutions (and dense layers with K a multiple of 4) are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulPath {
    /// `conv2d.wgsl`'s workgroup-memory tiles (implicit GEMM) and `dense.wgsl`: the textbook
    /// kernels (kept for A/B runs and as the path for dense layers with K not a multiple of 4).
    Tiled,
    /// `im2col.wgsl` + `gemm.wgsl` (register tiles, vec4 loads, no workgroup memory) and
    /// `gemm.wgsl` for dense layers: CPU adapters such as lavapipe, where loads are done lane by
    /// lane and barriers are expensive (about 3x faster there, see docs/performance.md).
    Gemm,
    /// `mm.wgsl`: register-blocked 8x8-per-invocation tiles for GPUs (implicit GEMM for
    /// convolutions; tiles, split-K or matrix-vector for dense layers), the variant per layer
    /// chosen by the [`Force`] fields set, else the tuner cache, else the heuristic.
    Blocked(Force),
}

impl MatmulPath {
    /// The default for an adapter of this type: [`MatmulPath::Gemm`] on CPU adapters (lavapipe,
    /// SwiftShader), else [`MatmulPath::Blocked`] with nothing forced. The runtime options
    /// ([`RuntimeOptions::matmul`](super::RuntimeOptions::matmul)) override it.
    pub fn default_for(device_type: wgpu::DeviceType) -> Self {
        if device_type == wgpu::DeviceType::Cpu {
            MatmulPath::Gemm
        } else {
            MatmulPath::Blocked(Force::default())
        }
    }

    /// Parses a matmul path: `tiled`, `gemm`, `blocked`, `blocked-TILE` (`blocked-128x64x16`),
    /// `blocked-gemv`, `blocked-splitN` (dense split-K), `blocked-convsplitN` (convolution
    /// split-K), `blocked-im2col` (convolutions through a coalesced patch matrix and the dense
    /// entry), or a tile with splits (`blocked-64x64x16-split4`, `blocked-64x32x16-convsplit8`,
    /// `blocked-32x32x16-im2col`).
    pub fn parse(v: &str) -> std::result::Result<Self, String> {
        match v {
            "tiled" => Ok(MatmulPath::Tiled),
            "gemm" => Ok(MatmulPath::Gemm),
            _ => match v.strip_prefix("blocked") {
                Some(rest) if rest.is_empty() || rest.starts_with('-') => {
                    Ok(MatmulPath::Blocked(Force::parse(rest)?))
                }
                _ => Err(format!(
                    "unknown matmul path {v:?} (expected tiled, gemm or blocked[-TILE][-gemv|-splitN][-convsplitN|-im2col])"
                )),
            },
        }
    }

    /// One path of every form [`MatmulPath::parse`] accepts: `tiled`, `gemm`, `blocked`, each
    /// tile of [`TILES`], `-gemv`, `-splitN`, `-convsplitN`, `-im2col`, and a tile with a split,
    /// with a conv split, with the coalesced im2col and with gemv. What the
    /// selftest runs under in CI, so a new form added here is checked on every adapter the
    /// tests see.
    pub fn forms() -> Vec<MatmulPath> {
        let blocked = |tile, gemv, split| {
            MatmulPath::Blocked(Force {
                tile,
                gemv,
                split,
                conv_split: None,
                conv_im2col: false,
            })
        };
        let conv_split = |tile, n| {
            MatmulPath::Blocked(Force {
                tile,
                conv_split: Some(n),
                ..Force::default()
            })
        };
        let im2col = |tile| {
            MatmulPath::Blocked(Force {
                tile,
                conv_im2col: true,
                ..Force::default()
            })
        };
        let mut out = vec![
            MatmulPath::Tiled,
            MatmulPath::Gemm,
            blocked(None, false, None),
        ];
        out.extend(TILES.iter().map(|&t| blocked(Some(t), false, None)));
        out.extend([
            blocked(None, true, None),
            blocked(None, false, Some(2)),
            blocked(None, false, Some(3)),
            blocked(Some(Tile::new(64, 64, 16)), false, Some(4)),
            blocked(Some(Tile::new(128, 128, 8)), true, None),
            conv_split(None, 3),
            conv_split(Some(Tile::new(64, 32, 16)), 4),
            im2col(None),
            im2col(Some(Tile::new(32, 32, 16))),
        ]);
        out
    }

    /// Short name for reports (`gemm`, `tiled`, `blocked`, `blocked-64x64x16-split2`).
    pub fn name(&self) -> String {
        match self {
            MatmulPath::Tiled => "tiled".into(),
            MatmulPath::Gemm => "gemm".into(),
            MatmulPath::Blocked(f) => {
                let mut s = String::from("blocked");
                if let Some(t) = f.tile {
                    s += &format!("-{}", t.name());
                }
                if f.gemv {
                    s += "-gemv";
                }
                if let Some(n) = f.split {
                    s += &format!("-split{n}");
                }
                if let Some(n) = f.conv_split {
                    s += &format!("-convsplit{n}");
                }
                if f.conv_im2col {
                    s += "-im2col";
                }
                s
            }
        }
    }
}

/// A workgroup tile: `bm` rows (output channels / features) by `bn` columns (pixels / batch
/// rows), K steps of `bk`. `(bn / 8) * (bm / 8)` invocations of 8x8 outputs each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tile {
    /// Output rows per workgroup.
    pub bm: u32,
    /// Output columns per workgroup.
    pub bn: u32,
    /// K per step.
    pub bk: u32,
}

/// The tiles built and tuned over (largest first). Each fits 32 KiB of workgroup memory
/// (`2 * bk * (bm + bn) * 4` bytes) and at most 256 invocations. The 64x32 and 32x64 tiles
/// (32 invocations, one NVIDIA warp) are for small pixel or channel counts (batch 1 conv3-5);
/// 32x32x16 (16 invocations, half a warp, 8 KiB) is the smallest the shader's 8x8 outputs
/// per invocation allow with whole loads per invocation (`A_LOADS = B_LOADS = 8`): at batch 1
/// conv3 (M 384, N 169) it gives 72 output tiles against 18 of 64x64, so one split-K factor
/// spreads the same lanes over 4x the workgroups (more SMs busy, each at half a warp). Only
/// the tuner picks it (see `kernels::mm::conv_heuristic`).
pub const TILES: &[Tile] = &[
    Tile::new(128, 128, 8),
    Tile::new(128, 128, 16),
    Tile::new(128, 64, 16),
    Tile::new(64, 128, 16),
    Tile::new(64, 64, 16),
    Tile::new(64, 64, 32),
    Tile::new(64, 32, 16),
    Tile::new(32, 64, 16),
    Tile::new(32, 32, 16),
];

impl Tile {
    /// The tile `bm` x `bn` x `bk`.
    pub const fn new(bm: u32, bn: u32, bk: u32) -> Self {
        Tile { bm, bn, bk }
    }

    /// `128x64x16` (the form `ALEXNET_MATMUL` and the tuner cache use).
    pub fn name(&self) -> String {
        format!("{}x{}x{}", self.bm, self.bn, self.bk)
    }

    /// Invocations per workgroup: `(bn / 8) * (bm / 8)`, each computing 8x8 outputs.
    pub fn invocations(&self) -> u32 {
        (self.bn / 8) * (self.bm / 8)
    }

    /// Whether a device with these limits can run the tile (workgroup memory, invocations and
    /// workgroup dimensions): under WebGPU's baseline (16 KiB, 256 invocations) 128x128x8,
    /// 64x64x16, 64x32x16, 32x64x16 and 32x32x16 do.
    pub fn fits(&self, limits: &wgpu::Limits) -> bool {
        self.workgroup_bytes() <= limits.max_compute_workgroup_storage_size
            && self.invocations() <= limits.max_compute_invocations_per_workgroup
            && self.bn / 8 <= limits.max_compute_workgroup_size_x
            && self.bm / 8 <= limits.max_compute_workgroup_size_y
    }

    /// Bytes of workgroup memory the tile uses.
    pub fn workgroup_bytes(&self) -> u32 {
        2 * self.bk * (self.bm + self.bn) * 4
    }

    /// Workgroups for an `m` x `n` output (per group / slice).
    pub fn tiles(&self, m: usize, n: usize) -> usize {
        m.div_ceil(self.bm as usize) * n.div_ceil(self.bn as usize)
    }

    /// Computed outputs over useful ones (1.0: no tile remainder).
    pub fn waste(&self, m: usize, n: usize) -> f64 {
        let padded = m.div_ceil(self.bm as usize) * self.bm as usize;
        let padded = padded * n.div_ceil(self.bn as usize) * self.bn as usize;
        padded as f64 / (m * n).max(1) as f64
    }
}

impl std::str::FromStr for MatmulPath {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::parse(s)
    }
}

impl std::fmt::Display for MatmulPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for Tile {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        TILES
            .iter()
            .find(|t| t.name() == s)
            .copied()
            .ok_or_else(|| {
                let names: Vec<String> = TILES.iter().map(Tile::name).collect();
                format!("unknown tile {s:?} (expected one of {})", names.join(", "))
            })
    }
}

/// How one dense layer runs on the blocked path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DenseKind {
    /// `gemv`: every weight read once per 4 rows of the batch (batch 1-4).
    Gemv,
    /// `dense` (split 1) or `dense_split` + `reduce` over `split` K slices.
    Tiles {
        /// The output tile.
        tile: Tile,
        /// K slices (1: no split).
        split: u32,
    },
}

impl DenseKind {
    /// The variant's name, as the tuner cache and `bench` write it.
    pub fn name(&self) -> String {
        match self {
            DenseKind::Gemv => "gemv".into(),
            DenseKind::Tiles { tile, split: 1 } => tile.name(),
            DenseKind::Tiles { tile, split } => format!("{}-split{split}", tile.name()),
        }
    }
}

/// How one convolution runs on an `mm.wgsl` tile: the `conv` entry (split 1), or `conv_split`
/// over `split` K slices writing partial sums, then `reduce_conv` (bias, ReLU, NCHW store); or,
/// with `im2col`, a coalesced patch matrix (`im2col_coalesced.wgsl`) multiplied by the
/// `conv_im2col` entry (the dense entry's loop, an NCHW epilogue), never split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvKind {
    /// The output tile.
    pub tile: Tile,
    /// K slices (1: no split; always 1 with `im2col`).
    pub split: u32,
    /// The patch matrix materialised by the coalesced im2col, rather than gathered inside the
    /// tile loop.
    pub im2col: bool,
}

impl ConvKind {
    /// The implicit GEMM on `tile` over `split` K slices.
    pub const fn implicit(tile: Tile, split: u32) -> Self {
        ConvKind {
            tile,
            split,
            im2col: false,
        }
    }

    /// The coalesced im2col and the dense entry on `tile`.
    pub const fn im2col(tile: Tile) -> Self {
        ConvKind {
            tile,
            split: 1,
            im2col: true,
        }
    }

    /// The tile's name, with `-splitN` when split (`64x64x16-split8`) and `-im2col` through
    /// the coalesced im2col (`64x64x16-im2col`), as the tuner cache stores it.
    pub fn name(&self) -> String {
        let mut s = self.tile.name();
        if self.split != 1 {
            s += &format!("-split{}", self.split);
        }
        if self.im2col {
            s += "-im2col";
        }
        s
    }

    /// Parses [`ConvKind::name`] (`-im2col` with a split is not a variant).
    pub fn parse(s: &str) -> Option<ConvKind> {
        let (s, im2col) = match s.strip_suffix("-im2col") {
            Some(t) => (t, true),
            None => (s, false),
        };
        let (tile, split) = match s.split_once("-split") {
            Some((t, n)) => (t, n.parse().ok().filter(|&n: &u32| n >= 1)?),
            None => (s, 1),
        };
        if im2col && split != 1 {
            return None;
        }
        Some(ConvKind {
            tile: tile.parse().ok()?,
            split,
            im2col,
        })
    }
}

/// What `ALEXNET_MATMUL=blocked[-TILE][-gemv|-splitN][-convsplitN|-im2col]` forces; unset
/// fields are chosen per shape (tuner cache, else `kernels::mm::conv_heuristic` /
/// `dense_heuristic`). `split` is the dense layers' split-K, `conv_split` the convolutions';
/// `conv_im2col` sends convolutions through the coalesced im2col and the dense entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Force {
    /// Use this tile everywhere.
    pub tile: Option<Tile>,
    /// Use gemv for dense layers with small batches.
    pub gemv: bool,
    /// The dense layers' split-K.
    pub split: Option<u32>,
    /// The convolutions' split-K.
    pub conv_split: Option<u32>,
    /// Convolutions through the coalesced im2col and the dense entry ([`ConvKind::im2col`]).
    pub conv_im2col: bool,
}

impl Force {
    /// Parses what follows `blocked` in `ALEXNET_MATMUL` (`""`, `-64x64x16`, `-gemv`,
    /// `-split4`, `-128x64x16-split2`, `-convsplit8`, `-im2col`).
    pub fn parse(rest: &str) -> std::result::Result<Force, String> {
        let mut f = Force::default();
        for part in rest.split('-').filter(|p| !p.is_empty()) {
            if part == "gemv" {
                f.gemv = true;
            } else if part == "im2col" {
                f.conv_im2col = true;
            } else if let Some(n) = part.strip_prefix("convsplit") {
                let n: u32 =
                    n.parse().ok().filter(|&n| n >= 1).ok_or_else(|| {
                        format!("conv split factor {n:?} is not a positive integer")
                    })?;
                f.conv_split = Some(n);
            } else if let Some(n) = part.strip_prefix("split") {
                let n: u32 = n
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| format!("split factor {n:?} is not a positive integer"))?;
                f.split = Some(n);
            } else {
                f.tile = Some(part.parse()?);
            }
        }
        if f.conv_im2col && f.conv_split.is_some() {
            return Err(
                "-im2col and -convsplitN exclude each other (the coalesced im2col feeds the \
                 unsplit dense entry)"
                    .into(),
            );
        }
        Ok(f)
    }

    /// Nothing forced (plain `blocked`): the tuner's winners, else the heuristics, decide.
    pub fn is_empty(&self) -> bool {
        *self == Force::default()
    }
}
