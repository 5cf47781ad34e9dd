//! The machine itself: a stack, a memo and a position in the pickle, run opcode by opcode
//! until STOP. Only the opcodes a state_dict uses are understood; any other stops the run.

use std::collections::HashMap;
use std::rc::Rc;

use super::{allowed_global, extend, map, seq, Objects, Value, VmResult, ALLOWED};

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

/// Runs the pickle that starts at `data[pos]` until its STOP; returns its value and the position
/// after it.
pub(in super::super) fn run_pickle<O: Objects>(
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
