//! A restricted pickle machine: runs the opcodes a PyTorch state_dict uses and nothing else.
//!
//! A pickle is a program for a stack machine that may call any Python callable it names, which
//! is why `torch.load` without `weights_only=True` is a code-execution hole. This machine
//! understands only the opcodes a state_dict uses and turns the few globals a state_dict names
//! (`collections.OrderedDict`, `torch._utils._rebuild_*`, the `torch.*Storage` types) into
//! data. Any other global (`os.system`, `builtins.eval`, ...) stops the run at the opcode that
//! names it, with an error naming it; nothing is ever called or imported, so there is nothing
//! to run. What the allowed globals build (tensors from storages) is the torch format's
//! business: [`Objects`], implemented in `pth.rs`.
//!
//! Why not a crate: `serde-pickle` resolves no globals (a tensor becomes an opaque or `None`
//! value, losing storage offset, size and stride), and `repugnant-pickle` is an unmaintained
//! 0.0.1 "low effort scraping" parser with no allow-list. The machine (`machine.rs`) has an
//! explicit allow-list, never recurses on file data, and bounds its memory and work by the
//! pickle's size: containers are shared (`Rc`, copy on write) and the copying is budgeted,
//! nesting is bounded, error descriptions are bounded.

use std::rc::Rc;

mod machine;

pub(super) use machine::run_pickle;

/// Element types of PyTorch storages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DType {
    F32,
    F64,
    F16,
    BF16,
    /// Anything else a state_dict may hold (int64 counters, bool masks...): kept so the error
    /// is about the dtype of a named key, not about the file.
    Other(&'static str, usize),
}

impl DType {
    pub(super) fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
            DType::F16 | DType::BF16 => 2,
            DType::Other(_, s) => s,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::Other(n, _) => n,
        }
    }

    fn from_storage_name(name: &str) -> Option<DType> {
        Some(match name {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::Other("int64", 8),
            "IntStorage" => DType::Other("int32", 4),
            "ShortStorage" => DType::Other("int16", 2),
            "CharStorage" => DType::Other("int8", 1),
            "ByteStorage" => DType::Other("uint8", 1),
            "BoolStorage" => DType::Other("bool", 1),
            _ => return None,
        })
    }
}

/// The globals a state_dict may name. Everything else is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Global {
    OrderedDict,
    RebuildTensor,
    RebuildTensorV2,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    TensorType,
    Storage(DType),
}

const ALLOWED: &str = "collections.OrderedDict, torch._utils._rebuild_tensor(_v2), \
     torch._utils._rebuild_parameter(_with_state), torch._tensor._rebuild_from_type_v2, \
     torch.Tensor, torch.nn.parameter.Parameter, torch.<Type>Storage";

fn allowed_global(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch", "Tensor") | ("torch.nn.parameter", "Parameter") => Global::TensorType,
        ("torch", storage) => Global::Storage(DType::from_storage_name(storage)?),
        _ => return None,
    })
}

/// A storage named by a persistent id.
#[derive(Clone, Debug)]
pub(super) struct StorageRef {
    pub(super) dtype: DType,
    pub(super) key: String,
    /// Legacy format views: (offset in elements into the root storage).
    pub(super) view_offset: usize,
}

#[derive(Clone, Debug)]
pub(super) struct TensorRef {
    pub(super) storage: StorageRef,
    pub(super) offset: usize,
    pub(super) size: Vec<usize>,
    pub(super) stride: Vec<usize>,
}

/// Containers nest at most this deep (a state_dict needs 4), so that describing or dropping a
/// value never recurses deeper than that, whatever the file.
const MAX_DEPTH: u32 = 64;

/// A container's items and its nesting depth.
#[derive(Clone, Debug)]
pub(super) struct Cont<T> {
    items: Vec<T>,
    depth: u32,
}

impl<T> std::ops::Deref for Cont<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.items
    }
}

pub(super) type Seq = Rc<Cont<Value>>;
pub(super) type Map = Rc<Cont<(Value, Value)>>;

fn nest(depth: u32) -> VmResult<u32> {
    if depth > MAX_DEPTH {
        Err(format!(
            "containers nest deeper than {MAX_DEPTH} levels (a state_dict needs 4)"
        ))
    } else {
        Ok(depth)
    }
}

pub(super) fn seq(items: Vec<Value>) -> VmResult<Seq> {
    let depth = nest(1 + items.iter().map(Value::depth).max().unwrap_or(0))?;
    Ok(Rc::new(Cont { items, depth }))
}

pub(super) fn map(items: Vec<(Value, Value)>) -> VmResult<Map> {
    let depth = items
        .iter()
        .map(|(k, v)| k.depth().max(v.depth()))
        .max()
        .unwrap_or(0);
    let depth = nest(1 + depth)?;
    Ok(Rc::new(Cont { items, depth }))
}

/// Appends to a shared container (copy on write: a memo entry keeps what it had). A copy spends
/// `budget` (items copied), so that appending to a memoized container over and over cannot take
/// quadratic time.
fn extend<T: Clone>(
    c: &mut Rc<Cont<T>>,
    more: Vec<T>,
    depth: impl Fn(&T) -> u32,
    budget: &mut usize,
) -> VmResult<()> {
    let d = nest(1 + more.iter().map(depth).max().unwrap_or(0))?;
    if Rc::strong_count(c) > 1 || Rc::weak_count(c) > 0 {
        *budget = budget.checked_sub(c.items.len()).ok_or(
            "the pickle copies shared containers over and over (more copying than its size \
             allows; a state_dict never does)",
        )?;
    }
    let m = Rc::make_mut(c);
    m.items.extend(more);
    m.depth = m.depth.max(d);
    Ok(())
}

/// Pickle values. Containers are shared (`Rc`) so memo look-ups copy nothing: a hostile file
/// cannot blow memory up by fetching the same container many times.
#[derive(Clone, Debug)]
pub(super) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for i64 (the legacy magic number); its little-endian bytes.
    BigInt(Rc<Vec<u8>>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<Vec<u8>>),
    Tuple(Seq),
    List(Seq),
    Dict(Map),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    fn depth(&self) -> u32 {
        match self {
            Value::Tuple(c) | Value::List(c) => c.depth,
            Value::Dict(c) => c.depth,
            _ => 0,
        }
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "class or function",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

/// What the allowed globals build and what persistent ids name: the file format's part.
pub(super) trait Objects {
    /// BINPERSID: the value a persistent id stands for.
    fn persistent_load(&self, pid: Value) -> VmResult<Value>;
    /// REDUCE / NEWOBJ: an allowed global applied to its arguments. Builds data, never runs
    /// anything.
    fn reduce(&self, g: Global, args: &[Value]) -> VmResult<Value>;
}

pub(super) type VmResult<T> = std::result::Result<T, String>;

pub(super) fn as_usize(v: &Value) -> Option<usize> {
    match v {
        Value::Int(i) if *i >= 0 => usize::try_from(*i).ok(),
        _ => None,
    }
}

pub(super) fn usize_tuple(v: &Value) -> Option<Vec<usize>> {
    match v {
        Value::Tuple(t) | Value::List(t) => t.iter().map(as_usize).collect(),
        _ => None,
    }
}

/// A short description of a value for error messages: at most 3 levels and 6 items a level
/// (a shared DAG could otherwise describe to an exponential length).
pub(super) fn describe(v: &Value) -> String {
    describe_at(v, 0)
}

fn describe_at(v: &Value, level: u32) -> String {
    match v {
        Value::Tuple(_) if level >= 3 => "(...)".to_string(),
        Value::Str(s) => format!("'{s}'"),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bytes(b) => format!("<{} bytes>", b.len()),
        Value::Tuple(t) => format!(
            "({})",
            t.iter()
                .take(6)
                .map(|x| describe_at(x, level + 1))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No persistent ids, no constructors: the bare machine.
    struct Bare;

    impl Objects for Bare {
        fn persistent_load(&self, _: Value) -> VmResult<Value> {
            Err("persistent id".into())
        }
        fn reduce(&self, g: Global, _: &[Value]) -> VmResult<Value> {
            Err(format!("{g:?}"))
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowing_the_stack() {
        for (open, close) in [(vec![b')'], vec![0x85]), (vec![b']'], vec![0x85])] {
            let mut p = vec![0x80, 2];
            p.extend(&open);
            for _ in 0..200_000 {
                p.extend(&close);
            }
            p.push(b'.');
            let e = run_pickle(&p, 0, &Bare).unwrap_err();
            assert!(e.contains("nest deeper"), "{e}");
        }
        // Through APPEND: x -> [x], repeated (BINPUT 0, POP, EMPTY_LIST, BINGET 0, APPEND).
        let mut p = vec![0x80, 2, b']'];
        for _ in 0..200_000 {
            p.extend([b'q', 0, b'0', b']', b'h', 0, b'a']);
        }
        p.push(b'.');
        let e = run_pickle(&p, 0, &Bare).unwrap_err();
        assert!(e.contains("nest deeper"), "{e}");
    }

    #[test]
    fn copying_shared_containers_is_budgeted() {
        // BINPUT 0, NONE, APPEND, 200 000 times: every APPEND copies the memoized list.
        let mut p = vec![0x80, 2, b']'];
        for _ in 0..200_000 {
            p.extend([b'q', 0, b'N', b'a']);
        }
        p.push(b'.');
        let start = std::time::Instant::now();
        let e = run_pickle(&p, 0, &Bare).unwrap_err();
        assert!(e.contains("copies shared containers"), "{e}");
        assert!(start.elapsed().as_secs() < 5);
        // A state_dict's pattern (memoize, then fill in batches) copies once, when empty.
        let mut p = vec![0x80, 2, b'}', b'q', 0];
        for i in 0..1000u16 {
            p.push(b'(');
            for j in 0..100u16 {
                p.push(b'M');
                p.extend((i * 100 + j).to_le_bytes());
                p.push(b'N');
            }
            p.push(b'u');
        }
        p.push(b'.');
        let Value::Dict(d) = run_pickle(&p, 0, &Bare).unwrap().0 else {
            panic!("not a dict")
        };
        assert_eq!(d.len(), 100_000);
    }

    #[test]
    fn describing_a_shared_dag_is_bounded() {
        // x = (); 60 times x = (x, x, x, x, x, x): 6^60 paths.
        let mut p = vec![0x80, 2, b')'];
        for _ in 0..60 {
            p.extend([b'q', 0, b'(']);
            p.extend([b'h', 0].repeat(6));
            p.push(b't');
        }
        p.push(b'.');
        let v = run_pickle(&p, 0, &Bare).unwrap().0;
        let d = describe(&v);
        assert!(d.len() < 2000 && d.contains("(...)"), "{d}");
    }

    #[test]
    fn os_system_is_refused_without_running() {
        // Protocol 2: c os\nsystem\n (X'echo') tuple1 R .
        let mut p = vec![0x80, 2];
        p.extend_from_slice(b"cos\nsystem\n");
        p.extend_from_slice(b"X\x04\x00\x00\x00echo");
        p.extend_from_slice(&[0x85, b'R', b'.']);
        let e = run_pickle(&p, 0, &Bare).unwrap_err();
        assert!(e.contains("'os.system'"), "{e}");
    }
}
