//! What the pickle's allowed globals build and how tensors get their data: persistent ids as
//! storages, `_rebuild_tensor_v2` as tensor views, the state_dict's entries, and each tensor
//! gathered (strided, bounded) from its storage's decoded elements.

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use super::super::pickle::{
    as_usize, describe, map, usize_tuple, DType, Global, Objects, StorageRef, TensorRef, Value,
    VmResult,
};
use super::super::raw::{file_err, RawTensor};
use crate::error::Result;

/// The tensors of a file hold at most this many times the elements of its storages (plus
/// `GATHER_SLACK`).
pub const MAX_GATHER_RATIO: usize = 16;
const GATHER_SLACK: usize = 1 << 16;

/// How persistent ids (BINPERSID) are interpreted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Persist {
    /// A pickle with no persistent ids (legacy header pickles).
    Refuse,
    /// zip format: `('storage', StorageType, key, location, numel)`.
    Zip,
    /// legacy format: `('storage', StorageType, key, location, numel, view_metadata)`.
    Legacy,
}

impl Objects for Persist {
    fn persistent_load(&self, pid: Value) -> VmResult<Value> {
        if *self == Persist::Refuse {
            return Err("unexpected persistent id in a header pickle".into());
        }
        let bad = || format!("unsupported persistent id {}", describe(&pid));
        let Value::Tuple(t) = &pid else {
            return Err(bad());
        };
        let tag_ok = matches!(t.first(), Some(Value::Str(s)) if &**s == "storage");
        let (Some(Value::Global(Global::Storage(dtype))), Some(key)) = (t.get(1), t.get(2)) else {
            return Err(bad());
        };
        if !tag_ok {
            return Err(bad());
        }
        let key = match key {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            _ => return Err(bad()),
        };
        let view_offset = match (*self, t.get(5)) {
            (Persist::Legacy, Some(Value::Tuple(view))) => match view.get(1) {
                Some(Value::Int(off)) if *off >= 0 => *off as usize,
                _ => return Err(bad()),
            },
            _ => 0,
        };
        Ok(Value::Storage(Rc::new(StorageRef {
            dtype: *dtype,
            key,
            view_offset,
        })))
    }

    /// Applies an allowed callable to its arguments: builds data, never runs anything.
    fn reduce(&self, g: Global, args: &[Value]) -> VmResult<Value> {
        match g {
            Global::OrderedDict => {
                // Python 3 pickles an empty OrderedDict and SETITEMS; Python 2's protocol 2
                // passes the items as the argument, `OrderedDict([[key, value], ...])` (the
                // legacy files of the `lpips` package, assets/lpips).
                let mut items = Vec::new();
                if let Some(Value::List(l) | Value::Tuple(l)) = args.first() {
                    for item in l.iter() {
                        match item {
                            Value::List(kv) | Value::Tuple(kv) if kv.len() == 2 => {
                                items.push((kv[0].clone(), kv[1].clone()))
                            }
                            _ => {
                                return Err("OrderedDict: an item is not a (key, value) pair".into())
                            }
                        }
                    }
                }
                Ok(Value::Dict(map(items)?))
            }
            Global::RebuildTensor | Global::RebuildTensorV2 => {
                let (Some(Value::Storage(s)), Some(off), Some(size), Some(stride)) =
                    (args.first(), args.get(1), args.get(2), args.get(3))
                else {
                    return Err(
                        "_rebuild_tensor: expected (storage, offset, size, stride, ...)".into(),
                    );
                };
                let offset = as_usize(off).ok_or("tensor storage offset is not an integer >= 0")?;
                let size = usize_tuple(size).ok_or("tensor size is not a tuple of integers")?;
                let stride =
                    usize_tuple(stride).ok_or("tensor stride is not a tuple of integers")?;
                if size.len() != stride.len() {
                    return Err(format!(
                        "tensor size {size:?} and stride {stride:?} differ in length"
                    ));
                }
                Ok(Value::Tensor(Rc::new(TensorRef {
                    storage: (**s).clone(),
                    offset,
                    size,
                    stride,
                })))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => match args.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                _ => Err("_rebuild_parameter: the first argument is not a tensor".into()),
            },
            Global::RebuildFromTypeV2 => {
                // (func, type, args, state): only plain tensors and Parameters.
                match (args.first(), args.get(1), args.get(2)) {
                    (
                        Some(f @ Value::Global(_)),
                        Some(Value::Global(Global::TensorType)),
                        Some(a),
                    ) => match (f, a) {
                        (Value::Global(g), Value::Tuple(a)) => self.reduce(*g, a),
                        _ => Err("_rebuild_from_type_v2: the arguments are not a tuple".into()),
                    },
                    _ => Err(
                        "_rebuild_from_type_v2: only torch.Tensor / Parameter are supported".into(),
                    ),
                }
            }
            Global::TensorType | Global::Storage(_) => Err(format!(
                "{g:?} is a type, not something a state_dict constructs"
            )),
        }
    }
}

/// The `(key, tensor)` pairs of a state_dict, looking under `state_dict` / `model` when the file
/// is a training checkpoint.
pub(super) fn state_dict(
    root: &Value,
) -> std::result::Result<Vec<(String, Rc<TensorRef>)>, String> {
    let Value::Dict(d) = root else {
        return Err(format!(
            "the pickle holds a {}, not a state_dict (save `model.state_dict()`, not the model)",
            root.kind()
        ));
    };
    let tensors: Vec<(String, Rc<TensorRef>)> = d
        .iter()
        .filter_map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Tensor(t)) => Some((k.to_string(), t.clone())),
            _ => None,
        })
        .collect();
    if tensors.is_empty() {
        for name in ["state_dict", "model", "model_state_dict", "net"] {
            if let Some((_, inner @ Value::Dict(_))) = d
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if &**s == name))
            {
                return state_dict(inner);
            }
        }
        let keys: Vec<String> = d.iter().take(12).map(|(k, _)| describe(k)).collect();
        return Err(format!(
            "the pickle's dict holds no tensors (keys: {})",
            keys.join(", ")
        ));
    }
    Ok(tensors)
}

fn decode(dtype: DType, bytes: &[u8], big_endian: bool) -> std::result::Result<Vec<f32>, String> {
    let n = dtype.size();
    let mut buf = [0u8; 8];
    let mut elem = |c: &[u8]| -> [u8; 8] {
        buf[..n].copy_from_slice(c);
        if big_endian {
            buf[..n].reverse();
        }
        buf
    };
    Ok(match dtype {
        DType::F32 => bytes
            .chunks_exact(4)
            .map(|c| {
                let b = elem(c);
                f32::from_le_bytes([b[0], b[1], b[2], b[3]])
            })
            .collect(),
        DType::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(elem(c)) as f32)
            .collect(),
        DType::F16 => bytes
            .chunks_exact(2)
            .map(|c| {
                let b = elem(c);
                half::f16::from_le_bytes([b[0], b[1]]).to_f32()
            })
            .collect(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| {
                let b = elem(c);
                half::bf16::from_le_bytes([b[0], b[1]]).to_f32()
            })
            .collect(),
        DType::Other(name, _) => {
            return Err(format!(
                "dtype {name} is not a float type; weights must be float32 (float16, bfloat16 \
                 and float64 are converted)"
            ))
        }
    })
}

/// Gathers a (possibly strided) tensor from its storage into C order.
fn gather(t: &TensorRef, storage: &[f32]) -> std::result::Result<Vec<f32>, String> {
    let numel = t
        .size
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("tensor size overflows")?;
    if numel == 0 {
        return Ok(Vec::new());
    }
    if numel > storage.len() {
        // Only expanded (stride 0) views can do that; a state_dict never holds one, and the
        // check keeps a forged size from allocating without bound.
        return Err(format!(
            "size {:?} has {numel} elements but storage '{}' holds only {}",
            t.size,
            t.storage.key,
            storage.len()
        ));
    }
    let base = t.storage.view_offset + t.offset;
    let last = t
        .size
        .iter()
        .zip(&t.stride)
        .try_fold(base, |a, (&d, &s)| {
            (d - 1).checked_mul(s).and_then(|x| a.checked_add(x))
        })
        .ok_or("tensor strides overflow")?;
    if last >= storage.len() {
        return Err(format!(
            "size {:?}, stride {:?} and offset {base} reach element {last} of storage '{}', \
             which holds {} elements",
            t.size,
            t.stride,
            t.storage.key,
            storage.len()
        ));
    }
    let contiguous = {
        let mut expect = 1usize;
        let mut ok = true;
        for (&d, &s) in t.size.iter().zip(&t.stride).rev() {
            if d != 1 && s != expect {
                ok = false;
            }
            expect *= d;
        }
        ok
    };
    if contiguous {
        return Ok(storage[base..base + numel].to_vec());
    }
    let mut out = Vec::with_capacity(numel);
    let nd = t.size.len();
    let mut idx = vec![0usize; nd];
    for _ in 0..numel {
        let off: usize = base + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
        out.push(storage[off]);
        for d in (0..nd).rev() {
            idx[d] += 1;
            if idx[d] < t.size[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(out)
}

/// Builds the RawTensors of the entries `keep` accepts once their storages' bytes can be
/// fetched (the storages of the others are never asked for).
pub(super) fn tensors_from(
    path: &Path,
    root: &Value,
    mut storage_bytes: impl FnMut(&str) -> Result<Vec<u8>>,
    big_endian: bool,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<RawTensor>> {
    let mut entries = state_dict(root).map_err(|m| file_err(path, m))?;
    entries.retain(|(key, _)| keep(key));
    let mut cache: HashMap<String, std::result::Result<Vec<f32>, String>> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    // Elements of the storages decoded, and of the tensors gathered from them so far.
    let (mut stored, mut gathered) = (0usize, 0usize);
    for (key, t) in entries {
        let skey = t.storage.key.clone();
        if !cache.contains_key(&skey) {
            let dtype = t.storage.dtype;
            let decoded = match dtype {
                DType::Other(..) => decode(dtype, &[], big_endian),
                _ => {
                    let bytes = storage_bytes(&skey)?;
                    if bytes.len() % dtype.size() != 0 {
                        return Err(file_err(
                            path,
                            format!(
                                "storage '{skey}' (for '{key}') has {} bytes, not a whole \
                                 number of {} elements (is the file truncated?)",
                                bytes.len(),
                                dtype.name()
                            ),
                        ));
                    }
                    decode(dtype, &bytes, big_endian)
                }
            };
            if let Ok(d) = &decoded {
                stored = stored.saturating_add(d.len());
            }
            cache.insert(skey.clone(), decoded);
        }
        let data = match &cache[&skey] {
            Ok(storage) => {
                let numel = t
                    .size
                    .iter()
                    .try_fold(1usize, |a, &d| a.checked_mul(d))
                    .unwrap_or(usize::MAX)
                    .min(storage.len());
                gathered = gathered.saturating_add(numel);
                let limit = stored
                    .saturating_mul(MAX_GATHER_RATIO)
                    .saturating_add(GATHER_SLACK);
                if gathered > limit {
                    return Err(file_err(
                        path,
                        format!(
                            "tensor '{key}': the tensors so far hold {gathered} elements, over \
                             {MAX_GATHER_RATIO} times the {stored} elements of the storages in \
                             the file (a forged file naming the same storage over and over?)"
                        ),
                    ));
                }
                gather(&t, storage)
            }
            Err(e) => Err(e.clone()),
        };
        if let Err(e) = &data {
            if !matches!(t.storage.dtype, DType::Other(..)) {
                return Err(file_err(path, format!("tensor '{key}': {e}")));
            }
        }
        out.push(RawTensor {
            key,
            shape: t.size.clone(),
            data,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_gather_is_c_order() {
        // A 2x3 tensor stored transposed: storage [0, 1, 2, 3, 4, 5] read with stride (1, 2).
        let t = TensorRef {
            storage: StorageRef {
                dtype: DType::F32,
                key: "0".into(),
                view_offset: 0,
            },
            offset: 0,
            size: vec![2, 3],
            stride: vec![1, 2],
        };
        let s: Vec<f32> = (0..6).map(|v| v as f32).collect();
        assert_eq!(gather(&t, &s).unwrap(), vec![0., 2., 4., 1., 3., 5.]);
        let bad = TensorRef {
            offset: 1,
            stride: vec![3, 1],
            ..t
        };
        assert!(gather(&bad, &s).unwrap_err().contains("reach element 6"));
        let expanded = TensorRef {
            offset: 0,
            size: vec![1 << 40, 1 << 20],
            stride: vec![0, 0],
            ..bad
        };
        assert!(gather(&expanded, &s).unwrap_err().contains("holds only 6"));
    }
}
