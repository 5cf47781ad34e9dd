//! PyTorch `.pth` / `.pt` files read without executing anything.
//!
//! `torch.save` writes a zip (`<name>/data.pkl`, a pickle, plus one raw little-endian file per
//! tensor storage, `<name>/data/<key>`); files from before PyTorch 1.6 are a sequence of pickles
//! followed by the raw storages ("legacy" format). Both are read here.
//!
//! A pickle is a program for a stack machine that may call any Python callable it names, which
//! is why `torch.load` without `weights_only=True` is a code-execution hole. This module runs its
//! own small pickle machine instead: it understands only the opcodes a state_dict uses and turns
//! the few globals a state_dict names (`collections.OrderedDict`, `torch._utils._rebuild_*`, the
//! `torch.*Storage` types) into data. Any other global (`os.system`, `builtins.eval`, ...) stops
//! the read at the opcode that names it, with an error naming it; nothing is ever called or
//! imported, so there is nothing to run.
//!
//! Why not a crate: `serde-pickle` resolves no globals (a tensor becomes an opaque or `None`
//! value, losing storage offset, size and stride), and `repugnant-pickle` is an unmaintained
//! 0.0.1 "low effort scraping" parser with no allow-list. The machine below is ~500 lines, has
//! an explicit allow-list, never recurses on file data, and bounds every allocation by the file
//! size, which is easier to audit than either.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use std::rc::Rc;

use super::npz::RawTensor;
use crate::error::{Error, Result};

fn file_err(path: &Path, message: impl Into<String>) -> Error {
    Error::WeightFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Element types of PyTorch storages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DType {
    F32,
    F64,
    F16,
    BF16,
    /// Anything else a state_dict may hold (int64 counters, bool masks...): kept so the error
    /// is about the dtype of a named key, not about the file.
    Other(&'static str, usize),
}

impl DType {
    fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
            DType::F16 | DType::BF16 => 2,
            DType::Other(_, s) => s,
        }
    }

    fn name(self) -> &'static str {
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
enum Global {
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
struct StorageRef {
    dtype: DType,
    key: String,
    /// Legacy format views: (offset in elements into the root storage).
    view_offset: usize,
}

#[derive(Clone, Debug)]
struct TensorRef {
    storage: StorageRef,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// Containers nest at most this deep (a state_dict needs 4), so that describing or dropping a
/// value never recurses deeper than that, whatever the file.
const MAX_DEPTH: u32 = 64;

/// A container's items and its nesting depth.
#[derive(Clone, Debug)]
struct Cont<T> {
    items: Vec<T>,
    depth: u32,
}

impl<T> std::ops::Deref for Cont<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.items
    }
}

type Seq = Rc<Cont<Value>>;
type Map = Rc<Cont<(Value, Value)>>;

fn nest(depth: u32) -> VmResult<u32> {
    if depth > MAX_DEPTH {
        Err(format!(
            "containers nest deeper than {MAX_DEPTH} levels (a state_dict needs 4)"
        ))
    } else {
        Ok(depth)
    }
}

fn seq(items: Vec<Value>) -> VmResult<Seq> {
    let depth = nest(1 + items.iter().map(Value::depth).max().unwrap_or(0))?;
    Ok(Rc::new(Cont { items, depth }))
}

fn map(items: Vec<(Value, Value)>) -> VmResult<Map> {
    let depth = items
        .iter()
        .map(|(k, v)| k.depth().max(v.depth()))
        .max()
        .unwrap_or(0);
    let depth = nest(1 + depth)?;
    Ok(Rc::new(Cont { items, depth }))
}

/// Appends to a shared container (copy on write: a memo entry keeps what it had).
fn extend<T: Clone>(c: &mut Rc<Cont<T>>, more: Vec<T>, depth: impl Fn(&T) -> u32) -> VmResult<()> {
    let d = nest(1 + more.iter().map(depth).max().unwrap_or(0))?;
    let m = Rc::make_mut(c);
    m.items.extend(more);
    m.depth = m.depth.max(d);
    Ok(())
}

/// Pickle values. Containers are shared (`Rc`) so memo look-ups copy nothing: a hostile file
/// cannot blow memory up by fetching the same container many times.
#[derive(Clone, Debug)]
enum Value {
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

    fn kind(&self) -> &'static str {
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

/// How persistent ids (BINPERSID) are interpreted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Persist {
    /// A pickle with no persistent ids (legacy header pickles).
    Refuse,
    /// zip format: `('storage', StorageType, key, location, numel)`.
    Zip,
    /// legacy format: `('storage', StorageType, key, location, numel, view_metadata)`.
    Legacy,
}

enum Item {
    Mark,
    V(Value),
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    memo: HashMap<u32, Value>,
    persist: Persist,
}

type VmResult<T> = std::result::Result<T, String>;

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> VmResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| format!("pickle ends early at byte {} (truncated?)", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> VmResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> VmResult<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> VmResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> VmResult<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn len_u64(&mut self) -> VmResult<usize> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| format!("length {n} is too large"))
    }

    fn line(&mut self) -> VmResult<&'a str> {
        let rest = &self.data[self.pos..];
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("pickle ends inside a text line (truncated?)")?;
        self.pos += nl + 1;
        std::str::from_utf8(&rest[..nl]).map_err(|_| "text line is not UTF-8".to_string())
    }

    fn push(&mut self, v: Value) {
        self.stack.push(Item::V(v));
    }

    fn pop(&mut self) -> VmResult<Value> {
        match self.stack.pop() {
            Some(Item::V(v)) => Ok(v),
            Some(Item::Mark) => Err("unexpected MARK on the stack".into()),
            None => Err("stack underflow".into()),
        }
    }

    fn top(&mut self) -> VmResult<&mut Value> {
        match self.stack.last_mut() {
            Some(Item::V(v)) => Ok(v),
            Some(Item::Mark) => Err("unexpected MARK on the stack".into()),
            None => Err("stack underflow".into()),
        }
    }

    /// Pops everything down to the topmost MARK.
    fn pop_mark(&mut self) -> VmResult<Vec<Value>> {
        let at = self
            .stack
            .iter()
            .rposition(|i| matches!(i, Item::Mark))
            .ok_or("no MARK on the stack")?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .map(|i| match i {
                Item::V(v) => v,
                Item::Mark => Value::None,
            })
            .collect())
    }

    fn memo_get(&self, idx: u32) -> VmResult<Value> {
        self.memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| format!("memo entry {idx} is read before it is written"))
    }

    fn memo_put(&mut self, idx: u32) -> VmResult<()> {
        let v = match self.stack.last() {
            Some(Item::V(v)) => v.clone(),
            _ => return Err("memoizing an empty stack".into()),
        };
        self.memo.insert(idx, v);
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> VmResult<()> {
        match allowed_global(module, name) {
            Some(g) => {
                self.push(Value::Global(g));
                Ok(())
            }
            None => Err(format!(
                "refused: the pickle names the global '{module}.{name}', which a state_dict \
                 never needs (a pickle calls such globals when Python loads it); nothing was \
                 executed. Allowed globals: {ALLOWED}"
            )),
        }
    }

    fn persistent_load(&self, pid: Value) -> VmResult<Value> {
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
        let view_offset = match (self.persist, t.get(5)) {
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
    fn reduce(&self, func: Value, args: Value) -> VmResult<Value> {
        let Value::Global(g) = func else {
            return Err(format!("REDUCE applies a {}, not a callable", func.kind()));
        };
        let Value::Tuple(args) = args else {
            return Err(format!(
                "REDUCE arguments are a {}, not a tuple",
                args.kind()
            ));
        };
        match g {
            Global::OrderedDict => Ok(Value::Dict(map(Vec::new())?)),
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
                    ) => self.reduce(f.clone(), a.clone()),
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

    /// Runs until STOP and returns the result.
    fn run(&mut self) -> VmResult<Value> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(format!("pickle protocol {proto} is not supported"));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Item::Mark),
                b'0' => {
                    self.pop()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    let b = self.take(n)?;
                    let v = if n == 0 {
                        Value::Int(0)
                    } else if n <= 8 {
                        let neg = b[n - 1] & 0x80 != 0;
                        let mut a = [if neg { 0xff } else { 0 }; 8];
                        a[..n].copy_from_slice(b);
                        Value::Int(i64::from_le_bytes(a))
                    } else {
                        Value::BigInt(Rc::new(b.to_vec()))
                    };
                    self.push(v);
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(Value::Float(f64::from_be_bytes(a)));
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()? as usize,
                        0x8c => self.u8()? as usize,
                        _ => self.len_u64()?,
                    };
                    let b = self.take(n)?;
                    let s =
                        std::str::from_utf8(b).map_err(|_| "string is not UTF-8".to_string())?;
                    self.push(Value::Str(Rc::from(s)));
                }
                b'T' | b'U' | b'B' | b'C' | 0x8e => {
                    // BINSTRING / SHORT_BINSTRING (py2 str) and BINBYTES / SHORT_BINBYTES / BINBYTES8
                    let n = match op {
                        b'T' | b'B' => self.u32()? as usize,
                        b'U' | b'C' => self.u8()? as usize,
                        _ => self.len_u64()?,
                    };
                    let b = self.take(n)?.to_vec();
                    let v = if matches!(op, b'T' | b'U') {
                        match String::from_utf8(b) {
                            Ok(s) => Value::Str(Rc::from(s.as_str())),
                            Err(e) => Value::Bytes(Rc::new(e.into_bytes())),
                        }
                    } else {
                        Value::Bytes(Rc::new(b))
                    };
                    self.push(v);
                }
                b')' => self.push(Value::Tuple(seq(Vec::new())?)),
                b']' => self.push(Value::List(seq(Vec::new())?)),
                b'}' => self.push(Value::Dict(map(Vec::new())?)),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(seq(items)?));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(seq(items)?));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items)?;
                    self.push(Value::Dict(map(pairs)?));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("stack underflow".into());
                    }
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(seq(items)?));
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => extend(l, vec![v], Value::depth)?,
                        other => return Err(format!("APPEND to a {}", other.kind())),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => extend(l, items, Value::depth)?,
                        other => return Err(format!("APPENDS to a {}", other.kind())),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top()? {
                        Value::Dict(d) => extend(d, vec![(k, v)], kv_depth)?,
                        other => return Err(format!("SETITEM on a {}", other.kind())),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let kv = pairs(items)?;
                    match self.top()? {
                        Value::Dict(d) => extend(d, kv, kv_depth)?,
                        other => return Err(format!("SETITEMS on a {}", other.kind())),
                    }
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    let v = self.memo_get(i)?;
                    self.push(v);
                }
                b'j' => {
                    let i = self.u32()?;
                    let v = self.memo_get(i)?;
                    self.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&module, &name) {
                        (Value::Str(m), Value::Str(n)) => {
                            let (m, n) = (m.clone(), n.clone());
                            self.global(&m, &n)?;
                        }
                        _ => return Err("STACK_GLOBAL needs two strings".into()),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.reduce(func, args)?;
                    self.push(v);
                }
                0x81 => {
                    // NEWOBJ cls(*args): only the allowed types, built like REDUCE.
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.reduce(cls, args)?;
                    self.push(v);
                }
                b'b' => {
                    // BUILD: sets the state of the object below (OrderedDict._metadata, tensor
                    // hooks...). Nothing calls __setstate__ here: the state is dropped.
                    self.pop()?;
                    self.top()?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    if self.persist == Persist::Refuse {
                        return Err("unexpected persistent id in a header pickle".into());
                    }
                    let v = self.persistent_load(pid)?;
                    self.push(v);
                }
                other => {
                    return Err(format!(
                        "unsupported pickle opcode 0x{other:02x} at byte {at} (a state_dict \
                         never needs it; nothing was executed)"
                    ))
                }
            }
        }
    }
}

fn kv_depth(kv: &(Value, Value)) -> u32 {
    kv.0.depth().max(kv.1.depth())
}

fn pairs(items: Vec<Value>) -> VmResult<Vec<(Value, Value)>> {
    if !items.len().is_multiple_of(2) {
        return Err("odd number of items for a dict".into());
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn as_usize(v: &Value) -> Option<usize> {
    match v {
        Value::Int(i) if *i >= 0 => usize::try_from(*i).ok(),
        _ => None,
    }
}

fn usize_tuple(v: &Value) -> Option<Vec<usize>> {
    match v {
        Value::Tuple(t) | Value::List(t) => t.iter().map(as_usize).collect(),
        _ => None,
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("'{s}'"),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bytes(b) => format!("<{} bytes>", b.len()),
        Value::Tuple(t) => format!(
            "({})",
            t.iter()
                .take(6)
                .map(describe)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.kind().to_string(),
    }
}

fn run_pickle(data: &[u8], pos: usize, persist: Persist) -> VmResult<(Value, usize)> {
    let mut m = Machine {
        data,
        pos,
        stack: Vec::new(),
        memo: HashMap::new(),
        persist,
    };
    let v = m.run()?;
    Ok((v, m.pos))
}

/// The `(key, tensor)` pairs of a state_dict, looking under `state_dict` / `model` when the file
/// is a training checkpoint.
fn state_dict(root: &Value) -> std::result::Result<Vec<(String, Rc<TensorRef>)>, String> {
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

/// Builds the RawTensors once every storage's bytes can be fetched.
fn tensors_from(
    path: &Path,
    root: &Value,
    mut storage_bytes: impl FnMut(&str) -> Result<Vec<u8>>,
    big_endian: bool,
) -> Result<Vec<RawTensor>> {
    let entries = state_dict(root).map_err(|m| file_err(path, m))?;
    let mut cache: HashMap<String, std::result::Result<Vec<f32>, String>> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
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
            cache.insert(skey.clone(), decoded);
        }
        let data = match &cache[&skey] {
            Ok(storage) => gather(&t, storage),
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

/// Reads the state_dict of a `.pth` / `.pt` file (zip or legacy format).
pub fn read_pth(path: &Path) -> Result<Vec<RawTensor>> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(|e| Error::io(path, e))?;
    file.rewind().map_err(|e| Error::io(path, e))?;
    if n >= 2 && magic[..2] == *b"PK" {
        read_zip(path, file)
    } else if n >= 2 && magic[0] == 0x80 {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        read_legacy(path, &bytes)
    } else {
        Err(file_err(
            path,
            "not a PyTorch file: neither a zip archive (torch.save since PyTorch 1.6) nor a \
             legacy pickle stream",
        ))
    }
}

fn read_zip(path: &Path, file: File) -> Result<Vec<RawTensor>> {
    let archive_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
        file_err(
            path,
            format!("not a readable PyTorch zip archive: {e}; is the file truncated?"),
        )
    })?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let pkl = names
        .iter()
        .filter(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .min_by_key(|n| n.len())
        .cloned()
        .ok_or_else(|| {
            file_err(
                path,
                "the zip archive has no data.pkl: not a file written by torch.save",
            )
        })?;
    let prefix = pkl.strip_suffix("data.pkl").unwrap_or("").to_string();
    let mut read_entry = |name: &str| -> Result<Vec<u8>> {
        let mut f = zip.by_name(name).map_err(|e| {
            file_err(
                path,
                format!("zip member '{name}': {e} (is the file truncated?)"),
            )
        })?;
        if f.compression() != zip::CompressionMethod::Stored {
            return Err(file_err(
                path,
                format!(
                    "zip member '{name}' is compressed ({}); torch.save stores members \
                     uncompressed: re-save the file with torch.save",
                    f.compression()
                ),
            ));
        }
        // Capacity bounded by the archive's size, whatever the member header claims.
        let mut buf = Vec::with_capacity(f.size().min(archive_len) as usize);
        f.read_to_end(&mut buf).map_err(|e| {
            file_err(
                path,
                format!("zip member '{name}': {e} (is the file truncated?)"),
            )
        })?;
        Ok(buf)
    };
    let big_endian = if names.iter().any(|n| *n == format!("{prefix}byteorder")) {
        let b = read_entry(&format!("{prefix}byteorder"))?;
        b.trim_ascii() == b"big"
    } else {
        false
    };
    let pickle = read_entry(&pkl)?;
    let (root, _) =
        run_pickle(&pickle, 0, Persist::Zip).map_err(|m| file_err(path, format!("{pkl}: {m}")))?;
    tensors_from(
        path,
        &root,
        |key| read_entry(&format!("{prefix}data/{key}")),
        big_endian,
    )
}

/// Legacy (pre-1.6) format: magic, protocol, sys_info and the object as four pickles, then the
/// list of storage keys as a pickle, then each storage as `u64 numel` + raw bytes in that order.
fn read_legacy(path: &Path, bytes: &[u8]) -> Result<Vec<RawTensor>> {
    const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    let err = |m: String| file_err(path, m);
    let (magic, pos) = run_pickle(bytes, 0, Persist::Refuse).map_err(&err)?;
    if !matches!(&magic, Value::BigInt(b) if b.as_slice() == MAGIC) {
        return Err(err(
            "not a PyTorch file: a bare pickle without torch's magic number (only files \
             written by torch.save are read)"
                .into(),
        ));
    }
    let (_proto, pos) = run_pickle(bytes, pos, Persist::Refuse).map_err(&err)?;
    let (sys_info, pos) = run_pickle(bytes, pos, Persist::Refuse).map_err(&err)?;
    let little = match &sys_info {
        Value::Dict(d) => d.iter().all(|(k, v)| {
            !matches!(k, Value::Str(s) if &**s == "little_endian") || matches!(v, Value::Bool(true))
        }),
        _ => true,
    };
    let (root, pos) = run_pickle(bytes, pos, Persist::Legacy).map_err(&err)?;
    let (keys, mut pos) = run_pickle(bytes, pos, Persist::Refuse).map_err(&err)?;
    let Value::List(keys) = keys else {
        return Err(err("the storage key list is missing".into()));
    };
    // Element sizes come from the storage types named in the object pickle.
    let mut sizes: HashMap<String, usize> = HashMap::new();
    if let Ok(entries) = state_dict(&root) {
        for (_, t) in entries {
            sizes.insert(t.storage.key.clone(), t.storage.dtype.size());
        }
    }
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for k in keys.iter() {
        let key = match k {
            Value::Str(s) => s.to_string(),
            other => return Err(err(format!("storage key is a {}", other.kind()))),
        };
        let Some(&elsize) = sizes.get(&key) else {
            return Err(err(format!(
                "storage '{key}' has an unknown element size (no tensor refers to it)"
            )));
        };
        let head = bytes.get(pos..pos + 8).ok_or_else(|| {
            err(format!(
                "storage '{key}' is cut off (is the file truncated?)"
            ))
        })?;
        let mut a = [0u8; 8];
        a.copy_from_slice(head);
        let numel = if little {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        };
        let len = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(elsize))
            .ok_or_else(|| err(format!("storage '{key}' has an absurd size {numel}")))?;
        pos += 8;
        let data = bytes.get(pos..pos.saturating_add(len)).ok_or_else(|| {
            err(format!(
                "storage '{key}' needs {len} bytes but the file ends first (is it truncated?)"
            ))
        })?;
        pos += len;
        storages.insert(key, data.to_vec());
    }
    tensors_from(
        path,
        &root,
        |key| {
            storages
                .remove(key)
                .ok_or_else(|| file_err(path, format!("storage '{key}' is missing")))
        },
        !little,
    )
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

    #[test]
    fn deep_nesting_is_refused_not_overflowing_the_stack() {
        for (open, close) in [(vec![b')'], vec![0x85]), (vec![b']'], vec![0x85])] {
            let mut p = vec![0x80, 2];
            p.extend(&open);
            for _ in 0..200_000 {
                p.extend(&close);
            }
            p.push(b'.');
            let e = run_pickle(&p, 0, Persist::Zip).unwrap_err();
            assert!(e.contains("nest deeper"), "{e}");
        }
        // Through APPEND: x -> [x], repeated (BINPUT 0, POP, EMPTY_LIST, BINGET 0, APPEND).
        let mut p = vec![0x80, 2, b']'];
        for _ in 0..200_000 {
            p.extend([b'q', 0, b'0', b']', b'h', 0, b'a']);
        }
        p.push(b'.');
        let e = run_pickle(&p, 0, Persist::Zip).unwrap_err();
        assert!(e.contains("nest deeper"), "{e}");
    }

    #[test]
    fn os_system_is_refused_without_running() {
        // Protocol 2: c os\nsystem\n (X'echo') tuple1 R .
        let mut p = vec![0x80, 2];
        p.extend_from_slice(b"cos\nsystem\n");
        p.extend_from_slice(b"X\x04\x00\x00\x00echo");
        p.extend_from_slice(&[0x85, b'R', b'.']);
        let e = run_pickle(&p, 0, Persist::Zip).unwrap_err();
        assert!(e.contains("'os.system'"), "{e}");
    }
}
