//! `provider.toml` and the devices a provider offers. Precedence: command-line flag > environment > file >
//! default (the probe, for devices).

use std::net::SocketAddr;
use std::path::Path;

use eyre::{ensure, eyre, WrapErr};
use lode_gpu_verify::Backend;
use lode_proto::market::v1 as mpb;
use serde::{Deserialize, Serialize};

/// Largest `provider.toml` read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// An amount of base units: a TOML integer or a decimal string (amounts can exceed TOML's i64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Int(u64),
    Text(String),
}

impl Amount {
    pub fn value(&self) -> eyre::Result<u128> {
        match self {
            Amount::Int(v) => Ok(u128::from(*v)),
            Amount::Text(s) => s
                .parse()
                .map_err(|e| eyre!("amount {s:?} is not a whole number of base units: {e}")),
        }
    }
}

/// One device entry of the offer (as `MsgRegisterProvider` carries it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    pub model: String,
    pub memory_mib: u32,
    pub count: u32,
}

impl DeviceEntry {
    pub fn to_pb(&self) -> mpb::Device {
        mpb::Device {
            model: self.model.clone(),
            memory_mib: self.memory_mib,
            count: self.count,
        }
    }

    /// Parses `MODEL:MEMORY_MIB:COUNT` (the model may contain colons).
    pub fn parse(s: &str) -> Result<DeviceEntry, String> {
        let mut it = s.rsplitn(3, ':');
        let (Some(count), Some(mem), Some(model)) = (it.next(), it.next(), it.next()) else {
            return Err(format!("{s:?}: expected MODEL:MEMORY_MIB:COUNT"));
        };
        Ok(DeviceEntry {
            model: model.to_string(),
            memory_mib: mem.parse().map_err(|e| format!("memory {mem:?}: {e}"))?,
            count: count.parse().map_err(|e| format!("count {count:?}: {e}"))?,
        })
    }
}

/// `provider.toml`: every key optional.
///
/// ```toml
/// moniker = "my-gpu-box"
/// ask = 5                 # price per CU (10^9 int8 multiply-adds), base units
/// max_job_cu = 100000     # largest job taken, in CU
/// bond = "2000000"        # bonded when registering (>= market.min_bond_per_device x devices)
/// node = "http://127.0.0.1:9090"
/// backend = "auto"        # auto | cuda | cpu
/// metrics_listen = "127.0.0.1:9464"
/// max_memory_mib = 16384  # jobs needing more host memory are declined
/// [[devices]]             # default: what `lode provider probe` finds
/// model = "H100"
/// memory_mib = 81920
/// count = 1
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    pub moniker: Option<String>,
    pub ask: Option<Amount>,
    pub max_job_cu: Option<u64>,
    pub bond: Option<Amount>,
    pub node: Option<String>,
    pub backend: Option<String>,
    pub metrics_listen: Option<SocketAddr>,
    pub max_memory_mib: Option<u64>,
    pub devices: Vec<DeviceEntry>,
}

impl ProviderConfig {
    /// Reads `path`; a missing file is an empty config only when `required` is false.
    pub fn load(path: &Path, required: bool) -> eyre::Result<ProviderConfig> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(ProviderConfig::default())
            }
            Err(e) => return Err(eyre!(e).wrap_err(format!("reading {}", path.display()))),
        };
        ensure!(
            meta.len() <= MAX_CONFIG_BYTES,
            "{} is over {MAX_CONFIG_BYTES} bytes",
            path.display()
        );
        let text =
            crate::home::read_text(path).wrap_err_with(|| format!("reading {}", path.display()))?;
        toml::from_str(&text)
            .wrap_err_with(|| format!("{} is not a valid provider.toml", path.display()))
    }
}

/// Parses `auto`, `cuda` or `cpu`.
pub fn parse_backend(s: &str) -> Result<Backend, String> {
    match s {
        "auto" => Ok(Backend::Auto),
        "cuda" | "gpu" => Ok(Backend::Cuda),
        "cpu" => Ok(Backend::Cpu),
        other => Err(format!("backend {other:?}: expected auto, cuda or cpu")),
    }
}

/// A device found by the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbedDevice {
    /// `cuda:N` or `cpu`.
    pub id: String,
    pub entry: DeviceEntry,
    /// How gpu-verify would drive it.
    pub detail: String,
}

/// The host's memory in MiB (Linux `/proc/meminfo`), or None where it cannot be read.
pub fn host_memory_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// The devices a provider on this machine offers: every CUDA device (`backend` auto or cuda), or the CPU as
/// one device when there is none (or `backend` is cpu). With `backend` cuda and no usable GPU, an error.
pub fn probe(backend: Backend) -> eyre::Result<Vec<ProbedDevice>> {
    let mut out = Vec::new();
    if backend != Backend::Cpu {
        match lode_gpu_verify::cuda::probe() {
            Ok(count) => {
                for i in 0..count {
                    let (name, bytes) = lode_gpu_verify::cuda::device_info(i)
                        .map_err(|e| eyre!("CUDA device {i}: {e}"))?;
                    out.push(ProbedDevice {
                        id: format!("cuda:{i}"),
                        entry: DeviceEntry {
                            model: name.clone(),
                            memory_mib: u32::try_from(bytes >> 20).unwrap_or(u32::MAX),
                            count: 1,
                        },
                        detail: format!("CUDA device {i}: {name}"),
                    });
                }
            }
            Err(reason) if backend == Backend::Cuda => {
                return Err(eyre!("--backend cuda, but CUDA is not usable: {reason}"))
            }
            Err(reason) => tracing::info!(%reason, "no CUDA device; offering the CPU"),
        }
    }
    if out.is_empty() {
        let cpu = lode_gpu_verify::CpuGemm::new();
        let mem = host_memory_mib().unwrap_or(0);
        out.push(ProbedDevice {
            id: "cpu".into(),
            entry: DeviceEntry {
                model: format!("cpu-{}", cpu.kernel().name()),
                memory_mib: u32::try_from(mem).unwrap_or(u32::MAX),
                count: 1,
            },
            detail: format!(
                "CPU: int8 kernel {}, {} threads",
                cpu.kernel().name(),
                cpu.threads()
            ),
        });
    }
    Ok(out)
}

/// Merges identical models into one entry with a count (the chain's device list form).
pub fn merge_devices(devices: &[DeviceEntry]) -> Vec<DeviceEntry> {
    let mut out: Vec<DeviceEntry> = Vec::new();
    for d in devices {
        match out
            .iter_mut()
            .find(|o| o.model == d.model && o.memory_mib == d.memory_mib)
        {
            Some(o) => o.count = o.count.saturating_add(d.count),
            None => out.push(d.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_toml_parses_with_amounts_as_numbers_or_strings_and_refuses_unknown_keys() {
        let c: ProviderConfig = toml::from_str(
            r#"
            moniker = "box"
            ask = 5
            bond = "340282366920938463463374607431768211455"
            max_job_cu = 1000
            [[devices]]
            model = "H100"
            memory_mib = 81920
            count = 2
            "#,
        )
        .expect("parse");
        assert_eq!(c.ask.expect("ask").value().expect("ask"), 5);
        assert_eq!(c.bond.expect("bond").value().expect("bond"), u128::MAX);
        assert_eq!(c.devices[0].count, 2);
        assert!(toml::from_str::<ProviderConfig>("asks = 5").is_err());
        let bad: ProviderConfig = toml::from_str("ask = \"-3\"").expect("parses as text");
        assert!(bad.ask.expect("ask").value().is_err());
    }

    #[test]
    fn devices_parse_from_flags_and_merge_by_model() {
        let d = DeviceEntry::parse("A100:SXM:40960:2").expect("model with a colon");
        assert_eq!(
            (d.model.as_str(), d.memory_mib, d.count),
            ("A100:SXM", 40960, 2)
        );
        assert!(DeviceEntry::parse("H100:8").is_err());
        let one = DeviceEntry::parse("H100:81920:1").expect("h100");
        let merged = merge_devices(&[one.clone(), one.clone(), d.clone()]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].count, 2);
    }

    #[test]
    fn the_cpu_is_offered_when_the_cpu_backend_is_asked_for() {
        let devices = probe(Backend::Cpu).expect("probe");
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].id, "cpu");
        assert!(devices[0].entry.model.starts_with("cpu-"));
    }
}
