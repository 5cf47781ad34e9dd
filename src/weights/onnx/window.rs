//! Sliding windows (convolutions and pools): kernel, stride and padding attributes, and the
//! output size they give.

use super::graph::attr;
use super::proto::NodeProto;
use super::reader::Reader;
use crate::error::Result;

impl Reader<'_> {
    /// `[h, w]` from a 2-element attribute.
    pub(super) fn pair(&self, label: &str, name: &str, v: &[i64]) -> Result<[usize; 2]> {
        match v {
            [a, b] if *a > 0 && *b > 0 && *a < 1 << 20 && *b < 1 << 20 => {
                Ok([*a as usize, *b as usize])
            }
            _ => Err(self.err(format!(
                "{label}: {name} {v:?}; expected two positive values (a 2-D layer)"
            ))),
        }
    }

    /// `[top, left, bottom, right]` from `pads` / `auto_pad`.
    pub(super) fn pads(
        &self,
        node: &NodeProto,
        label: &str,
        kernel: &[i64],
        strides: &[i64],
        hw: Option<[usize; 2]>,
    ) -> Result<[usize; 4]> {
        let auto = attr(node, "auto_pad")
            .map(|a| String::from_utf8_lossy(&a.s).to_string())
            .unwrap_or_default();
        match auto.as_str() {
            "" | "NOTSET" => {}
            "VALID" => return Ok([0; 4]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let [h, w] = hw.ok_or_else(|| {
                    self.err(format!(
                        "{label}: auto_pad {auto} needs the input size, which the graph does not declare"
                    ))
                })?;
                let [kh, kw] = self.pair(label, "kernel_shape", kernel)?;
                let [sh, sw] = self.pair(label, "strides", strides)?;
                let total = |n: usize, k: usize, s: usize| {
                    let out = n.div_ceil(s);
                    ((out - 1) * s + k).saturating_sub(n)
                };
                let (th, tw) = (total(h, kh, sh), total(w, kw, sw));
                let lower = auto == "SAME_LOWER";
                let split = |t: usize| {
                    if lower {
                        (t - t / 2, t / 2)
                    } else {
                        (t / 2, t - t / 2)
                    }
                };
                let ((t, b), (l, r)) = (split(th), split(tw));
                return Ok([t, l, b, r]);
            }
            other => {
                return Err(self.err(format!("{label}: unknown auto_pad '{other}'")));
            }
        }
        match attr(node, "pads").map(|a| a.ints.as_slice()) {
            None => Ok([0; 4]),
            Some(p @ [_, _, _, _]) if p.iter().all(|&v| (0..1 << 20).contains(&v)) => {
                Ok([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize])
            }
            Some(p) => Err(self.err(format!(
                "{label}: pads {p:?}; expected four non-negative values (top, left, bottom, right)"
            ))),
        }
    }
}

/// Output size of a sliding window over `n` values with `pads` (begin, end) of padding (ONNX's
/// formula; `ceil` as `ceil_mode=1`). `None` when the window does not fit.
pub fn window_out(n: usize, k: usize, s: usize, pads: [usize; 2], ceil: bool) -> Option<usize> {
    let span = (n + pads[0] + pads[1]).checked_sub(k)?;
    if s == 0 {
        return None;
    }
    let mut out = if ceil { span.div_ceil(s) } else { span / s } + 1;
    // A last window that would start in the end padding is dropped (as PyTorch and onnxruntime).
    if ceil && out > 1 && (out - 1) * s >= n + pads[0] {
        out -= 1;
    }
    Some(out)
}
