//! Layered server settings.
//!
//! Every key has a built-in *automatic* value, tuned from the machine where
//! that makes sense (threads from the core count, connection limit from the
//! open-file limit). A config file, the command line and `smbcore ctl config
//! set` each lay an *explicit* value over it, in that order. Changing one key
//! changes only that key: the automatic values of all others keep being
//! computed (the failure of `NET CONFIG SERVER` described in Q153070, where
//! setting AUTODISCONNECT froze every self-tuned parameter, cannot happen
//! here). `config reset KEY` drops every explicit layer of that key.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use smb_session::autodisconnect::AutoDisconnect;

/// Where the value in force for a key came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Built in, tuned by the server itself.
    Automatic,
    /// Read from the config file.
    ConfigFile,
    /// Given on the command line.
    CommandLine,
    /// Set at run time with `smbcore ctl config set`.
    Runtime,
}

impl Source {
    /// Whether a person chose this value.
    pub fn is_explicit(self) -> bool {
        self != Source::Automatic
    }
}

/// Error for a bad key or value; the message names the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// One settable key: its name, accepted forms, and whether it applies live.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// Name as used in the config file and `ctl config`.
    pub name: &'static str,
    /// Human description of the accepted values.
    pub accepts: &'static str,
    /// Whether `ctl config set` can change it without a restart.
    pub live: bool,
}

/// All keys, in display order.
pub const KEYS: &[KeySpec] = &[
    KeySpec {
        name: "autodisconnect",
        accepts: "minutes (0..=65535, -1 = never) or a duration with a unit: 250ms, 30s, 5m, 2h",
        live: true,
    },
    KeySpec {
        name: "pre-auth-timeout",
        accepts: "a duration with a unit: 500ms, 30s, 2m",
        live: true,
    },
    KeySpec {
        name: "auth-failure-delay",
        accepts: "0 (off) to 10s in steps of 100ms: 0, 500ms, 2s, 10s",
        live: true,
    },
    KeySpec {
        name: "memory-budget",
        accepts: "a size (64MiB, 2GiB): what clients together can make the server hold in pipe buffers",
        live: true,
    },
    KeySpec {
        name: "max-connections",
        accepts: "a positive integer (automatically the open-files limit less 100, one descriptor per connection; on the xdp transport, which takes none, a quarter of physical memory at 16 KiB per connection)",
        live: true,
    },
    KeySpec {
        name: "max-connections-per-client",
        accepts: "a positive integer (connections one client address may hold; automatically nine tenths of max-connections)",
        live: true,
    },
    KeySpec {
        name: "connection-idle-timeout",
        accepts: "a duration with a unit: 30s, 1m, 5m (how long a connection whose sessions all logged off may stay; automatically the autodisconnect in force, at most 1m)",
        live: true,
    },
    KeySpec {
        name: "tcp-keepalive",
        accepts: "off, or the idle time before the first TCP keepalive probe: 30s, 2m (needs a restart)",
        live: false,
    },
    KeySpec {
        name: "tcp-keepalive-interval",
        accepts: "a duration with a unit between TCP keepalive probes: 1s, 10s (needs a restart)",
        live: false,
    },
    KeySpec {
        name: "tcp-keepalive-count",
        accepts: "unanswered TCP keepalive probes before the peer is declared gone, 1..=100 (needs a restart)",
        live: false,
    },
    KeySpec {
        name: "max-sessions-per-connection",
        accepts: "a positive integer",
        live: true,
    },
    KeySpec {
        name: "credit-cap",
        accepts: "an integer 16..=65535 (credits one connection may hold)",
        live: true,
    },
    KeySpec {
        name: "require-signing",
        accepts: "true or false",
        live: true,
    },
    KeySpec {
        name: "encryption",
        accepts: "off, desired or required (SMB3 encryption of every session)",
        live: true,
    },
    KeySpec {
        name: "ipc-encryption",
        accepts: "off, desired or required (SMB3 encryption of IPC$; the stricter of it and encryption applies)",
        live: true,
    },
    KeySpec {
        name: "ciphers",
        accepts: "auto, none, or a comma-separated preference list of aes-128-gcm, aes-256-gcm, aes-128-ccm, aes-256-ccm",
        live: true,
    },
    KeySpec {
        name: "allow-anonymous",
        accepts: "true or false",
        live: true,
    },
    KeySpec {
        name: "allow-guest",
        accepts: "true or false",
        live: true,
    },
    KeySpec {
        name: "min-dialect",
        accepts: "2.0.2, 2.1, 3.0, 3.0.2 or 3.1.1",
        live: true,
    },
    KeySpec {
        name: "max-dialect",
        accepts: "2.0.2, 2.1, 3.0, 3.0.2 or 3.1.1",
        live: true,
    },
    KeySpec {
        name: "server-comment",
        accepts: "any text",
        live: true,
    },
    KeySpec {
        name: "keytab",
        accepts: "a keytab file (FILE:path or a path) with the cifs/<name> keys, or empty for NTLMSSP only (automatic: $KRB5_KTNAME); loaded into memory at start and whenever set",
        live: true,
    },
    KeySpec {
        name: "kerberos-service",
        accepts: "the service principal tickets must name: cifs/<host> (automatic: cifs/ and this machine's host name)",
        live: true,
    },
    KeySpec {
        name: "threads",
        accepts: "a positive integer (shards; needs a restart)",
        live: false,
    },
    KeySpec {
        name: "cpu-steering",
        accepts: "true or false (SO_REUSEPORT CBPF steering to the receiving CPU's shard, shards pinned; needs a restart)",
        live: false,
    },
    KeySpec {
        name: "busy-poll",
        accepts: "microseconds of SO_BUSY_POLL, 0 = off (needs a restart)",
        live: false,
    },
    KeySpec {
        name: "transport",
        accepts: "auto, io-uring, mio or xdp (auto: io_uring where the kernel allows it; xdp: AF_XDP and TCP in user space on xdp-interface; needs a restart)",
        live: false,
    },
    KeySpec {
        name: "xdp-interface",
        accepts: "the network interface the xdp transport attaches to (needs a restart)",
        live: false,
    },
    KeySpec {
        name: "io-uring-min-wait",
        accepts: "microseconds an io_uring wait waits for a batch of completions, 0 = off (Linux 6.12+; needs a restart)",
        live: false,
    },
    KeySpec {
        name: "io-uring-sqpoll",
        accepts: "milliseconds of SQPOLL idle time, 0 = off (a kernel poller thread per shard; needs a restart)",
        live: false,
    },
];

/// Which transport moves the shards' bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportChoice {
    /// io_uring where the kernel allows it, else mio.
    Auto,
    /// io_uring, or refuse to start.
    IoUring,
    /// mio (epoll).
    Mio,
    /// AF_XDP with TCP in user space (smb-usertcp) on `xdp-interface`.
    Xdp,
}

/// Look a key up by name.
pub fn key_spec(name: &str) -> Result<&'static KeySpec, ConfigError> {
    KEYS.iter().find(|k| k.name == name).ok_or_else(|| {
        let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        ConfigError(format!(
            "unknown config key '{name}'; known keys: {}",
            names.join(", ")
        ))
    })
}

/// What the automatic `max-connections` of the xdp transport counts per
/// connection: its TCP state and 4 KiB buffers each way in user space and
/// one idle session, about 9.6 KiB measured (scripts/bench-xdp-memory.sh),
/// with room for a second session or a request in flight.
pub const XDP_CONNECTION_BYTES: u64 = 16 << 10;

/// Facts about the machine the automatic values are computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineFacts {
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// The soft open-file limit.
    pub open_files: u64,
    /// Physical memory (`MemTotal` of /proc/meminfo).
    pub memory_bytes: u64,
}

impl MachineFacts {
    /// Read the facts of this machine (core count, `/proc/self/limits`).
    pub fn detect() -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let open_files = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| parse_open_files_limit(&s))
            .unwrap_or(1024);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| parse_mem_total(&s))
            .unwrap_or(1 << 30);
        MachineFacts {
            cpus,
            open_files,
            memory_bytes,
        }
    }
}

/// This machine's host name, lower case (`localhost` when unknown).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_ascii_lowercase())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Parse a size: bytes, or a number with KiB, MiB, GiB (or K, M, G).
pub fn parse_size(s: &str) -> Result<u64, ConfigError> {
    let t = s.trim();
    let err = || {
        ConfigError(format!(
            "bad size '{s}'; accepted: 64MiB, 2GiB, 512KiB, or bytes"
        ))
    };
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| err())?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => return Err(err()),
    };
    n.checked_mul(mult).ok_or_else(err)
}

/// Format a size the way `parse_size` reads it (largest exact unit).
pub fn format_size(n: u64) -> String {
    for (unit, m) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= m && n % m == 0 {
            return format!("{}{unit}", n / m);
        }
    }
    n.to_string()
}

fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let rest = line.trim_start_matches("Max open files").split_whitespace();
    rest.into_iter().next()?.parse().ok()
}

/// Parse a dialect name ("3.1.1", "SMB3_11", "0x0311").
pub fn parse_dialect(s: &str) -> Result<u16, ConfigError> {
    let t = s.trim().to_ascii_uppercase();
    let d = match t.as_str() {
        "2.0.2" | "2.02" | "SMB2_02" | "0X0202" | "202" => 0x0202,
        "2.1" | "2.1.0" | "SMB2_10" | "0X0210" | "210" => 0x0210,
        "3.0" | "3.0.0" | "SMB3_00" | "0X0300" | "300" => 0x0300,
        "3.0.2" | "SMB3_02" | "0X0302" | "302" => 0x0302,
        "3.1.1" | "SMB3_11" | "0X0311" | "311" => 0x0311,
        _ => {
            return Err(ConfigError(format!(
                "bad dialect '{s}'; accepted: 2.0.2, 2.1, 3.0, 3.0.2, 3.1.1 (or SMB2_02, SMB2_10, SMB3_00, SMB3_02, SMB3_11)"
            )))
        }
    };
    Ok(d)
}

/// Format a dialect as "3.1.1".
pub fn dialect_name(d: u16) -> &'static str {
    match d {
        0x0202 => "2.0.2",
        0x0210 => "2.1",
        0x0300 => "3.0",
        0x0302 => "3.0.2",
        0x0311 => "3.1.1",
        0x02FF => "2.???",
        _ => "unknown",
    }
}

/// Parse a duration with a unit: `250ms`, `30s`, `5m`, `2h`.
pub fn parse_duration(s: &str) -> Result<Duration, ConfigError> {
    let t = s.trim();
    let err = || {
        ConfigError(format!(
            "bad duration '{s}'; accepted: a number with a unit, e.g. 500ms, 30s, 5m, 2h"
        ))
    };
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| err())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.checked_mul(60).ok_or_else(err)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(err)?),
        _ => return Err(err()),
    };
    Ok(d)
}

/// Format a duration the way `parse_duration` reads it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 3_600_000 == 0 && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The values in force, all keys resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// Idle time after which a session is reaped.
    pub autodisconnect: AutoDisconnect,
    /// Time a connection has to finish NEGOTIATE + SESSION_SETUP.
    pub pre_auth_timeout: Duration,
    /// How long the answer to a failed logon is held back.
    pub auth_failure_delay: Duration,
    /// Bytes clients together may make the server hold in pipe buffers.
    pub memory_budget: u64,
    /// Connections accepted at once, all shards together.
    pub max_connections: u64,
    /// Sessions one connection may hold.
    pub max_sessions_per_connection: u64,
    /// Connections one client address may hold.
    pub max_connections_per_client: u64,
    /// How long a connection whose sessions all logged off may stay.
    pub connection_idle_timeout: Duration,
    /// Idle time before the first TCP keepalive probe (`None`: off).
    pub tcp_keepalive: Option<Duration>,
    /// Time between keepalive probes.
    pub tcp_keepalive_interval: Duration,
    /// Unanswered probes before the peer is gone.
    pub tcp_keepalive_count: u32,
    /// Credits one connection may hold.
    pub credit_cap: u16,
    /// Whether every session must sign.
    pub require_signing: bool,
    /// SMB3 encryption of every session.
    pub encryption: smb_session::engine::EncryptionPolicy,
    /// SMB3 encryption of IPC$.
    pub ipc_encryption: smb_session::engine::EncryptionPolicy,
    /// Ciphers offered, in preference order.
    pub ciphers: Vec<smb_session::engine::Cipher>,
    /// Whether null sessions are accepted.
    pub allow_anonymous: bool,
    /// Whether unknown users are mapped to guest.
    pub allow_guest: bool,
    /// Lowest dialect offered.
    pub min_dialect: u16,
    /// Highest dialect offered.
    pub max_dialect: u16,
    /// Server comment (srvsvc).
    pub server_comment: String,
    /// Keytab for Kerberos logons (empty: NTLMSSP only).
    pub keytab: String,
    /// The service principal Kerberos tickets must name (`cifs/<host>`).
    pub kerberos_service: String,
    /// Number of shards.
    pub threads: usize,
    /// Steer connections to the receiving CPU's shard.
    pub cpu_steering: bool,
    /// SO_BUSY_POLL microseconds (0 = off).
    pub busy_poll_us: u32,
    /// Which transport the shards run.
    pub transport: TransportChoice,
    /// SQPOLL idle time in ms for io_uring (0 = no SQPOLL).
    pub io_uring_sqpoll_ms: u32,
    /// io_uring batching wait in µs (0 = off).
    pub io_uring_min_wait_us: u32,
    /// The interface the xdp transport attaches to (empty: none given).
    pub xdp_interface: String,
}

/// Layered settings: automatic values plus explicit layers per key.
#[derive(Debug, Clone)]
pub struct Settings {
    machine: MachineFacts,
    layers: BTreeMap<&'static str, BTreeMap<Source, String>>,
}

impl Settings {
    /// All keys automatic, tuned from `machine`.
    pub fn new(machine: MachineFacts) -> Self {
        Settings {
            machine,
            layers: BTreeMap::new(),
        }
    }

    /// The automatic value of a key, as text.
    pub fn automatic(&self, key: &str) -> String {
        let m = self.machine;
        match key {
            "autodisconnect" => "15".to_string(),
            "pre-auth-timeout" => "30s".to_string(),
            // Windows Server 2025's InvalidAuthenticationDelayTimeInMs default.
            "auth-failure-delay" => "2s".to_string(),
            // A quarter of physical memory, in whole MiB.
            "memory-budget" => format_size((m.memory_bytes / 4) & !((1 << 20) - 1)),
            // Leave headroom for listeners, pollers, the admin socket, logs.
            // One descriptor per kernel socket; leave headroom for
            // listeners, pollers, the admin socket, logs. The xdp transport
            // holds a connection in memory only (TCP in user space), so its
            // bound is memory: a quarter of it at XDP_CONNECTION_BYTES each.
            "max-connections" if self.get("transport").0 == "xdp" => ((m.memory_bytes / 4)
                / XDP_CONNECTION_BYTES)
                .max(16)
                .to_string(),
            "max-connections" => m.open_files.saturating_sub(100).max(16).to_string(),
            "max-sessions-per-connection" => "1024".to_string(),
            // Nine tenths of the connections in force: one address cannot
            // take them all, and a load generator on one address still gets
            // almost all of them.
            "max-connections-per-client" => {
                let max: u64 = self
                    .get("max-connections")
                    .0
                    .parse()
                    .unwrap_or_else(|_| m.open_files.saturating_sub(100).max(16));
                (max - max / 10).max(1).to_string()
            }
            // A connection whose client logged every session off is closed
            // when idle for the autodisconnect value, at most a minute (the
            // stale sockets ksmbd users report).
            "connection-idle-timeout" => {
                let minute = Duration::from_secs(60);
                let d = match self.get("autodisconnect").0.parse::<AutoDisconnect>() {
                    Ok(AutoDisconnect::AfterMillis(ms)) => Duration::from_millis(ms).min(minute),
                    _ => minute,
                };
                format_duration(d)
            }
            // Peers that vanish without FIN or RST are found within
            // 2m + 6 x 10s.
            "tcp-keepalive" => "2m".to_string(),
            "tcp-keepalive-interval" => "10s".to_string(),
            "tcp-keepalive-count" => "6".to_string(),
            "credit-cap" => "8192".to_string(),
            "require-signing" => "false".to_string(),
            "encryption" | "ipc-encryption" => "off".to_string(),
            "ciphers" => "auto".to_string(),
            "allow-anonymous" => "true".to_string(),
            "allow-guest" => "false".to_string(),
            "min-dialect" => "2.0.2".to_string(),
            "max-dialect" => "3.1.1".to_string(),
            "server-comment" => "smbcore".to_string(),
            "keytab" => std::env::var("KRB5_KTNAME").unwrap_or_default(),
            "kerberos-service" => format!("cifs/{}", host_name()),
            "threads" => m.cpus.max(1).to_string(),
            "cpu-steering" => "false".to_string(),
            "busy-poll" => "0".to_string(),
            "transport" => "auto".to_string(),
            "io-uring-sqpoll" => "0".to_string(),
            "io-uring-min-wait" => "0".to_string(),
            "xdp-interface" => String::new(),
            _ => String::new(),
        }
    }

    /// Validate `value` for `key`, returning it normalised.
    pub fn validate(key: &str, value: &str) -> Result<String, ConfigError> {
        let spec = key_spec(key)?;
        let bad = || {
            ConfigError(format!(
                "bad value '{value}' for {key}; accepted: {}",
                spec.accepts
            ))
        };
        let v = value.trim();
        let norm = match key {
            "autodisconnect" => v.parse::<AutoDisconnect>().map_err(|_| bad())?.to_string(),
            "tcp-keepalive" if v == "off" || v == "0" => "off".to_string(),
            "connection-idle-timeout" | "tcp-keepalive" | "tcp-keepalive-interval" => {
                let d = parse_duration(v).map_err(|_| bad())?;
                if d.is_zero() || (key != "connection-idle-timeout" && d.as_millis() % 1000 != 0) {
                    return Err(bad());
                }
                format_duration(d)
            }
            "tcp-keepalive-count" => {
                let n: u32 = v.parse().map_err(|_| bad())?;
                if !(1..=100).contains(&n) {
                    return Err(bad());
                }
                n.to_string()
            }
            "pre-auth-timeout" => {
                let d = parse_duration(v).map_err(|_| bad())?;
                if d.is_zero() {
                    return Err(bad());
                }
                format_duration(d)
            }
            "memory-budget" => {
                let n = parse_size(v).map_err(|_| bad())?;
                if n == 0 {
                    return Err(bad());
                }
                format_size(n)
            }
            "auth-failure-delay" => {
                let d = if v == "0" {
                    Duration::ZERO
                } else {
                    parse_duration(v).map_err(|_| bad())?
                };
                if d > Duration::from_secs(10) || d.as_millis() % 100 != 0 {
                    return Err(bad());
                }
                format_duration(d)
            }
            "max-connections"
            | "max-sessions-per-connection"
            | "max-connections-per-client"
            | "threads" => {
                let n: u64 = v.parse().map_err(|_| bad())?;
                if n == 0 {
                    return Err(bad());
                }
                n.to_string()
            }
            "credit-cap" => {
                let n: u16 = v.parse().map_err(|_| bad())?;
                if n < 16 {
                    return Err(bad());
                }
                n.to_string()
            }
            "busy-poll" | "io-uring-sqpoll" | "io-uring-min-wait" => {
                v.parse::<u32>().map_err(|_| bad())?.to_string()
            }
            "transport" => match v {
                "auto" => "auto".to_string(),
                "io-uring" | "io_uring" | "uring" => "io-uring".to_string(),
                "mio" | "epoll" => "mio".to_string(),
                "xdp" | "af-xdp" | "af_xdp" => "xdp".to_string(),
                _ => return Err(bad()),
            },
            "require-signing" | "allow-anonymous" | "allow-guest" | "cpu-steering" => match v {
                "true" | "yes" | "on" | "1" => "true".to_string(),
                "false" | "no" | "off" | "0" => "false".to_string(),
                _ => return Err(bad()),
            },
            "min-dialect" | "max-dialect" => {
                dialect_name(parse_dialect(v).map_err(|_| bad())?).to_string()
            }
            "encryption" | "ipc-encryption" => v
                .parse::<smb_session::engine::EncryptionPolicy>()
                .map_err(|_| bad())?
                .to_string(),
            "ciphers" => match v.trim().to_ascii_lowercase().as_str() {
                "auto" | "default" => "auto".to_string(),
                "none" | "" => "none".to_string(),
                list => {
                    let mut names = Vec::new();
                    for n in list.split(',') {
                        let c = smb_session::engine::Cipher::from_name(n).ok_or_else(bad)?;
                        if !names.contains(&c.name()) {
                            names.push(c.name());
                        }
                    }
                    names.join(",")
                }
            },
            // An interface name (IFNAMSIZ - 1 bytes at most, no '/', no
            // whitespace), or empty for none.
            "xdp-interface" => {
                if v.len() > 15
                    || v.contains('/')
                    || v.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(bad());
                }
                v.to_string()
            }
            "kerberos-service" => {
                let (svc, host) = v.split_once('/').ok_or_else(bad)?;
                if svc.is_empty() || host.is_empty() || host.contains('/') {
                    return Err(bad());
                }
                v.to_string()
            }
            _ => v.to_string(),
        };
        Ok(norm)
    }

    /// Set `key` at layer `source`. Only that key changes.
    pub fn set(&mut self, source: Source, key: &str, value: &str) -> Result<(), ConfigError> {
        let spec = key_spec(key)?;
        if source == Source::Runtime && !spec.live {
            return Err(ConfigError(format!(
                "{key} cannot change at run time; set it in the config file or on the command line and restart"
            )));
        }
        let norm = Self::validate(key, value)?;
        if source == Source::Automatic {
            return Err(ConfigError("automatic values are computed, not set".into()));
        }
        let mut trial = self.clone();
        trial
            .layers
            .entry(spec.name)
            .or_default()
            .insert(source, norm);
        trial.effective()?;
        *self = trial;
        Ok(())
    }

    /// Drop every explicit layer of `key`, returning it to automatic.
    pub fn reset(&mut self, key: &str) -> Result<(), ConfigError> {
        let spec = key_spec(key)?;
        if !spec.live {
            return Err(ConfigError(format!(
                "{key} cannot change at run time; it takes effect at the next start"
            )));
        }
        let mut trial = self.clone();
        trial.layers.remove(spec.name);
        trial.effective()?;
        *self = trial;
        Ok(())
    }

    /// The value in force for `key` and where it came from.
    pub fn get(&self, key: &str) -> (String, Source) {
        match self.layers.get(key).and_then(|l| l.iter().next_back()) {
            Some((src, v)) => (v.clone(), *src),
            None => (self.automatic(key), Source::Automatic),
        }
    }

    /// Every key with its value and source, in display order.
    pub fn show(&self) -> Vec<ShownKey> {
        KEYS.iter()
            .map(|k| {
                let (value, source) = self.get(k.name);
                ShownKey {
                    key: k.name,
                    value,
                    source,
                    explicit: source.is_explicit(),
                    automatic_value: self.automatic(k.name),
                    live: k.live,
                }
            })
            .collect()
    }

    /// Read a TOML config file's keys into the `ConfigFile` layer.
    pub fn load_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e| ConfigError(format!("config file is not valid TOML: {e}")))?;
        for (k, v) in table {
            let s = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(ConfigError(format!(
                        "config key {k}: unsupported value {other}"
                    )))
                }
            };
            // Startup-only keys are accepted in the file.
            let spec = key_spec(&k)?;
            let norm = Self::validate(spec.name, &s)?;
            self.layers
                .entry(spec.name)
                .or_default()
                .insert(Source::ConfigFile, norm);
        }
        self.effective()?;
        Ok(())
    }

    /// Resolve every key.
    pub fn effective(&self) -> Result<Effective, ConfigError> {
        let v = |k: &str| self.get(k).0;
        let bad = |k: &str| ConfigError(format!("bad stored value for {k}"));
        let e = Effective {
            autodisconnect: v("autodisconnect")
                .parse()
                .map_err(|_| bad("autodisconnect"))?,
            pre_auth_timeout: parse_duration(&v("pre-auth-timeout"))?,
            auth_failure_delay: parse_duration(&v("auth-failure-delay"))?,
            memory_budget: parse_size(&v("memory-budget"))?,
            max_connections: v("max-connections")
                .parse()
                .map_err(|_| bad("max-connections"))?,
            max_sessions_per_connection: v("max-sessions-per-connection")
                .parse()
                .map_err(|_| bad("max-sessions-per-connection"))?,
            max_connections_per_client: v("max-connections-per-client")
                .parse()
                .map_err(|_| bad("max-connections-per-client"))?,
            connection_idle_timeout: parse_duration(&v("connection-idle-timeout"))?,
            tcp_keepalive: match v("tcp-keepalive").as_str() {
                "off" => None,
                t => Some(parse_duration(t)?),
            },
            tcp_keepalive_interval: parse_duration(&v("tcp-keepalive-interval"))?,
            tcp_keepalive_count: v("tcp-keepalive-count")
                .parse()
                .map_err(|_| bad("tcp-keepalive-count"))?,
            credit_cap: v("credit-cap").parse().map_err(|_| bad("credit-cap"))?,
            require_signing: v("require-signing") == "true",
            encryption: v("encryption").parse().map_err(|_| bad("encryption"))?,
            ipc_encryption: v("ipc-encryption")
                .parse()
                .map_err(|_| bad("ipc-encryption"))?,
            ciphers: match v("ciphers").as_str() {
                "auto" => smb_session::engine::Cipher::DEFAULT_ORDER.to_vec(),
                "none" => Vec::new(),
                list => list
                    .split(',')
                    .map(|n| {
                        smb_session::engine::Cipher::from_name(n).ok_or_else(|| bad("ciphers"))
                    })
                    .collect::<Result<_, _>>()?,
            },
            allow_anonymous: v("allow-anonymous") == "true",
            allow_guest: v("allow-guest") == "true",
            min_dialect: parse_dialect(&v("min-dialect"))?,
            max_dialect: parse_dialect(&v("max-dialect"))?,
            server_comment: v("server-comment"),
            keytab: v("keytab"),
            kerberos_service: v("kerberos-service"),
            threads: v("threads").parse().map_err(|_| bad("threads"))?,
            cpu_steering: v("cpu-steering") == "true",
            busy_poll_us: v("busy-poll").parse().map_err(|_| bad("busy-poll"))?,
            transport: match v("transport").as_str() {
                "io-uring" => TransportChoice::IoUring,
                "mio" => TransportChoice::Mio,
                "xdp" => TransportChoice::Xdp,
                _ => TransportChoice::Auto,
            },
            xdp_interface: v("xdp-interface"),
            io_uring_sqpoll_ms: v("io-uring-sqpoll")
                .parse()
                .map_err(|_| bad("io-uring-sqpoll"))?,
            io_uring_min_wait_us: v("io-uring-min-wait")
                .parse()
                .map_err(|_| bad("io-uring-min-wait"))?,
        };
        if e.min_dialect > e.max_dialect {
            return Err(ConfigError(format!(
                "min-dialect {} is above max-dialect {}",
                dialect_name(e.min_dialect),
                dialect_name(e.max_dialect)
            )));
        }
        Ok(e)
    }
}

/// One row of `config show`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShownKey {
    /// Key name.
    pub key: &'static str,
    /// Value in force.
    pub value: String,
    /// Where it came from.
    pub source: Source,
    /// Whether a person chose it.
    pub explicit: bool,
    /// What the server would use on its own.
    pub automatic_value: String,
    /// Whether `set` applies it without a restart.
    pub live: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(cpus: usize, open_files: u64) -> Settings {
        Settings::new(MachineFacts {
            cpus,
            open_files,
            memory_bytes: 8 << 30,
        })
    }

    #[test]
    fn automatic_values_follow_the_machine() {
        let s = machine(4, 20_000);
        let e = s.effective().unwrap();
        assert_eq!(e.threads, 4);
        assert_eq!(e.max_connections, 19_900);
        assert_eq!(e.autodisconnect.to_string(), "15");
        assert!(s.show().iter().all(|k| !k.explicit));
    }

    #[test]
    fn xdp_connections_are_bounded_by_memory_not_descriptors() {
        // The xdp transport takes no descriptor per connection: 200,000
        // connections fit a 20,000 open-files limit (issue 14).
        let mut s = machine(2, 20_000);
        s.set(Source::CommandLine, "transport", "xdp").unwrap();
        let e = s.effective().unwrap();
        assert_eq!(e.max_connections, (8u64 << 30) / 4 / XDP_CONNECTION_BYTES);
        assert_eq!(e.max_connections, 131_072);
        assert_eq!(e.max_connections_per_client, 131_072 - 13_107);
        // An explicit value still rules, and the kernel transports keep the
        // descriptor bound.
        s.set(Source::CommandLine, "max-connections", "250000")
            .unwrap();
        assert_eq!(s.effective().unwrap().max_connections, 250_000);
        let mut k = machine(2, 20_000);
        k.set(Source::CommandLine, "transport", "mio").unwrap();
        assert_eq!(k.effective().unwrap().max_connections, 19_900);
    }

    #[test]
    fn setting_one_key_leaves_every_other_key_automatic() {
        // Q153070: setting AUTODISCONNECT froze every self-tuned value. Here
        // the other keys stay automatic and keep following the machine.
        let mut s = machine(4, 20_000);
        s.set(Source::Runtime, "autodisconnect", "250ms").unwrap();
        let shown = s.show();
        for k in &shown {
            assert_eq!(k.explicit, k.key == "autodisconnect", "{k:?}");
        }
        // The machine changes (more cores, more files): automatic keys follow.
        s.machine = MachineFacts {
            cpus: 8,
            open_files: 50_000,
            memory_bytes: 16 << 30,
        };
        let e = s.effective().unwrap();
        assert_eq!(e.threads, 8);
        assert_eq!(e.max_connections, 49_900);
        assert_eq!(e.autodisconnect.to_string(), "250ms");
    }

    #[test]
    fn layers_order_and_reset() {
        let mut s = machine(2, 1024);
        s.load_toml("autodisconnect = 5\nallow-guest = true\n")
            .unwrap();
        assert_eq!(s.get("autodisconnect"), ("5".into(), Source::ConfigFile));
        s.set(Source::CommandLine, "autodisconnect", "30s").unwrap();
        assert_eq!(s.get("autodisconnect"), ("30s".into(), Source::CommandLine));
        s.set(Source::Runtime, "autodisconnect", "-1").unwrap();
        assert_eq!(s.get("autodisconnect"), ("-1".into(), Source::Runtime));
        s.reset("autodisconnect").unwrap();
        assert_eq!(s.get("autodisconnect"), ("15".into(), Source::Automatic));
        // Reset of one key leaves the other explicit key alone.
        assert_eq!(s.get("allow-guest"), ("true".into(), Source::ConfigFile));
    }

    #[test]
    fn bad_keys_and_values_name_the_accepted_forms() {
        let mut s = machine(2, 1024);
        let e = s.set(Source::Runtime, "autodisconect", "5").unwrap_err();
        assert!(e.0.contains("known keys"), "{e}");
        let e = s
            .set(Source::Runtime, "autodisconnect", "soon")
            .unwrap_err();
        assert!(e.0.contains("250ms"), "{e}");
        let e = s.set(Source::Runtime, "threads", "4").unwrap_err();
        assert!(e.0.contains("restart"), "{e}");
        let e = s.set(Source::Runtime, "min-dialect", "9.9").unwrap_err();
        assert!(e.0.contains("3.1.1"), "{e}");
        // A value that contradicts another key is refused, nothing changes.
        s.set(Source::Runtime, "max-dialect", "2.1").unwrap();
        assert!(s.set(Source::Runtime, "min-dialect", "3.0").is_err());
        assert_eq!(s.get("min-dialect").1, Source::Automatic);
    }

    #[test]
    fn connection_idle_timeout_follows_autodisconnect_until_set() {
        let mut s = machine(2, 1024);
        let idle = |s: &Settings| s.get("connection-idle-timeout");
        // 15 minutes: capped at a minute.
        assert_eq!(idle(&s), ("1m".into(), Source::Automatic));
        s.set(Source::Runtime, "autodisconnect", "20s").unwrap();
        assert_eq!(idle(&s), ("20s".into(), Source::Automatic));
        assert_eq!(
            s.effective().unwrap().connection_idle_timeout,
            Duration::from_secs(20)
        );
        // Never: a minute.
        s.set(Source::Runtime, "autodisconnect", "-1").unwrap();
        assert_eq!(idle(&s), ("1m".into(), Source::Automatic));
        // Explicit: stays whatever autodisconnect does; the automatic value
        // still follows.
        s.set(Source::Runtime, "connection-idle-timeout", "5m")
            .unwrap();
        s.set(Source::Runtime, "autodisconnect", "250ms").unwrap();
        assert_eq!(idle(&s), ("5m".into(), Source::Runtime));
        let row = s
            .show()
            .into_iter()
            .find(|k| k.key == "connection-idle-timeout")
            .unwrap();
        assert_eq!(row.automatic_value, "250ms");
        s.reset("connection-idle-timeout").unwrap();
        assert_eq!(idle(&s), ("250ms".into(), Source::Automatic));
    }

    #[test]
    fn durations_round_trip() {
        for (text, ms) in [
            ("250ms", 250),
            ("30s", 30_000),
            ("5m", 300_000),
            ("2h", 7_200_000),
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(d.as_millis(), ms);
            assert_eq!(format_duration(d), text);
        }
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn open_files_limit_is_read_from_proc_format() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                20000                files\n";
        assert_eq!(parse_open_files_limit(text), Some(20000));
    }
}
