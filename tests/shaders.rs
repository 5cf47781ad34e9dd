//! Every WGSL kernel parses and validates with naga and translates to SPIR-V (Vulkan), MSL
//! (Metal), HLSL (DX12) and GLSL (GL), so a shader that would break on another platform's
//! back end fails here, on a machine that only has lavapipe.

use alexnet_wgpu::kernels::SHADERS as FORWARD;
use alexnet_wgpu::train::kernels::SHADERS as TRAINING;
use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn validate(name: &str, src: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    // Default capabilities: what WebGPU guarantees, so no optional feature sneaks in.
    let info = Validator::new(ValidationFlags::all(), Capabilities::default())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    (module, info)
}

#[test]
fn every_shader_is_listed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if name.ends_with(".wgsl") {
            assert!(
                FORWARD.iter().chain(TRAINING).any(|(n, _)| *n == name),
                "{name} is in neither kernels::SHADERS nor train::kernels::SHADERS, so it is neither built nor validated"
            );
        }
    }
}

#[test]
fn shaders_validate_and_translate_to_every_backend() {
    for (name, src) in FORWARD.iter().chain(TRAINING) {
        let (module, info) = validate(name, src);
        let entries: Vec<String> = module
            .entry_points
            .iter()
            .filter(|e| e.stage == naga::ShaderStage::Compute)
            .map(|e| e.name.clone())
            .collect();
        assert!(!entries.is_empty(), "{name}: no compute entry point");

        spv::write_vec(&module, &info, &spv::Options::default(), None)
            .unwrap_or_else(|e| panic!("{name} -> SPIR-V: {e}"));

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
