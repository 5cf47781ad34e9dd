//! A job scheduler's GPU assignment mapped onto wgpu's adapters. Slurm, Kubernetes' device
//! plugin and the ROCm/oneAPI stacks tell a process its GPU through variables that Vulkan
//! ignores (`CUDA_VISIBLE_DEVICES` and its kin, which the binary reads): unless the cluster
//! hides the other devices, every task would pick the same "best" adapter. The indices are
//! positions in PCI bus order (the order `nvidia-smi` and Slurm's NVML detection use); UUIDs
//! are matched through the PCI bus ids the caller knows for them.

use crate::error::{Error, Result};

/// One device as a scheduler names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRef {
    /// The i-th GPU of the node in PCI bus order.
    Index(usize),
    /// A device UUID (`GPU-8f3c...`), matched through [`Assignment::uuid_bus_ids`].
    Uuid(String),
}

/// The GPUs a scheduler gave this process; the first is the one a single-GPU process uses
/// (CUDA's device 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Where it came from, as messages show it (e.g. `CUDA_VISIBLE_DEVICES=2`).
    pub origin: String,
    /// The devices it names, in its order.
    pub devices: Vec<DeviceRef>,
    /// The PCI bus id (`0000:3b:00.0`) of each device UUID the platform reports (NVIDIA's
    /// driver lists them on Linux), as `(uuid, bus id)`.
    pub uuid_bus_ids: Vec<(String, String)>,
}

impl Assignment {
    /// A comma list of indices and UUIDs (`0,2`, `GPU-8f3c...`); `origin` names its source.
    pub fn parse(origin: impl Into<String>, list: &str) -> Result<Self> {
        let origin = origin.into();
        let devices = list
            .split(',')
            .map(|s| {
                let s = s.trim();
                if s.is_empty() {
                    Err(Error::GpuAssignment {
                        origin: origin.clone(),
                        detail: "an empty entry in the list".into(),
                    })
                } else if s.len() > 1
                    && s.starts_with('-')
                    && s[1..].bytes().all(|b| b.is_ascii_digit())
                {
                    Err(Error::GpuAssignment {
                        origin: origin.clone(),
                        detail: format!(
                            "{s} names no GPU (a negative index is CUDA's way of hiding them all)"
                        ),
                    })
                } else if s.bytes().all(|b| b.is_ascii_digit()) {
                    s.parse()
                        .map(DeviceRef::Index)
                        .map_err(|_| Error::GpuAssignment {
                            origin: origin.clone(),
                            detail: format!("device index {s} is out of range"),
                        })
                } else {
                    Ok(DeviceRef::Uuid(s.to_string()))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Assignment {
            origin,
            devices,
            uuid_bus_ids: Vec::new(),
        })
    }

    fn bus_id_of(&self, uuid: &str) -> Option<String> {
        self.uuid_bus_ids
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(uuid))
            .and_then(|(_, bus)| normalize_bus_id(bus))
    }
}

/// Lower is better: real GPUs first, native APIs before GL, software adapters last.
pub(super) fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (kind, api)
}

/// `dddd:bb:dd.f` in lower case with a 4-digit domain (nvidia-smi writes 8 digits, wgpu 4).
pub fn normalize_bus_id(id: &str) -> Option<String> {
    let (domain, rest) = id.trim().split_once(':')?;
    let domain = u32::from_str_radix(domain, 16).ok()?;
    let (bus, rest) = rest.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    let (bus, dev, func) = (
        u8::from_str_radix(bus, 16).ok()?,
        u8::from_str_radix(dev, 16).ok()?,
        u8::from_str_radix(func, 16).ok()?,
    );
    Some(format!("{domain:04x}:{bus:02x}:{dev:02x}.{func:x}"))
}

/// The node's GPUs as the scheduler counts them, as indices into `adapters`: hardware
/// adapters (no CPU ones), one per PCI bus id (the best-ranked backend of each), in PCI bus
/// order, then those without a bus id in the order listed. GL adapters count only where no
/// Vulkan/Metal/DX12 hardware adapter exists (the same GPU appears under both).
pub fn physical_gpus(adapters: &[wgpu::AdapterInfo]) -> Vec<usize> {
    let native = |a: &wgpu::AdapterInfo| a.backend != wgpu::Backend::Gl;
    let hardware = |a: &wgpu::AdapterInfo| a.device_type != wgpu::DeviceType::Cpu;
    let any_native = adapters.iter().any(|a| hardware(a) && native(a));
    let mut by_bus: std::collections::BTreeMap<String, usize> = Default::default();
    let mut unplaced = Vec::new();
    for (i, a) in adapters.iter().enumerate() {
        if !hardware(a) || (any_native && !native(a)) {
            continue;
        }
        match normalize_bus_id(&a.device_pci_bus_id) {
            Some(bus) => {
                let slot = by_bus.entry(bus).or_insert(i);
                if rank(a) < rank(&adapters[*slot]) {
                    *slot = i;
                }
            }
            None => unplaced.push(i),
        }
    }
    by_bus.into_values().chain(unplaced).collect()
}

/// The adapter (an index into `adapters`) that `assignment` gives this process, and why.
/// An assignment that names no adapter is an error, never a quiet fallback to the best one.
pub fn resolve(adapters: &[wgpu::AdapterInfo], assignment: &Assignment) -> Result<(usize, String)> {
    let origin = &assignment.origin;
    let gpus = physical_gpus(adapters);
    let err = |detail: String| Error::GpuAssignment {
        origin: origin.clone(),
        detail,
    };
    let Some(first) = assignment.devices.first() else {
        return Err(err("it names no device".into()));
    };
    let label = |i: usize| {
        let a = &adapters[i];
        match normalize_bus_id(&a.device_pci_bus_id) {
            Some(bus) => format!("{} ({:?}, PCI {bus})", a.name, a.backend),
            None => format!("{} ({:?}, no PCI bus id)", a.name, a.backend),
        }
    };
    let listing = || {
        if gpus.is_empty() {
            let cpus: Vec<String> = adapters
                .iter()
                .map(|a| format!("{} ({:?})", a.name, a.backend))
                .collect();
            format!(
                "wgpu finds no GPU adapter here (only: {})",
                if cpus.is_empty() {
                    "nothing".to_string()
                } else {
                    cpus.join(", ")
                }
            )
        } else {
            let list: Vec<String> = gpus
                .iter()
                .enumerate()
                .map(|(k, &i)| format!("{k}: {}", label(i)))
                .collect();
            format!(
                "the {} GPU(s) in PCI bus order are {}",
                gpus.len(),
                list.join("; ")
            )
        }
    };
    // Every entry maps onto the node's GPUs: the scheduler numbered the whole node.
    let direct = |d: &DeviceRef| -> Option<usize> {
        match d {
            DeviceRef::Index(k) => gpus.get(*k).copied(),
            DeviceRef::Uuid(u) => {
                let bus = assignment.bus_id_of(u)?;
                gpus.iter().copied().find(|&i| {
                    normalize_bus_id(&adapters[i].device_pci_bus_id) == Some(bus.clone())
                })
            }
        }
    };
    let mapped: Option<Vec<usize>> = assignment.devices.iter().map(direct).collect();
    if let Some(&i) = mapped.as_ref().and_then(|m| m.first()) {
        let why = match first {
            DeviceRef::Index(k) => format!("{origin}: GPU {k} of {} in PCI bus order", gpus.len()),
            DeviceRef::Uuid(u) => format!(
                "{origin}: {u} is at PCI {}",
                assignment.bus_id_of(u).unwrap_or_default()
            ),
        };
        return Ok((i, why));
    }
    // The node shows exactly the assigned GPUs: cgroups or the container runtime already hid
    // the others, and the names refer to the whole node.
    if gpus.len() == assignment.devices.len() {
        return Ok((
            gpus[0],
            format!(
                "{origin}: only the {} assigned GPU(s) are visible here (the others hidden by \
                 cgroups or the container runtime); the first of them",
                gpus.len()
            ),
        ));
    }
    let wrong = assignment
        .devices
        .iter()
        .find(|d| direct(d).is_none())
        .map(|d| match d {
            DeviceRef::Index(k) => format!("GPU {k}"),
            DeviceRef::Uuid(u) => u.clone(),
        })
        .unwrap_or_default();
    Err(err(format!(
        "{wrong} is not among the adapters, and {} GPU(s) are assigned where {} are visible; {}",
        assignment.devices.len(),
        gpus.len(),
        listing()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::{AdapterInfo, Backend, DeviceType};

    fn gpu(name: &str, backend: Backend, bus: &str) -> AdapterInfo {
        let mut a = AdapterInfo::new(DeviceType::DiscreteGpu, backend);
        a.name = name.into();
        a.device_pci_bus_id = bus.into();
        a
    }

    fn lavapipe() -> AdapterInfo {
        let mut a = AdapterInfo::new(DeviceType::Cpu, Backend::Vulkan);
        a.name = "llvmpipe (LLVM 19.1.7, 256 bits)".into();
        a
    }

    /// Four GPUs listed out of bus order, each also under GL, and lavapipe.
    fn node() -> Vec<AdapterInfo> {
        vec![
            lavapipe(),
            gpu("H100 c", Backend::Vulkan, "0000:86:00.0"),
            gpu("H100 a", Backend::Vulkan, "0000:18:00.0"),
            gpu("H100 a (GL)", Backend::Gl, ""),
            gpu("H100 d", Backend::Vulkan, "0000:af:00.0"),
            gpu("H100 b", Backend::Vulkan, "0000:3B:00.0"),
        ]
    }

    fn pick(adapters: &[AdapterInfo], a: &Assignment) -> String {
        let (i, _) = resolve(adapters, a).unwrap();
        adapters[i].name.clone()
    }

    #[test]
    fn indices_count_gpus_in_pci_bus_order() {
        let node = node();
        assert_eq!(physical_gpus(&node), vec![2, 5, 1, 4]);
        for (k, want) in ["H100 a", "H100 b", "H100 c", "H100 d"].iter().enumerate() {
            let a = Assignment::parse("CUDA_VISIBLE_DEVICES", &k.to_string()).unwrap();
            assert_eq!(&pick(&node, &a), want, "index {k}");
        }
        // The first of several is the process's device.
        let a = Assignment::parse("SLURM_JOB_GPUS", "3,1").unwrap();
        assert_eq!(pick(&node, &a), "H100 d");
        let (_, why) = resolve(&node, &a).unwrap();
        assert!(why.contains("SLURM_JOB_GPUS: GPU 3 of 4"), "{why}");
    }

    #[test]
    fn one_gpu_and_the_same_gpu_under_two_backends() {
        let one = vec![
            gpu("RTX (GL)", Backend::Gl, ""),
            lavapipe(),
            gpu("RTX", Backend::Vulkan, "0000:01:00.0"),
        ];
        assert_eq!(physical_gpus(&one), vec![2]);
        let a = Assignment::parse("CUDA_VISIBLE_DEVICES", "0").unwrap();
        assert_eq!(pick(&one, &a), "RTX");
        // Vulkan and DX12 of one GPU share a bus id: one GPU, the better-ranked adapter.
        let mut dx = gpu("RTX dx12", Backend::Dx12, "0000:01:00.0");
        dx.device_type = DeviceType::IntegratedGpu;
        assert_eq!(physical_gpus(&[dx, one[2].clone()]), vec![1]);
    }

    #[test]
    fn uuids_match_through_their_bus_ids() {
        let node = node();
        let mut a = Assignment::parse("NVIDIA_VISIBLE_DEVICES", "GPU-bbbb-2222").unwrap();
        a.uuid_bus_ids = vec![
            ("GPU-aaaa-1111".into(), "00000000:18:00.0".into()),
            ("GPU-BBBB-2222".into(), "00000000:3B:00.0".into()),
        ];
        assert_eq!(pick(&node, &a), "H100 b");
        let (_, why) = resolve(&node, &a).unwrap();
        assert!(why.contains("PCI 0000:3b:00.0"), "{why}");
    }

    #[test]
    fn hidden_devices_the_assignment_already_applied() {
        // Kubernetes' device plugin: the container sees only its GPU, named by a UUID the
        // platform cannot map; Slurm with cgroups: GPU 2's task sees one GPU.
        let visible = vec![lavapipe(), gpu("H100", Backend::Vulkan, "0000:af:00.0")];
        for (origin, list) in [
            (
                "NVIDIA_VISIBLE_DEVICES",
                "GPU-8f3c0d2e-1111-2222-3333-444455556666",
            ),
            ("SLURM_STEP_GPUS", "2"),
        ] {
            let a = Assignment::parse(origin, list).unwrap();
            let (i, why) = resolve(&visible, &a).unwrap();
            assert_eq!(visible[i].name, "H100");
            assert!(
                why.contains("only the 1 assigned GPU(s) are visible"),
                "{why}"
            );
        }
    }

    #[test]
    fn an_assignment_naming_no_adapter_is_an_error() {
        let node = node();
        let cases = [
            (
                "CUDA_VISIBLE_DEVICES",
                "7",
                "GPU 7 is not among the adapters",
            ),
            ("ROCR_VISIBLE_DEVICES", "1,9", "GPU 9 is not among"),
            ("CUDA_VISIBLE_DEVICES", "GPU-ffff", "GPU-ffff is not among"),
        ];
        for (origin, list, want) in cases {
            let e = resolve(&node, &Assignment::parse(origin, list).unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains(origin) && e.contains(want), "{e}");
            assert!(
                e.contains("the 4 GPU(s) in PCI bus order are 0: H100 a"),
                "{e}"
            );
        }
        // No GPU at all (lavapipe only): the assignment cannot be honoured.
        let e = resolve(
            &[lavapipe()],
            &Assignment::parse("CUDA_VISIBLE_DEVICES", "0").unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no GPU adapter here (only: llvmpipe"), "{e}");
        let e = Assignment::parse("CUDA_VISIBLE_DEVICES=-1", "-1").unwrap_err();
        assert!(
            e.to_string().contains("-1 names no GPU (a negative index"),
            "{e}"
        );
        for bad in ["", "0,,1", "99999999999999999999999", "1,-1"] {
            assert!(Assignment::parse("SLURM_JOB_GPUS", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bus_ids_normalize() {
        assert_eq!(
            normalize_bus_id("00000000:3B:00.0").as_deref(),
            Some("0000:3b:00.0")
        );
        assert_eq!(
            normalize_bus_id("0000:af:1f.7").as_deref(),
            Some("0000:af:1f.7")
        );
        assert_eq!(normalize_bus_id(""), None);
        assert_eq!(normalize_bus_id("3b:00.0"), None);
    }
}
