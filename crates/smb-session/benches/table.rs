//! The session table at 1k, 10k, 100k and 1M sessions (each an authenticated
//! session with an IPC$ tree on its own connection), ns per operation:
//! - `insert`: add_connection + create_session + authenticate_session +
//!   connect_tree IPC$ (removed again outside the timed region);
//! - `lookup`: `session(id)` of a random live id;
//! - `touch`: `touch(id, now)` of a random live id (the per-request cost);
//! - `remove`: `remove_connection` of a random client (re-added untimed).
//!
//! Run: `cargo bench -p smb-session --bench table -- --warm-up-time 1 --measurement-time 2`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use smb_session::ids::{ConnId, SessionId};
use smb_session::table::{SessionInfo, SessionTable, TableConfig, UserName};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];
const CHUNK: u64 = 1024;

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

fn peer(i: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 50_000)
}

fn info() -> SessionInfo {
    SessionInfo {
        user: UserName::User("CORP\\bench".into()),
        admin: false,
        computer_name: Some("BENCH01".into()),
        dialect: 0x0311,
        signed: true,
    }
}

fn login(t: &mut SessionTable, i: u32, now: Instant) -> (ConnId, SessionId) {
    let c = t.add_connection(peer(i), now);
    let s = t.create_session(c, now).expect("session");
    t.authenticate_session(s, info(), now).expect("auth");
    t.connect_tree(s, "IPC$", true, now).expect("tree");
    (c, s)
}

fn benches(c: &mut Criterion) {
    for &n in &SIZES {
        let mut g = c.benchmark_group(format!("table/{n}"));
        if n >= 1_000_000 {
            g.sample_size(10);
        } else if n >= 100_000 {
            g.sample_size(20);
        }
        let base = Instant::now();
        let mut now = base;
        let mut t: SessionTable = SessionTable::new(0, base, TableConfig::default());
        let mut live: Vec<(ConnId, SessionId)> =
            (0..n as u32).map(|i| login(&mut t, i, now)).collect();
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);

        g.bench_function(BenchmarkId::new("insert", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                let mut tmp = Vec::with_capacity(CHUNK as usize);
                while done < iters {
                    let k = CHUNK.min(iters - done);
                    let start = Instant::now();
                    for j in 0..k {
                        tmp.push(login(&mut t, n as u32 + j as u32, now).0);
                    }
                    total += start.elapsed();
                    for c in tmp.drain(..) {
                        t.remove_connection(c, now).expect("remove");
                    }
                    done += k;
                }
                total
            })
        });

        g.bench_function(BenchmarkId::new("lookup", n), |b| {
            b.iter(|| {
                let (_, s) = live[rng.below(n as u64) as usize];
                black_box(t.session(s).map(|s| s.open_handles()))
            })
        });

        g.bench_function(BenchmarkId::new("touch", n), |b| {
            b.iter(|| {
                now += Duration::from_micros(1);
                let (_, s) = live[rng.below(n as u64) as usize];
                black_box(t.touch(s, now))
            })
        });

        g.bench_function(BenchmarkId::new("remove", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                let mut picked = Vec::with_capacity(CHUNK as usize);
                while done < iters {
                    let k = CHUNK.min(iters - done);
                    picked.clear();
                    picked.extend((0..k).map(|_| rng.below(n as u64) as usize));
                    picked.sort_unstable();
                    picked.dedup();
                    let start = Instant::now();
                    for &i in &picked {
                        t.remove_connection(live[i].0, now).expect("remove");
                    }
                    total += start.elapsed();
                    for &i in &picked {
                        live[i] = login(&mut t, i as u32, now);
                    }
                    done += picked.len() as u64;
                }
                total
            })
        });
        g.finish();
    }
}

criterion_group!(table, benches);
criterion_main!(table);
