// Runs in headless Chromium (served by run.py): compiles every module of /job.json with
// WebGPU (Dawn + Tint), creates a compute pipeline per entry point, runs gemm.wgsl once against
// a CPU reference, and POSTs each result line back ({kind: info | pass | fail | done}).

// Posts in order (each awaited by its caller); `pending` also holds the unawaited ones (from
// event handlers), all settled before 'done'.
const pending = [];
function post(kind, text) {
  const p = fetch('/event', { method: 'POST', body: JSON.stringify({ kind, text }) });
  pending.push(p.catch(() => {}));
  return p;
}

// Multi-line messages: the first line stays on the result line, the rest is indented under it.
function clip(msg) {
  let s = String(msg).trim();
  if (s.length > 3000) s = s.slice(0, 3000) + ' ...';
  return s.split('\n').map((l, i) => (i ? '      ' + l : l)).join('\n');
}

function plainLimits(limits) {
  const out = {};
  for (const k in limits) {
    if (typeof limits[k] === 'number') out[k] = limits[k];
  }
  return out;
}

// A shader module on `device`, every error caught: {module, errors: [string], warnings: [string]}.
async function makeModule(device, name, code) {
  device.pushErrorScope('validation');
  device.pushErrorScope('internal');
  const module = device.createShaderModule({ label: name, code });
  const internal = await device.popErrorScope();
  const validation = await device.popErrorScope();
  const info = await module.getCompilationInfo();
  const errors = [];
  const warnings = [];
  for (const m of info.messages) {
    const where = `${name}:${m.lineNum}:${m.linePos}`;
    (m.type === 'error' ? errors : warnings).push(`${where}: ${m.type}: ${m.message}`);
  }
  for (const e of [validation, internal]) if (e && !errors.length) errors.push(e.message);
  // With errors, the notes that explain them (e.g. where non-uniform control flow comes from).
  if (errors.length) errors.push(...warnings.filter((w) => !w.includes(': warning: ')));
  return { module, errors, warnings: warnings.filter((w) => w.includes(': warning: ')) };
}

// One compute pipeline (layout 'auto'), started at once and compiled in the background (Dawn
// compiles async pipelines on worker threads): resolves to null or the error message.
function makePipeline(device, mod, label, entryPoint) {
  if (mod.errors.length) return Promise.resolve(mod.errors.join('\n'));
  device.pushErrorScope('validation');
  device.pushErrorScope('internal');
  device.pushErrorScope('out-of-memory');
  let created;
  try {
    created = device
      .createComputePipelineAsync({ label, layout: 'auto', compute: { module: mod.module, entryPoint } })
      .then(() => null, (e) => String((e && e.message) || e));
  } catch (e) {
    created = Promise.resolve(String((e && e.message) || e));
  }
  const scopes = [device.popErrorScope(), device.popErrorScope(), device.popErrorScope()];
  return Promise.all([created, ...scopes]).then(([err, ...errs]) => {
    const scoped = errs.filter((e) => e).map((e) => e.message);
    return err || (scoped.length ? scoped.join('\n') : null);
  });
}

// Deterministic values in [-1, 1).
function lcg(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2147483648 - 1;
  };
}

// gemm.wgsl as src/kernels/gemm.rs dispatches a dense layer: C[m][n] = sum_k A[m][k] B[n][k]
// + bias[n] (bias_on_n = 1), hw = 0xffffffff so c = m * c_mstride + n, K a multiple of 4 (kv =
// K / 4 vec4 per row), grid [ceil(M / TM), ceil(N / (WG * TN)), groups] for `main` (TM = 4) and
// [M, ceil(N / (WG * TN)), groups] for `main_m1`; WG = 8, TN = 4.
async function runGemm(device, code, entryPoint, M, N, K, relu) {
  if (K % 4) throw new Error('gemm.wgsl needs K a multiple of 4');
  const rnd = lcg(12345 + M * 7 + N * 13 + K);
  const a = new Float32Array(M * K).map(rnd);
  const b = new Float32Array(N * K).map(rnd);
  const bias = new Float32Array(N).map(rnd);
  const kv = K / 4;
  const params = new Uint32Array([
    M, N, kv, /* a_gstride */ M * kv, /* b_gstride */ N * kv, /* m_goff */ 0, /* n_off */ 0,
    /* hw */ 0xffffffff, /* c_bstride */ 0, /* c_mstride */ N, /* bias_on_n */ 1, relu ? 1 : 0,
  ]);
  const buf = (data, usage) => {
    const g = device.createBuffer({ size: Math.max(16, data.byteLength), usage: usage | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(g, 0, data);
    return g;
  };
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint } });
  const S = GPUBufferUsage.STORAGE;
  const c = device.createBuffer({ size: M * N * 4, usage: S | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  // NaN-filled, so an output the kernel never writes shows.
  device.queue.writeBuffer(c, 0, new Float32Array(M * N).fill(NaN));
  const read = device.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const bind = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: buf(params, GPUBufferUsage.UNIFORM) } },
      { binding: 1, resource: { buffer: buf(a, S) } },
      { binding: 2, resource: { buffer: buf(b, S) } },
      { binding: 3, resource: { buffer: buf(bias, S) } },
      { binding: 4, resource: { buffer: c } },
    ],
  });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bind);
  const cols = 8 * 4;
  pass.dispatchWorkgroups(entryPoint === 'main_m1' ? M : Math.ceil(M / 4), Math.ceil(N / cols), 1);
  pass.end();
  enc.copyBufferToBuffer(c, 0, read, 0, M * N * 4);
  device.queue.submit([enc.finish()]);
  const err = await device.popErrorScope();
  if (err) throw new Error(err.message);
  await read.mapAsync(GPUMapMode.READ);
  const got = new Float32Array(read.getMappedRange().slice(0));
  read.unmap();
  let maxRef = 0;
  let maxDiff = 0;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0; // f64 accumulation of the f32 inputs
      for (let k = 0; k < K; k++) s += a[m * K + k] * b[n * K + k];
      s += bias[n];
      if (relu) s = Math.max(s, 0);
      maxRef = Math.max(maxRef, Math.abs(s));
      const d = Math.abs(got[m * N + n] - s);
      maxDiff = Number.isNaN(d) ? Infinity : Math.max(maxDiff, d);
    }
  }
  return maxDiff / Math.max(maxRef, 1e-30);
}

function fmtBytes(n) {
  return n === null || n === undefined ? '? B' : `${n} B`;
}

async function main() {
  const job = await (await fetch('/job.json')).json();
  if (!navigator.gpu) {
    await post('fail', 'FAIL WebGPU unavailable: navigator.gpu is undefined (flags: --enable-unsafe-webgpu --use-webgpu-adapter=swiftshader)');
    return;
  }
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) {
    await post('fail', 'FAIL WebGPU unavailable: requestAdapter() returned null (no SwiftShader adapter?)');
    return;
  }
  const info = adapter.info || (adapter.requestAdapterInfo ? await adapter.requestAdapterInfo() : {});
  await post('info', `adapter: vendor=${info.vendor || '?'} architecture=${info.architecture || '?'} ` +
    `device=${info.device || '?'} description=${info.description || '?'}` +
    (adapter.isFallbackAdapter ? ' (fallback adapter)' : ''));
  await post('info', `user agent: ${navigator.userAgent}`);
  const limits = plainLimits(adapter.limits);
  const hasF16 = adapter.features.has('shader-f16');
  const features = hasF16 ? ['shader-f16'] : [];
  await post('info', `adapter limits: maxStorageBuffersPerShaderStage=${limits.maxStorageBuffersPerShaderStage} ` +
    `maxComputeWorkgroupStorageSize=${limits.maxComputeWorkgroupStorageSize} ` +
    `maxComputeInvocationsPerWorkgroup=${limits.maxComputeInvocationsPerWorkgroup}; ` +
    `shader-f16: ${hasF16 ? 'yes' : 'no'}`);

  // The device under test gets the adapter's limits (reports are about the shader, not the
  // limit); a second one (its own adapter: an adapter hands out one device) keeps WebGPU's
  // default limits, for the portability verdicts.
  const device = await adapter.requestDevice({ requiredLimits: limits, requiredFeatures: features });
  const adapter2 = await navigator.gpu.requestAdapter();
  const defDevice = await adapter2.requestDevice({ requiredFeatures: features });
  let lost = null;
  for (const [d, what] of [[device, 'device'], [defDevice, 'default-limits device']]) {
    d.lost.then((l) => { lost = `${what} lost: ${l.reason} ${l.message}`; });
    d.addEventListener('uncapturederror', (e) => post('fail', `FAIL uncaptured error on the ${what}: ${clip(e.error.message)}`));
  }
  const dl = job.defaults;

  // Every pipeline is started before the first result is awaited (compiles overlap); the
  // lines come out in job order.
  const tasks = [];
  for (const mod of job.modules) {
    const names = mod.entries.map((e) => e.name);
    if (!names.length) {
      tasks.push({ line: ['fail', `FAIL ${mod.name}: no @compute entry point found`] });
      continue;
    }
    let skip = null;
    if (mod.needsF16 && !hasF16) skip = 'skipped (needs shader-f16, which the adapter lacks)';
    if (mod.tileWgBytes && mod.tileWgBytes > limits.maxComputeWorkgroupStorageSize) {
      skip = `skipped (needs ${mod.tileWgBytes} bytes of workgroup memory, limit ${limits.maxComputeWorkgroupStorageSize})`;
    }
    if (skip) {
      for (const e of names) tasks.push({ line: ['info', `skip ${mod.name} ${e}: ${skip}`] });
      continue;
    }
    const m = await makeModule(device, mod.name, mod.source);
    let dm = null;
    for (const e of mod.entries) {
      const label = `${mod.name} ${e.name}`;
      const over = [];
      if (e.storage.length > dl.storage) over.push(`storage buffers ${e.storage.length} > ${dl.storage}`);
      if (e.wgBytes === null || e.wgBytes > dl.wgBytes) over.push(`workgroup memory ${fmtBytes(e.wgBytes)} > ${dl.wgBytes} B`);
      if (e.invocations === null || e.invocations > dl.invocations) over.push(`invocations ${e.invocations ?? '?'} > ${dl.invocations}`);
      // Under WebGPU's default limits, only what the static measures say exceeds them (or could
      // not measure) is built, to see Dawn reject it (fast: before any backend compile); what
      // fits is not compiled twice.
      let onDefault = Promise.resolve(undefined);
      if (over.length) {
        dm = dm || await makeModule(defDevice, mod.name, mod.source);
        onDefault = makePipeline(defDevice, dm, label, e.name);
      }
      tasks.push({ mod, e, label, over, warnings: m.warnings, adapter: makePipeline(device, m, label, e.name), onDefault });
    }
  }
  for (const t of tasks) {
    if (t.line) {
      await post(...t.line);
      continue;
    }
    const { e, label, over } = t;
    const error = await t.adapter;
    const dError = await t.onDefault;
    if (error) {
      await post('fail', `FAIL ${label}: ${clip(error)}`);
      continue;
    }
    const measures = `${e.storage.length} storage, ${fmtBytes(e.wgBytes)} workgroup, ${e.invocations ?? '?'} invocations`;
    const warn = t.warnings.length ? `\n      ${t.warnings.length} warning(s): ${clip(t.warnings.join('\n'))}` : '';
    const dNote = dError ? `\n      default-limits device: ${clip(dError)}` : '';
    if (e.storage.length > dl.storage) {
      await post('fail', `FAIL ${label}: compiles, but binds ${e.storage.length} storage buffers ` +
        `(${e.storage.join(', ')}), over WebGPU's default maxStorageBuffersPerShaderStage ` +
        `${dl.storage}: fails on devices with default limits` +
        (dError ? dNote : ' (though the default-limits device accepted it: static count too high?)') + warn);
    } else if (over.length && dError) {
      await post('pass', `ok   ${label}: ${measures} (needs more than WebGPU default limits: ${over.join(', ')})${warn}`);
    } else if (over.length) {
      await post('pass', `ok   ${label}: ${measures} (fits WebGPU default limits: Dawn accepted it despite the static estimate)${warn}`);
    } else {
      await post('pass', `ok   ${label}: ${measures} (fits WebGPU default limits)${warn}`);
    }
  }

  // gemm.wgsl for real: a dense layer (bias on n, no ReLU) against the CPU.
  const tol = 1e-5;
  for (const [entry, M, N, K] of [['main', 13, 10, 36], ['main_m1', 1, 10, 36]]) {
    const what = `gemm.wgsl run ${entry} M=${M} N=${N} K=${K}`;
    try {
      const err = await runGemm(device, job.gemm, entry, M, N, K, false);
      const ok = err <= tol;
      await post(ok ? 'pass' : 'fail', `${what}: max rel err ${err.toExponential(2)} ${ok ? 'ok' : `FAIL (tolerance ${tol})`}`);
    } catch (e) {
      await post('fail', `${what}: FAIL ${clip(e.message || e)}`);
    }
  }
  if (lost) await post('fail', `FAIL ${lost}`);
}

main()
  .catch((e) => post('fail', `FAIL page: ${clip((e && e.stack) || e)}`))
  .finally(() => Promise.all(pending).then(() => post('done', '')));
