//! The dense part of the network on the GPU: one implementation of a dense layer's forward
//! (weights split under the binding limit, bias, fused ReLU, f32 or f16 storage) shared by the
//! classifier ([`super::Network`]), the frozen fc6 -> fc7 feature cache of `train-head` and the
//! trainer's forward pass.

use crate::error::{Error, Result};
use crate::gpu::{read_back_f32, storage_buffer, upload_f32, GpuContext, SplitWeight};
use crate::kernels::{self, Dispatch, Kernels, Precision};

use super::Weights;

/// One dense layer uploaded: `y = x w^T + b`, then ReLU when `relu`.
pub struct GpuDense {
    /// Its parameter name ("fc6").
    pub name: String,
    /// Input and output widths.
    pub inp: usize,
    /// Output width.
    pub out: usize,
    /// A ReLU follows.
    pub relu: bool,
    /// How the weights are stored.
    pub precision: Precision,
    /// The weights in parts under the binding limit (f32, or f16 for `gemm_f16`); no parts
    /// when `coop` holds them.
    pub weight: SplitWeight,
    /// The bias.
    pub bias: wgpu::Buffer,
    /// f16 on cooperative matrices: the weights as `coop.wgsl` reads them
    /// ([`kernels::coop::weight_for_coop`] of the layer as a 1x1 convolution), and the mode.
    pub coop: Option<(kernels::coop::Coop, wgpu::Buffer)>,
}

impl GpuDense {
    /// Uploads `weight` (`[out, inp]`, our layout) and `bias`, stored as `precision`.
    #[allow(clippy::too_many_arguments)]
    pub fn upload(
        ctx: &GpuContext,
        name: &str,
        weight: &[f32],
        bias: &[f32],
        out: usize,
        inp: usize,
        relu: bool,
        precision: Precision,
    ) -> Result<GpuDense> {
        if weight.len() != out * inp || bias.len() != out {
            return Err(Error::Invalid(format!(
                "{name}: a [{out}, {inp}] layer needs {} weights and {out} biases, got {} and {}",
                out * inp,
                weight.len(),
                bias.len()
            )));
        }
        let upload = match precision {
            Precision::F32 => SplitWeight::upload,
            Precision::F16 => kernels::dense::upload_f16,
        };
        Ok(GpuDense {
            name: name.to_string(),
            inp,
            out,
            relu,
            precision,
            weight: upload(ctx, &format!("{name}.weight"), weight, out, inp)?,
            bias: upload_f32(ctx, &format!("{name}.bias"), bias)?,
            coop: None,
        })
    }

    /// As [`GpuDense::upload`] in f16 for `coop.wgsl` (the layer as a 1x1 convolution of 1x1
    /// images), where its weights fit one binding; else the `gemm_f16` layout.
    #[allow(clippy::too_many_arguments)]
    pub fn upload_coop(
        ctx: &GpuContext,
        name: &str,
        weight: &[f32],
        bias: &[f32],
        out: usize,
        inp: usize,
        relu: bool,
        coop: kernels::coop::Coop,
    ) -> Result<GpuDense> {
        let shape = kernels::conv2d::Conv2dShape::dense(1, inp, out);
        if weight.len() != out * inp
            || (kernels::coop::weight_words(&shape) as u64) * 4 > ctx.max_binding()
        {
            return Self::upload(ctx, name, weight, bias, out, inp, relu, Precision::F16);
        }
        let packed = kernels::coop::weight_for_coop(&shape, weight);
        let buffer = crate::gpu::upload(ctx, &format!("{name}.weight (coop f16)"), &packed)?;
        Ok(GpuDense {
            name: name.to_string(),
            inp,
            out,
            relu,
            precision: Precision::F16,
            weight: SplitWeight {
                rows: out,
                cols: inp,
                parts: Vec::new(),
            },
            bias: upload_f32(ctx, &format!("{name}.bias"), bias)?,
            coop: Some((coop, buffer)),
        })
    }

    /// 32-bit words of scratch this layer's f16 forward wants for `batch` rows (0 in f32).
    pub fn scratch_words(&self, batch: usize) -> Result<usize> {
        Ok(match (self.precision, &self.coop) {
            (Precision::F32, _) => 0,
            (Precision::F16, Some(_)) => kernels::coop::scratch_words(
                &kernels::conv2d::Conv2dShape::dense(batch, self.inp, self.out),
            )?,
            (Precision::F16, None) => kernels::dense::scratch_words_f16(batch, self.inp),
        })
    }

    /// Layer `name` (`fc6`, ...) of `weights`, as the network runs it (f16 on cooperative
    /// matrices when `coop` is given).
    pub fn from_weights(
        ctx: &GpuContext,
        weights: &Weights,
        name: &str,
        relu: bool,
        precision: Precision,
        coop: Option<kernels::coop::Coop>,
    ) -> Result<GpuDense> {
        let shapes = weights.spec().param_shapes()?;
        let shape = shapes
            .iter()
            .find(|(n, _)| *n == format!("{name}.weight"))
            .map(|(_, s)| s.clone())
            .ok_or_else(|| Error::Invalid(format!("the network has no dense layer {name}")))?;
        let (w, b) = (
            weights.get(&format!("{name}.weight")),
            weights.get(&format!("{name}.bias")),
        );
        match (precision, coop) {
            (Precision::F16, Some(c)) => {
                Self::upload_coop(ctx, name, w, b, shape[0], shape[1], relu, c)
            }
            _ => Self::upload(ctx, name, w, b, shape[0], shape[1], relu, precision),
        }
    }

    /// The dispatches of this layer's forward for `batch` rows, `input` `[batch, inp]` ->
    /// `output` `[batch, out]`. f16 storage needs `scratch` (see [`GpuDense::scratch_words`])
    /// for the packed input.
    pub fn forward(
        &self,
        ctx: &GpuContext,
        kernels: &Kernels,
        batch: usize,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
        scratch: Option<&wgpu::Buffer>,
    ) -> Result<Vec<Dispatch>> {
        if self.precision == Precision::F16 && kernels::gemv_f16::serves(kernels, batch) {
            return self.gemv_f16(ctx, kernels, batch, input, output);
        }
        match (self.precision, scratch, &self.coop) {
            (Precision::F16, Some(scratch), Some((coop, weight))) => kernels::coop::dispatch(
                ctx,
                kernels,
                *coop,
                kernels::coop::DEFAULT_TILE,
                "dense",
                &kernels::conv2d::Conv2dShape::dense(batch, self.inp, self.out),
                self.relu,
                weight,
                &self.bias,
                input,
                output,
                scratch,
            ),
            (Precision::F16, Some(scratch), None) => kernels::dense::dispatch_f16(
                ctx,
                kernels,
                batch,
                &self.weight,
                &self.bias,
                self.relu,
                input,
                output,
                scratch,
            ),
            (Precision::F16, None, _) => Err(Error::Invalid(format!(
                "{}: f16 dense layers need a scratch buffer",
                self.name
            ))),
            (Precision::F32, _, _) => kernels::dense::dispatch(
                ctx,
                kernels,
                batch,
                &self.weight,
                &self.bias,
                self.relu,
                input,
                output,
            ),
        }
    }
}

impl GpuDense {
    /// The f16 forward at small batches ([`kernels::gemv_f16`]), from whichever f16 layout
    /// the weights are stored in.
    fn gemv_f16(
        &self,
        ctx: &GpuContext,
        kernels: &Kernels,
        batch: usize,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
    ) -> Result<Vec<Dispatch>> {
        use kernels::gemv_f16::{dispatch, HalfOrder};
        let run = |rows: (usize, usize), layout: (usize, HalfOrder), weight: &wgpu::Buffer| {
            dispatch(
                ctx,
                kernels,
                batch,
                self.inp,
                (rows.0, rows.1, self.out),
                layout,
                self.relu,
                weight,
                &self.bias,
                input,
                output,
            )
        };
        match &self.coop {
            Some((_, weight)) => {
                let shape = kernels::conv2d::Conv2dShape::dense(1, self.inp, self.out);
                let words = kernels::coop::kp(&shape) / 2;
                Ok(vec![run(
                    (0, self.out),
                    (words, HalfOrder::Sequential),
                    weight,
                )?])
            }
            None => {
                let words = Precision::F16.words(Precision::F16.pad_k(self.inp));
                self.weight
                    .parts
                    .iter()
                    .filter(|(_, rows, _)| *rows > 0)
                    .map(|(start, rows, buf)| {
                        run((*start, *rows), (words, HalfOrder::Interleaved), buf)
                    })
                    .collect()
            }
        }
    }
}

/// Dense layers applied in order to rows of features, `chunk` rows per GPU submission: the
/// frozen fc6 -> ReLU -> fc7 -> ReLU that the `last` head trains on.
pub struct DenseStack {
    /// The layers, in order.
    pub layers: Vec<GpuDense>,
    kernels: Kernels,
    chunk: usize,
    /// Input, then each layer's output, `[chunk, width]`.
    buffers: Vec<wgpu::Buffer>,
    dispatches: Vec<Dispatch>,
}

impl DenseStack {
    /// `layers` (f32 storage) for up to `chunk` rows per submission.
    pub fn new(ctx: &GpuContext, layers: Vec<GpuDense>, chunk: usize) -> Result<DenseStack> {
        let first = layers
            .first()
            .ok_or_else(|| Error::Invalid("a dense stack needs at least one layer".into()))?;
        for pair in layers.windows(2) {
            if pair[0].out != pair[1].inp {
                return Err(Error::Invalid(format!(
                    "{} gives {} values but {} takes {}",
                    pair[0].name, pair[0].out, pair[1].name, pair[1].inp
                )));
            }
        }
        let chunk = chunk.max(1);
        let hint = format!("features are processed {chunk} at a time");
        let mut buffers = vec![storage_buffer(
            ctx,
            "dense input",
            chunk * first.inp,
            &hint,
        )?];
        for l in &layers {
            buffers.push(storage_buffer(
                ctx,
                &format!("{} out", l.name),
                chunk * l.out,
                &hint,
            )?);
        }
        Ok(DenseStack {
            layers,
            kernels: Kernels::new(ctx),
            chunk,
            buffers,
            dispatches: Vec::new(),
        })
    }

    /// Floats of one input row.
    pub fn input_len(&self) -> usize {
        self.layers[0].inp
    }

    /// Floats of one output row.
    pub fn output_len(&self) -> usize {
        self.layers.last().expect("non-empty").out
    }

    fn dispatches_for(&self, ctx: &GpuContext, rows: usize) -> Result<Vec<Dispatch>> {
        let mut ds = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            ds.extend(l.forward(
                ctx,
                &self.kernels,
                rows,
                &self.buffers[i],
                &self.buffers[i + 1],
                None,
            )?);
        }
        Ok(ds)
    }

    /// `x` is `[rows, input_len]`; returns `[rows, output_len]`.
    pub fn forward(&mut self, ctx: &GpuContext, x: &[f32]) -> Result<Vec<f32>> {
        let (inp, outp) = (self.input_len(), self.output_len());
        if !x.len().is_multiple_of(inp) {
            return Err(Error::Invalid(format!(
                "{} values are not whole rows of {inp}",
                x.len()
            )));
        }
        let rows = x.len() / inp;
        let mut out = Vec::with_capacity(rows * outp);
        for start in (0..rows).step_by(self.chunk) {
            let n = self.chunk.min(rows - start);
            // Full chunks reuse one set of dispatches; the last, shorter one gets its own.
            let ds = if n == self.chunk {
                if self.dispatches.is_empty() {
                    self.dispatches = self.dispatches_for(ctx, n)?;
                }
                None
            } else {
                Some(self.dispatches_for(ctx, n)?)
            };
            ctx.queue.write_buffer(
                &self.buffers[0],
                0,
                bytemuck::cast_slice(&x[start * inp..(start + n) * inp]),
            );
            kernels::run(ctx, ds.as_deref().unwrap_or(&self.dispatches))?;
            out.extend(read_back_f32(
                ctx,
                self.buffers.last().expect("output"),
                n * outp,
            )?);
        }
        Ok(out)
    }
}
