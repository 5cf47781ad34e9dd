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
//! 0.0.1 "low effort scraping" parser with no allow-list. The machine below has an explicit
//! allow-list, never recurses on file data, and bounds its memory and work by the pickle's
//! size: containers are shared (`Rc`, copy on write) and the copying is budgeted, nesting is
//! bounded, error descriptions are bounded.

use std::collections::HashMap;
use std::rc::Rc;

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

enum Item {
    Mark,
    V(Value),
}

struct Machine<'a, O> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    memo: HashMap<u32, Value>,
    objects: &'a O,
    /// Container items that copy-on-write may still copy (see [`extend`]).
    copy_budget: usize,
}

fn top_of(stack: &mut [Item]) -> VmResult<&mut Value> {
    match stack.last_mut() {
        Some(Item::V(v)) => Ok(v),
        Some(Item::Mark) => Err("unexpected MARK on the stack".into()),
        None => Err("stack underflow".into()),
    }
}

pub(super) type VmResult<T> = std::result::Result<T, String>;

impl<'a, O: Objects> Machine<'a, O> {
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
        top_of(&mut self.stack)
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

    /// REDUCE / NEWOBJ: only allowed globals, applied to a tuple.
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
        self.objects.reduce(g, &args)
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
                    match top_of(&mut self.stack)? {
                        Value::List(l) => extend(l, vec![v], Value::depth, &mut self.copy_budget)?,
                        other => return Err(format!("APPEND to a {}", other.kind())),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match top_of(&mut self.stack)? {
                        Value::List(l) => extend(l, items, Value::depth, &mut self.copy_budget)?,
                        other => return Err(format!("APPENDS to a {}", other.kind())),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match top_of(&mut self.stack)? {
                        Value::Dict(d) => extend(d, vec![(k, v)], kv_depth, &mut self.copy_budget)?,
                        other => return Err(format!("SETITEM on a {}", other.kind())),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let kv = pairs(items)?;
                    match top_of(&mut self.stack)? {
                        Value::Dict(d) => extend(d, kv, kv_depth, &mut self.copy_budget)?,
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
                    let v = self.objects.persistent_load(pid)?;
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

/// Runs the pickle that starts at `data[pos]` until its STOP; returns its value and the position
/// after it.
pub(super) fn run_pickle<O: Objects>(
    data: &[u8],
    pos: usize,
    objects: &O,
) -> VmResult<(Value, usize)> {
    let mut m = Machine {
        data,
        pos,
        stack: Vec::new(),
        memo: HashMap::new(),
        objects,
        copy_budget: data.len().saturating_mul(8).saturating_add(1 << 16),
    };
    let v = m.run()?;
    Ok((v, m.pos))
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
