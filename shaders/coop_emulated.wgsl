// The MMA section of coop.wgsl in plain WGSL (src/kernels/coop.rs splices it in), for adapters
// without cooperative matrices: the same tiles from the same origins and strides, summed lane
// by lane. A or B is its origin in memory (the load reads nothing); C remembers the origins of
// its first product (k = 0; the GEMM's later steps only add k to both), `store_c` files them
// per staged tile, and `finish_tiles` sums each tile over all of K into the staging area, each
// lane its 8 of the 256 elements (8 lane .. 8 lane + 7, row-major).
//
// The sums are done once, in `finish_tiles`, not at each of the GEMM's `mma` call sites:
// a CPU driver inlines and unrolls every call site, and lavapipe took 51 s to compile the
// 2 x 4 variant that way.
struct MatA {
    off: u32,
}

struct MatB {
    off: u32,
}

struct MatC {
    a: u32,
    b: u32,
    started: u32,
}

var<private> origin_a: array<u32, TILES>;
var<private> origin_b: array<u32, TILES>;

fn load_a(off: u32) -> MatA {
    return MatA(off);
}

fn load_b(off: u32) -> MatB {
    return MatB(off);
}

fn mma(a: MatA, b: MatB, c: MatC) -> MatC {
    if (c.started == 0u) {
        return MatC(a.off, b.off, 1u);
    }
    return c;
}

fn store_c(c: MatC, off: u32) {
    origin_a[off / 256u] = c.a;
    origin_b[off / 256u] = c.b;
}

// A row-major (element (r, k) at origin + r kp + k), B column-major (element (k, c) at
// origin + c kp + k): coopLoadT's and coopLoad's layouts.
fn finish_tiles() {
    for (var t = 0u; t < TILES; t++) {
        for (var e = 0u; e < 8u; e++) {
            let r = (lane * 8u + e) / 16u;
            let col = (lane * 8u + e) % 16u;
            let ra = origin_a[t] + r * p.kp;
            let cb = origin_b[t] + col * p.kp;
            var s = 0.0;
            for (var k = 0u; k < p.kp; k++) {
                s += f32(w[ra + k]) * f32(pt[cb + k]);
            }
            cs[t * 256u + lane * 8u + e] = s;
        }
    }
}
