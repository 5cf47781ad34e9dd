//! What the host knows of a WGSL shader before compiling it: its name and source, and the facts
//! naga's parse of that source gives (workgroup sizes, tile constants, the params struct's size).

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// A WGSL shader known at build time: its file name (the cache key and label) and source.
#[derive(Clone, Copy, Debug)]
pub struct ShaderSource {
    /// The file name under `shaders/`.
    pub file: &'static str,
    /// The WGSL source.
    pub source: &'static str,
}

/// What naga reads from a shader: per entry point its workgroup size, and named constants.
pub struct ShaderFacts {
    /// Entry point name -> `@workgroup_size`.
    pub workgroup_sizes: BTreeMap<String, [u32; 3]>,
    /// Named integer constants (`const BM: u32 = 64u;`).
    pub constants: BTreeMap<String, u32>,
    /// Size in bytes of the uniform at `@group(0) @binding(0)` (the params struct) as naga lays
    /// it out, if the shader has one.
    pub params_size: Option<u32>,
}

/// Parses `source` with naga (the front end wgpu itself uses) for the facts the host needs.
pub fn shader_facts(file: &str, source: &str) -> Result<ShaderFacts> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| Error::Gpu(format!("{file}: {}", e.emit_to_string(source))))?;
    let workgroup_sizes = module
        .entry_points
        .iter()
        .map(|ep| (ep.name.clone(), ep.workgroup_size))
        .collect();
    let mut constants = BTreeMap::new();
    for (_, c) in module.constants.iter() {
        let Some(name) = &c.name else { continue };
        let value = match module.global_expressions[c.init] {
            naga::Expression::Literal(naga::Literal::U32(v)) => Some(v),
            naga::Expression::Literal(naga::Literal::I32(v)) => u32::try_from(v).ok(),
            naga::Expression::Literal(naga::Literal::AbstractInt(v)) => u32::try_from(v).ok(),
            _ => None,
        };
        if let Some(v) = value {
            constants.insert(name.clone(), v);
        }
    }
    let mut layouter = naga::proc::Layouter::default();
    layouter
        .update(module.to_ctx())
        .map_err(|e| Error::Gpu(format!("{file}: laying out types: {e}")))?;
    let params_size = module
        .global_variables
        .iter()
        .find(|(_, g)| {
            g.space == naga::AddressSpace::Uniform
                && g.binding
                    .as_ref()
                    .is_some_and(|b| b.group == 0 && b.binding == 0)
        })
        .map(|(_, g)| layouter[g.ty].size);
    Ok(ShaderFacts {
        workgroup_sizes,
        constants,
        params_size,
    })
}
