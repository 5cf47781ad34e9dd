// Cropped 8-bit pixels -> the network's f32 NCHW input. The host uploads each image as
// [h][w][3] bytes (interleaved, in the model's channel order, images back to back with no
// padding: 3 bytes per pixel instead of 12), packed little-endian into u32 words; each
// invocation takes one pixel and writes its three channels into their planes by looking each
// byte up in the same per-channel 256-entry f32 table the CPU path uses
// (`data::norm_table`): no arithmetic on the value, so the GPU input is bit-identical to the
// CPU's `crop_normalise`. One pixel per invocation: the three stores of a workgroup go to
// three runs of 256 consecutive floats, and its loads to 192 consecutive words (each read by
// up to three lanes, from cache): a memory-bound copy either way (at batch 256 at 224x224,
// 38.5 MB read and 154 MB written on the device).

struct Params {
    // Pixels in the batch (images x plane).
    pixels: u32,
    // Pixels per image (h x w): the distance between channel planes.
    plane: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
// table[c * 256 + v]: channel c's input for the byte value v.
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

fn byte_at(i: u32) -> u32 {
    return (src[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.pixels) {
        return;
    }
    let n = i / p.plane;
    let s = i - n * p.plane;
    let out = n * 3u * p.plane + s;
    let b = 3u * i;
    dst[out] = table[byte_at(b)];
    dst[out + p.plane] = table[256u + byte_at(b + 1u)];
    dst[out + 2u * p.plane] = table[512u + byte_at(b + 2u)];
}
