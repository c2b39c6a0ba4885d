//! Fuzz target: the user-space TCP segment path of the AF_XDP transport
//! (`smb-usertcp`, issue 14). A server stack holds one established
//! connection (opened from a client stack in memory); the input is cut
//! into packets (a 2-byte length before each) and every one is handed to
//! `TcpStack::ingress` as if it came off the wire, then the TCP timers run.
//! Nothing may panic, the stack never holds more flows than `max_flows`,
//! and the answers it sends are IPv4 packets no larger than the MTU.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};

use libfuzzer_sys::fuzz_target;
use smb_usertcp::smoltcp::time::{Duration, Instant};
use smb_usertcp::{Egress, LinkAddr, StackConfig, TcpStack};

#[derive(Default)]
struct Wire(Vec<Vec<u8>>);

impl Egress for Wire {
    fn buffer(&mut self, _: LinkAddr, len: usize) -> Option<&mut [u8]> {
        self.0.push(vec![0; len]);
        self.0.last_mut().map(|p| &mut p[..])
    }
    fn commit(&mut self, _: LinkAddr, _: usize) {}
}

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);

fuzz_target!(|data: &[u8]| {
    let now = Instant::from_secs(100);
    let mut scfg = StackConfig::new(vec![SERVER], Some(445), 7);
    scfg.max_flows = 8;
    let mut server: TcpStack<()> = TcpStack::new(scfg, now).unwrap();
    let mut client: TcpStack<()> =
        TcpStack::new(StackConfig::new(vec![CLIENT], None, 8), now).unwrap();
    let (mut to_s, mut to_c) = (Wire::default(), Wire::default());
    client
        .connect(
            now,
            SocketAddrV4::new(CLIENT, 40000),
            SocketAddrV4::new(SERVER, 445),
            [0; 6],
            &mut to_s,
            (),
        )
        .unwrap();
    for _ in 0..4 {
        for p in std::mem::take(&mut to_s.0) {
            server.ingress(now, [0; 6], &p, &mut to_c, || ());
        }
        for p in std::mem::take(&mut to_c.0) {
            client.ingress(now, [0; 6], &p, &mut to_s, || ());
        }
    }
    let mut rest = data;
    let mut out = Wire::default();
    let mut t = now;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let packet = &rest[2..2 + n];
        rest = &rest[2 + n..];
        server.ingress(t, [0; 6], packet, &mut out, || ());
        assert!(server.len() <= 8);
        t += Duration::from_millis(300);
        let mut fired = Vec::new();
        server.poll_timers(t, &mut out, &mut fired);
    }
    for p in &out.0 {
        assert!(p.len() <= 1500 && p.first().map(|b| b >> 4) == Some(4));
    }
});
