use super::*;
use std::net::{IpAddr, Ipv4Addr};

const MS: Duration = Duration::from_millis(1);

fn cfg(autodisconnect: &str) -> TableConfig {
    TableConfig {
        autodisconnect: autodisconnect.parse().unwrap(),
        pre_auth_timeout: Duration::from_secs(10),
        tick: MS,
        max_sessions_per_connection: 4,
        connection_idle_timeout: None,
        keep_expired: false,
    }
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), 49152)
}

fn user(name: &str, computer: Option<&str>) -> SessionInfo {
    SessionInfo {
        user: UserName::User(name.into()),
        admin: false,
        computer_name: computer.map(str::to_string),
        dialect: 0x0311,
        signed: true,
    }
}

struct Fx {
    t: SessionTable,
    base: Instant,
}

impl Fx {
    fn new(ad: &str) -> Fx {
        let base = Instant::now();
        Fx {
            t: SessionTable::new(3, base, cfg(ad)),
            base,
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    /// A connection with one authenticated session at `ms`.
    fn login(
        &mut self,
        ip: u8,
        name: &str,
        computer: Option<&str>,
        ms: u64,
    ) -> (ConnId, SessionId) {
        let now = self.at(ms);
        let c = self.t.add_connection(addr(ip), now);
        let s = self.t.create_session(c, now).unwrap();
        self.t
            .authenticate_session(s, user(name, computer), now)
            .unwrap();
        (c, s)
    }

    /// Behaves like the runtime: sleeps until `next_deadline`, polls, repeats,
    /// up to `limit_ms`. Returns each event with the instant (ms) it came at.
    fn run_until(&mut self, limit_ms: u64) -> Vec<(Duration, TableEvent)> {
        let mut got = Vec::new();
        let limit = self.at(limit_ms);
        while let Some(at) = self.t.next_deadline() {
            if at > limit {
                break;
            }
            let mut v = Vec::new();
            self.t.poll_timeouts(at, &mut v);
            got.extend(v.into_iter().map(|e| (at - self.base, e)));
        }
        got
    }

    fn poll(&mut self, ms: u64) -> Vec<TableEvent> {
        let mut v = Vec::new();
        self.t.poll_timeouts(self.at(ms), &mut v);
        v
    }
}

fn expired(ev: &[TableEvent]) -> Vec<SessionId> {
    ev.iter()
        .filter_map(|e| match e {
            TableEvent::SessionExpired { session, .. } => Some(*session),
            _ => None,
        })
        .collect()
}

#[test]
fn idle_session_reaped_at_deadline_never_early() {
    let mut f = Fx::new("100ms");
    let (c, s) = f.login(1, "alice", None, 0);
    // next_deadline never lies past the deadline
    assert!(f.t.next_deadline().unwrap() <= f.at(100));
    assert!(f.run_until(99).is_empty());
    assert_eq!(f.t.next_deadline(), Some(f.at(100)));
    assert!(f.poll(99).is_empty());
    assert!(f.t.session(s).is_some());
    let ev = f.poll(100);
    assert_eq!(
        ev,
        vec![
            TableEvent::SessionExpired {
                session: s,
                conn: c,
                lateness: Duration::ZERO
            },
            TableEvent::CloseConnection { conn: c },
        ]
    );
    assert!(f.t.session(s).is_none());
    assert_eq!(f.t.stats().timed_out, 1);
    assert_eq!(f.t.next_deadline(), None);
}

#[test]
fn touch_defers_reaping_lazily() {
    let mut f = Fx::new("100ms");
    let (_, s) = f.login(1, "alice", None, 0);
    let timers = f.t.timer_count();
    assert!(f.t.touch(s, f.at(60)));
    // touch does no wheel work
    assert_eq!(f.t.timer_count(), timers);
    // the timer fires at 100, finds activity and files the true deadline:
    // the session goes at exactly 160 ms
    let ev = f.run_until(1_000);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[0].0, Duration::from_millis(160));
    assert_eq!(expired(&[ev[0].1]), vec![s]);
}

#[test]
fn lateness_is_measured() {
    let mut f = Fx::new("100ms");
    let (_, s) = f.login(1, "alice", None, 0);
    let ev = f.poll(137);
    assert_eq!(
        ev[0],
        TableEvent::SessionExpired {
            session: s,
            conn: f.t.session_conn(s).unwrap_or(ConnId::new(0, 1)),
            lateness: Duration::from_millis(37),
        }
    );
    let h = f.t.stats().lateness;
    assert_eq!(h.len(), 1);
    assert!(h.equivalent(h.max(), 37_000), "{}", h.max());
}

#[test]
fn sub_tick_activity_never_reaped_early() {
    // tick 1 ms, activity at 0.4 ms: deadline 100.4 ms, so a poll at 100 ms keeps it.
    let mut f = Fx::new("100ms");
    let (_, s) = f.login(1, "alice", None, 0);
    f.t.touch(s, f.base + Duration::from_micros(400));
    let mut v = Vec::new();
    f.t.poll_timeouts(f.base + Duration::from_micros(100_399), &mut v);
    assert!(v.is_empty());
    f.t.poll_timeouts(f.base + Duration::from_micros(101_000), &mut v);
    assert_eq!(expired(&v), vec![s]);
    match v[0] {
        TableEvent::SessionExpired { lateness, .. } => {
            assert_eq!(lateness, Duration::from_micros(600))
        }
        _ => unreachable!(),
    }
}

#[test]
fn generation_guards_reused_slots() {
    let mut f = Fx::new("15");
    let (c, s1) = f.login(1, "alice", None, 0);
    f.t.logoff(s1, f.at(1)).unwrap();
    let s2 = f.t.create_session(c, f.at(2)).unwrap();
    assert_eq!(s1.index(), s2.index(), "slot reused");
    assert_ne!(s1, s2);
    assert!(f.t.session(s1).is_none());
    assert!(!f.t.touch(s1, f.at(3)));
    assert_eq!(f.t.logoff(s1, f.at(3)), Err(TableError::UnknownSession));
    assert_eq!(
        f.t.connect_tree(s1, "IPC$", true, f.at(3)),
        Err(TableError::UnknownSession)
    );
    assert!(f.t.session(s2).is_some());
}

#[test]
fn bad_ids_are_refused() {
    let mut f = Fx::new("15");
    let (c, s) = f.login(1, "alice", None, 0);
    let other_shard = SessionId::new(4, s.index(), s.generation()).unwrap();
    assert!(f.t.session(other_shard).is_none());
    let never = SessionId::new(3, 1000, 5).unwrap();
    assert!(f.t.session(never).is_none());
    assert_eq!(f.t.open_handle(never), Err(TableError::UnknownSession));
    let bogus_tree = TreeId::new(77).unwrap();
    assert!(f.t.tree(s, bogus_tree).is_none());
    assert_eq!(
        f.t.disconnect_tree(s, bogus_tree),
        Err(TableError::UnknownTree)
    );
    let stale_conn = ConnId::new(c.index(), c.generation() + 1);
    assert!(f.t.connection(stale_conn).is_none());
    assert_eq!(
        f.t.create_session(stale_conn, f.at(0)),
        Err(TableError::UnknownConnection)
    );
    assert_eq!(
        f.t.remove_connection(stale_conn, f.at(0)),
        Err(TableError::UnknownConnection)
    );
    assert_eq!(f.t.close_handle(s), Err(TableError::NoOpenHandles));
    assert_eq!(
        f.t.connect_tree(s, "", false, f.at(0)),
        Err(TableError::InvalidName)
    );
    let long = "x".repeat(MAX_SHARE_NAME + 1);
    assert_eq!(
        f.t.connect_tree(s, &long, false, f.at(0)),
        Err(TableError::InvalidName)
    );
}

#[test]
fn shorter_autodisconnect_reaps_already_idle_at_next_poll() {
    let mut f = Fx::new("15");
    let (_, idle) = f.login(1, "alice", None, 0);
    let (_, busy) = f.login(2, "bob", None, 0);
    f.t.touch(busy, f.at(9_000));
    f.t.set_autodisconnect("5s".parse().unwrap(), f.at(10_000));
    assert!(f.t.next_deadline().unwrap() <= f.at(10_000));
    let ev = f.poll(10_000);
    assert_eq!(expired(&ev), vec![idle]);
    // lateness counts from the new deadline (5 s after the last activity)
    assert!(
        matches!(ev[0], TableEvent::SessionExpired { lateness, .. } if lateness == Duration::from_secs(5))
    );
    assert!(f.poll(13_999).is_empty());
    assert_eq!(expired(&f.poll(14_000)), vec![busy]);
}

#[test]
fn longer_autodisconnect_defers() {
    let mut f = Fx::new("1s");
    let (_, s) = f.login(1, "alice", None, 0);
    f.t.set_autodisconnect("1m".parse().unwrap(), f.at(500));
    assert!(f.poll(1_000).is_empty());
    assert!(f.poll(59_999).is_empty());
    assert_eq!(expired(&f.poll(60_000)), vec![s]);
}

#[test]
fn never_disarms_and_zero_reaps_at_next_tick() {
    let mut f = Fx::new("-1");
    let (_, s) = f.login(1, "alice", None, 0);
    assert_eq!(f.t.next_deadline(), None);
    assert!(f.poll(10_000_000).is_empty());
    assert!(f.t.session(s).is_some());
    // -1 -> 0: the idle session goes at the next poll
    f.t.set_autodisconnect(AutoDisconnect::AfterMillis(0), f.at(10_000_001));
    assert_eq!(expired(&f.poll(10_000_001)), vec![s]);
    // with 0, a fresh session goes at the first poll after its last activity
    let (_, s2) = f.login(2, "bob", None, 20_000_000);
    assert_eq!(expired(&f.poll(20_000_000)), vec![s2]);
    // back to never: nothing armed
    let (_, s3) = f.login(3, "carol", None, 20_000_001);
    f.t.set_autodisconnect(AutoDisconnect::Never, f.at(20_000_001));
    assert_eq!(f.t.next_deadline(), None);
    assert!(f.poll(u32::MAX as u64).is_empty());
    assert!(f.t.session(s3).is_some());
}

#[test]
fn pre_auth_expiry() {
    let mut f = Fx::new("15");
    let c = f.t.add_connection(addr(9), f.at(0));
    assert_eq!(
        f.run_until(20_000),
        vec![(
            Duration::from_secs(10),
            TableEvent::PreAuthExpired { conn: c }
        )]
    );
    assert_eq!(f.t.stats().pre_auth_timeouts, 1);
    f.t.remove_connection(c, f.at(10_001)).unwrap();
    assert_eq!(f.t.stats().connections, 0);

    // authenticating disarms it
    let (_, s) = f.login(1, "alice", None, 20_000);
    assert!(f.poll(40_000).is_empty());
    assert!(f.t.session(s).is_some());

    // a session that never authenticates is reaped however active
    let (c2, _) = f.login(2, "bob", None, 50_000);
    let half = f.t.create_session(c2, f.at(50_000)).unwrap();
    f.t.touch(half, f.at(59_000));
    let ev = f.poll(60_000);
    assert_eq!(expired(&ev), vec![half]);
    assert_eq!(f.t.stats().pre_auth_timeouts, 2);
    assert_eq!(f.t.stats().timed_out, 0);

    // the timeout is settable live
    let c3 = f.t.add_connection(addr(3), f.at(100_000));
    f.t.set_pre_auth_timeout(Duration::from_secs(1), f.at(100_500));
    assert_eq!(
        f.poll(101_000),
        vec![TableEvent::PreAuthExpired { conn: c3 }]
    );
}

#[test]
fn sessions_with_open_handles_are_kept() {
    let mut f = Fx::new("100ms");
    let (_, s) = f.login(1, "alice", None, 0);
    f.t.connect_tree(s, "IPC$", true, f.at(0)).unwrap();
    assert_eq!(f.t.open_handle(s), Ok(1)); // the srvsvc pipe
    assert!(f.poll(1_000).is_empty());
    assert!(f.t.session(s).is_some());
    // a kept session costs no timer
    assert_eq!(f.t.timer_count(), 0);
    f.t.touch(s, f.at(1_000));
    assert_eq!(f.t.close_handle(s), Ok(0));
    assert!(f.poll(1_099).is_empty());
    assert_eq!(expired(&f.poll(1_100)), vec![s]);
}

#[test]
fn last_session_reaped_closes_connection_only_then() {
    let mut f = Fx::new("100ms");
    let (c, s1) = f.login(1, "alice", None, 0);
    let s2 = f.t.create_session(c, f.at(50)).unwrap();
    f.t.authenticate_session(s2, user("bob", None), f.at(50))
        .unwrap();
    assert_eq!(
        f.poll(100),
        vec![TableEvent::SessionExpired {
            session: s1,
            conn: c,
            lateness: Duration::ZERO
        }]
    );
    assert_eq!(
        f.poll(150),
        vec![
            TableEvent::SessionExpired {
                session: s2,
                conn: c,
                lateness: Duration::ZERO
            },
            TableEvent::CloseConnection { conn: c }
        ]
    );
}

#[test]
fn logoff_leaves_connection_to_idle_out() {
    let mut f = Fx::new("100ms");
    let (c, s) = f.login(1, "alice", None, 0);
    f.t.connect_tree(s, "IPC$", true, f.at(0)).unwrap();
    f.t.logoff(s, f.at(10)).unwrap();
    assert_eq!(f.t.tree_count(), 0);
    assert!(f.poll(109).is_empty());
    assert_eq!(f.poll(110), vec![TableEvent::CloseConnection { conn: c }]);
}

#[test]
fn session_limits() {
    let mut f = Fx::new("15");
    let c = f.t.add_connection(addr(1), f.at(0));
    for _ in 0..4 {
        f.t.create_session(c, f.at(0)).unwrap();
    }
    assert_eq!(
        f.t.create_session(c, f.at(0)),
        Err(TableError::TooManySessions)
    );
    let c2 = f.t.add_connection(addr(2), f.at(0));
    let s = f.t.create_session(c2, f.at(0)).unwrap();
    assert_eq!(
        f.t.connect_tree(s, "IPC$", true, f.at(0)),
        Err(TableError::NotAuthenticated)
    );
    assert_eq!(f.t.remove_connection(c, f.at(1)), Ok(4));
}

#[test]
fn tree_ids_are_per_session_and_not_reused_at_once() {
    let mut f = Fx::new("15");
    let (_, s) = f.login(1, "alice", None, 0);
    let (_, s2) = f.login(2, "bob", None, 0);
    let a = f.t.connect_tree(s, "IPC$", true, f.at(0)).unwrap();
    let b = f.t.connect_tree(s, "data", false, f.at(0)).unwrap();
    let a2 = f.t.connect_tree(s2, "IPC$", true, f.at(0)).unwrap();
    assert_ne!(a, b);
    assert_eq!(a, a2, "ids are per session");
    f.t.disconnect_tree(s, b).unwrap();
    let c = f.t.connect_tree(s, "data", false, f.at(0)).unwrap();
    assert_ne!(c, b);
    assert!(f.t.tree(s, b).is_none());
    let t = f.t.tree(s, c).unwrap();
    assert_eq!((t.share, t.is_ipc), ("data", false));
    assert!(f.t.tree(s2, c).is_none());
    assert_eq!(f.t.tree_count(), 3);
}

/// Microsoft KB Q153070: the user connects IPC$ and a share, disconnects
/// the share; the session holding only IPC$ must still be listed and removable.
fn seed(f: &mut Fx) -> (ConnId, SessionId) {
    let (c, s) = f.login(7, "CORP\\alice", Some("WKSTA01"), 0);
    f.t.connect_tree(s, "IPC$", true, f.at(1)).unwrap();
    let data = f.t.connect_tree(s, "DATA", false, f.at(2)).unwrap();
    f.t.disconnect_tree(s, data).unwrap();
    // another client that must survive
    f.login(8, "CORP\\bob", Some("WKSTA02"), 0);
    let l: Vec<_> =
        f.t.sessions(
            &SessionFilter {
                computer: Some("\\\\wksta01".into()),
                ..Default::default()
            },
            f.at(5_000),
        )
        .collect();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].id, s);
    assert_eq!(l[0].computer, "WKSTA01");
    assert_eq!(l[0].user, UserName::User("CORP\\alice".into()));
    assert_eq!(l[0].trees, vec![Arc::<str>::from("IPC$")]);
    assert_eq!(l[0].idle, Duration::from_secs(5));
    let trees: Vec<_> = f.t.trees(&SessionFilter::default(), f.at(5_000)).collect();
    assert_eq!(trees.len(), 1);
    assert!(trees[0].is_ipc);
    assert_eq!(trees[0].computer, "WKSTA01");
    (c, s)
}

fn check_removed(f: &mut Fx, sel: Selector, c: ConnId, s: SessionId) {
    let out = f.t.disconnect(&sel, f.at(6_000)).unwrap();
    assert_eq!(out.sessions, 1);
    assert_eq!(out.removed, vec![s]);
    assert_eq!(out.connections_to_close, vec![c]);
    assert!(f.t.session(s).is_none());
    assert_eq!(f.t.tree_count(), 0);
    assert_eq!(f.t.session_count(), 1);
    assert_eq!(f.t.stats().admin_disconnected, 1);
    // the connection stays listed for closing until the runtime removes it
    assert_eq!(
        f.t.disconnect(&sel, f.at(6_001)).map(|o| o.sessions),
        match sel {
            Selector::Session(_) | Selector::User(_) => Err(TableError::NotFound),
            _ => Ok(0),
        }
    );
    f.t.remove_connection(c, f.at(6_002)).unwrap();
    assert_eq!(f.t.disconnect(&sel, f.at(6_003)), Err(TableError::NotFound));
}

#[test]
fn seed_removed_by_computer_name() {
    let mut f = Fx::new("15");
    let (c, s) = seed(&mut f);
    check_removed(&mut f, Selector::Computer("wksta01".into()), c, s);
}

#[test]
fn seed_removed_by_user() {
    let mut f = Fx::new("15");
    let (c, s) = seed(&mut f);
    check_removed(&mut f, Selector::User("corp\\ALICE".into()), c, s);
}

#[test]
fn seed_removed_by_client_ip() {
    let mut f = Fx::new("15");
    let (c, s) = seed(&mut f);
    let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
    check_removed(&mut f, Selector::ClientIp(mapped), c, s);
}

#[test]
fn seed_removed_by_id() {
    let mut f = Fx::new("15");
    let (c, s) = seed(&mut f);
    check_removed(&mut f, Selector::Session(s), c, s);
}

#[test]
fn no_match_is_not_found() {
    let mut f = Fx::new("15");
    seed(&mut f);
    for sel in [
        Selector::User("mallory".into()),
        Selector::Computer("NOPE".into()),
        Selector::ClientIp("192.0.2.1".parse().unwrap()),
        Selector::Session(SessionId::new(3, 999, 1).unwrap()),
    ] {
        assert_eq!(f.t.disconnect(&sel, f.at(1)), Err(TableError::NotFound));
    }
    assert_eq!(f.t.session_count(), 2);
    assert_eq!(f.t.stats().admin_disconnected, 0);
}

#[test]
fn computer_falls_back_to_address() {
    let mut f = Fx::new("15");
    let (c, s) = f.login(5, "alice", None, 0);
    let l: Vec<_> = f.t.sessions(&SessionFilter::default(), f.at(0)).collect();
    assert_eq!(l[0].computer, "10.0.0.5");
    // a pre-auth connection from the same client is closed with it
    let c2 = f.t.add_connection(addr(5), f.at(0));
    let out =
        f.t.disconnect(&Selector::Computer("10.0.0.5".into()), f.at(1))
            .unwrap();
    assert_eq!(out.removed, vec![s]);
    assert_eq!(out.connections_to_close, vec![c, c2]);
}

#[test]
fn names_are_interned_and_released() {
    let mut f = Fx::new("15");
    let mut ids = Vec::new();
    for i in 0..50 {
        let (_, s) = f.login(i, "alice", Some("PC"), 0);
        f.t.connect_tree(s, "IPC$", true, f.at(0)).unwrap();
        ids.push(s);
    }
    // one "alice", one "PC", one "IPC$"
    assert_eq!(f.t.names.slots.len(), 3);
    for s in ids {
        f.t.logoff(s, f.at(1)).unwrap();
    }
    // computer names belong to the connections, still open
    assert_eq!(f.t.names.slots.len(), 1);
}

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Touch(usize),
        Open(usize),
        Close(usize),
        /// Let the runtime sleep until the next deadline, or this many ms.
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<usize>().prop_map(Op::Touch),
            1 => any::<usize>().prop_map(Op::Open),
            1 => any::<usize>().prop_map(Op::Close),
            4 => (0u64..400).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// Sessions driven by random activity, polled the way the runtime
        /// polls (at `next_deadline`, or earlier): each is reaped at the first
        /// poll at or after `last_activity + timeout`, never before, and never
        /// while it holds a handle.
        #[test]
        fn reaped_exactly_when_idle(ops in proptest::collection::vec(op(), 1..150)) {
            const T: u64 = 100;
            let mut f = Fx::new("100ms");
            let mut s = Vec::new();
            for i in 0..6u8 {
                let (_, id) = f.login(i, "u", None, 0);
                s.push((id, 0u64, 0u32, true)); // id, last activity ms, handles, alive
            }
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Touch(i) | Op::Open(i) | Op::Close(i) => {
                        let e = &mut s[i % 6];
                        if !e.3 { continue; }
                        prop_assert!(f.t.touch(e.0, f.at(now)));
                        e.1 = now;
                        match op {
                            Op::Open(_) => { f.t.open_handle(e.0).unwrap(); e.2 += 1; }
                            Op::Close(_) if e.2 > 0 => { f.t.close_handle(e.0).unwrap(); e.2 -= 1; }
                            _ => {}
                        }
                    }
                    Op::Wait(ms) => {
                        let limit = now + ms;
                        let next = f.t.next_deadline().map(|d| (d - f.base).as_millis() as u64);
                        now = match next { Some(d) if d < limit => d.max(now), _ => limit };
                        let ev = f.poll(now);
                        let gone = expired(&ev);
                        for e in s.iter_mut().filter(|e| e.3) {
                            let due = e.2 == 0 && now >= e.1 + T;
                            prop_assert_eq!(gone.contains(&e.0), due, "session {:?} at {}", e, now);
                            if due { e.3 = false; }
                        }
                    }
                }
            }
        }
    }
}

/// Steady churn must not make the table's memory creep: connections arrive
/// at a steady rate, authenticate, idle out (2 s autodisconnect, 2 s
/// pre-auth deadline), and a quarter are dropped by their client. After
/// the first minute `heap_bytes()` must stay put for the next four (one
/// full turn of level 2 and more). It grew by 1 MB over 262 s when fired
/// level-2 slots kept their buffers (the soak's early RSS climb).
#[test]
fn steady_churn_does_not_grow_the_table() {
    let epoch = Instant::now();
    let cfg = TableConfig {
        pre_auth_timeout: Duration::from_secs(2),
        ..cfg("2s")
    };
    let mut t: SessionTable = SessionTable::new(0, epoch, cfg);
    let mut drop_at: std::collections::VecDeque<(u64, ConnId)> = Default::default();
    let mut out = Vec::new();
    let mut n = 0u64;
    let mut at_60s = 0;
    for ms in 0..300_000u64 {
        let now = epoch + Duration::from_millis(ms);
        // 170 connections per second.
        while n * 1000 < 170 * (ms + 1) {
            let c = t.add_connection(addr(1), now);
            let s = t.create_session(c, now).expect("session");
            t.authenticate_session(s, user("u", Some("PC")), now)
                .expect("authenticate");
            if n % 4 == 3 {
                drop_at.push_back((ms + 2, c));
            }
            n += 1;
        }
        while drop_at.front().is_some_and(|&(at, _)| at <= ms) {
            let (_, c) = drop_at.pop_front().expect("front");
            let _ = t.remove_connection(c, now);
        }
        t.poll_timeouts(now, &mut out);
        for e in out.drain(..) {
            if let TableEvent::CloseConnection { conn } | TableEvent::PreAuthExpired { conn } = e {
                let _ = t.remove_connection(conn, now);
            }
        }
        if ms + 1 == 60_000 {
            at_60s = t.heap_bytes();
        }
    }
    let at_300s = t.heap_bytes();
    assert!(
        at_300s <= at_60s + at_60s / 20,
        "table memory crept from {at_60s} to {at_300s} bytes under steady churn"
    );
}

#[test]
fn ends_are_counted_per_reason() {
    let mut f = Fx::new("100ms");
    let (c1, s1) = f.login(1, "alice", None, 0);
    let (c2, _s2) = f.login(2, "bob", Some("WS2"), 0);
    let (c3, s3) = f.login(3, "carol", None, 0);
    let c4 = f.t.add_connection(addr(4), f.at(0));
    f.t.logoff(s1, f.at(10)).unwrap();
    let out =
        f.t.disconnect(&Selector::Computer("WS2".into()), f.at(20))
            .unwrap();
    assert_eq!(out.connections_to_close, [c2]);
    f.t.remove_connection(c2, f.at(21)).unwrap();
    // The runtime saw a reset on c3.
    f.t.mark_ending(c3, EndReason::DeadTransport);
    f.t.mark_ending(c3, EndReason::ClientClosed); // the first reason wins
    f.t.remove_connection(c3, f.at(30)).unwrap();
    let _ = s3;
    f.t.remove_connection(c4, f.at(31)).unwrap();
    f.t.remove_connection(c1, f.at(32)).unwrap();
    let st = f.t.stats();
    let s = |r: EndReason| st.sessions_ended[r.index()];
    let c = |r: EndReason| st.connections_ended[r.index()];
    assert_eq!(s(EndReason::Logoff), 1);
    assert_eq!(s(EndReason::Admin), 1);
    assert_eq!(s(EndReason::DeadTransport), 1);
    assert_eq!(c(EndReason::Admin), 1);
    assert_eq!(c(EndReason::DeadTransport), 1);
    assert_eq!(c(EndReason::ClientClosed), 2);
    assert_eq!(st.sessions_ended.iter().sum::<u64>(), 3);
}

#[test]
fn sessionless_connection_goes_at_its_idle_deadline_with_lateness() {
    let mut f = Fx::new("10s");
    f.t.set_connection_idle_timeout(Some(Duration::from_millis(50)), f.at(0));
    let (c, s) = f.login(1, "alice", None, 0);
    f.t.logoff(s, f.at(100)).unwrap();
    let ev = f.run_until(1_000);
    assert_eq!(ev.len(), 1, "{ev:?}");
    let (at, e) = ev[0];
    assert_eq!(e, TableEvent::CloseConnection { conn: c });
    assert!(at >= Duration::from_millis(150), "early: {at:?}");
    f.t.remove_connection(c, f.at(151)).unwrap();
    let st = f.t.stats();
    assert_eq!(st.connections_ended[EndReason::IdleConnection.index()], 1);
    assert_eq!(st.reap_lateness[2].len(), 1);
    // The per-reason histogram of autodisconnect saw nothing.
    assert_eq!(st.reap_lateness[0].len(), 0);
}

#[test]
fn idle_timeout_change_refiles_from_the_idle_start() {
    let mut f = Fx::new("10s");
    let (_c, s) = f.login(1, "alice", None, 0);
    f.t.logoff(s, f.at(100)).unwrap();
    // Shortened later: due 100 + 200 ms, not 500 + 200 ms.
    f.t.set_connection_idle_timeout(Some(Duration::from_millis(200)), f.at(500));
    let ev = f.run_until(2_000);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(ev[0].0 <= Duration::from_millis(502), "{ev:?}");
}

#[test]
fn reaped_sessions_are_kept_for_their_notification_only_when_asked() {
    let mut f = Fx::new("100ms");
    let (c, _s1) = f.login(1, "alice", None, 0);
    let s2 = f.t.create_session(c, f.at(50)).unwrap();
    f.t.authenticate_session(s2, user("alice", None), f.at(50))
        .unwrap();
    f.run_until(120);
    assert_eq!(f.t.take_expired().count(), 0);
    let mut cfg = cfg("100ms");
    cfg.keep_expired = true;
    let mut g = Fx {
        t: SessionTable::new(3, f.base, cfg),
        base: f.base,
    };
    let (c, s1) = g.login(1, "alice", None, 0);
    let s2 = g.t.create_session(c, g.at(50)).unwrap();
    g.t.authenticate_session(s2, user("alice", None), g.at(50))
        .unwrap();
    g.run_until(120);
    let kept: Vec<_> = g.t.take_expired().map(|(s, c, ())| (s, c)).collect();
    assert_eq!(kept, [(s1, c)]);
    assert_eq!(g.t.connection(c).unwrap().session_count(), 1);
}

#[test]
fn open_ids_name_their_shard() {
    let mut f = Fx::new("1m");
    let a = f.t.allocate_open_id();
    let b = f.t.allocate_open_id();
    assert_eq!(a >> 24, 3);
    assert_ne!(a, b);
    assert_ne!(a & 0x00FF_FFFF, 0);
}

#[test]
fn transport_timers_share_the_wheel_fire_never_early_and_cancel() {
    let mut f = Fx::new("100ms");
    let (_c, _s) = f.login(1, "alice", None, 0);
    let poll = |f: &mut Fx, ms_at: Result<u64, Instant>| {
        // Ok: milliseconds in; Err: an instant.
        let at = match ms_at {
            Ok(ms) => f.at(ms),
            Err(at) => at,
        };
        let mut ev = Vec::new();
        f.t.poll_timeouts(at, &mut ev);
        ev
    };
    // A deadline 10.4 ms in: due at the 11 ms tick, not at the 10 ms one.
    let at = f.at(10) + Duration::from_micros(400);
    let k = f.t.schedule_transport(at, 77);
    let gone = f.t.schedule_transport(f.at(20), 78);
    assert!(f.t.next_deadline().unwrap() <= at + MS);
    assert!(poll(&mut f, Ok(10)).is_empty());
    assert!(poll(&mut f, Err(at)).is_empty(), "a part of a tick early");
    assert_eq!(
        poll(&mut f, Ok(11)),
        [TableEvent::Transport { token: 77, key: k }]
    );
    // Cancelled: never fires; a second cancel, or a session's key, does
    // nothing.
    assert!(f.t.cancel_transport(gone));
    assert!(!f.t.cancel_transport(gone));
    assert!(!f.t.cancel_transport(k), "fired already");
    assert!(poll(&mut f, Ok(30)).is_empty());
    // The session's own deadline is untouched by all this.
    let ev = poll(&mut f, Ok(100));
    assert!(matches!(ev[0], TableEvent::SessionExpired { .. }), "{ev:?}");
    assert_eq!(
        crate::wheel::TimerKey::from_raw(k.to_raw()),
        Some(k),
        "raw keys round-trip"
    );
}
