//! TIME-WAIT without a socket (`stack/time_wait.rs`): the server closes
//! first, as when it reaps an idle session, and holds the 4-tuple for
//! [`crate::TIME_WAIT`] with its socket and buffers freed. What may arrive
//! then gets RFC 9293's answer (section 3.10.7.4), built from the numbers
//! read off the wire here.

use smoltcp::socket::tcp::State;
use smoltcp::time::Duration;

use super::hostile::{read, segment};
use super::{Pair, CLIENT, SERVER};
use crate::{FlowId, Ingress, TIME_WAIT};

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;

fn client(port: u16) -> std::net::SocketAddrV4 {
    std::net::SocketAddrV4::new(CLIENT, port)
}

fn server() -> std::net::SocketAddrV4 {
    std::net::SocketAddrV4::new(SERVER, 445)
}

/// A connection from `port` that the server closes first and the client
/// then closes: the server's side in TIME-WAIT. Returns its id and the
/// client's FIN as it went on the wire.
fn server_in_time_wait(p: &mut Pair, port: u16) -> (FlowId, Vec<u8>) {
    let (c, s) = p.connect(port);
    p.server.flow_mut(s).unwrap().socket_mut().close();
    p.server.poll(p.now, s, &mut p.to_client);
    p.run();
    assert_eq!(p.server.flow(s).unwrap().state(), State::FinWait2);
    p.client.flow_mut(c).unwrap().socket_mut().close();
    p.client.poll(p.now, c, &mut p.to_server);
    let fin = p
        .to_server
        .packets
        .iter()
        .find(|q| read(q).flags & FIN != 0)
        .cloned()
        .expect("the client's FIN");
    p.run();
    assert_eq!(p.server.flow(s).unwrap().state(), State::TimeWait);
    (s, fin)
}

/// Run the server's own timers at `p.now`; the flows they pushed.
fn server_timers(p: &mut Pair) -> Vec<FlowId> {
    let mut fired = Vec::new();
    p.server.poll_timers(p.now, &mut p.to_client, &mut fired);
    fired
}

#[test]
fn time_wait_holds_no_socket_acks_a_retransmitted_fin_and_ends_at_its_deadline() {
    let mut p = Pair::new();
    let t0 = p.now;
    let (s, fin) = server_in_time_wait(&mut p, 40000);
    assert_eq!(p.server.time_wait(), 1, "its socket is freed");
    // Held to its deadline (the clock stood still since it began)...
    let late = t0 + TIME_WAIT - Duration::from_millis(1);
    p.now = late;
    server_timers(&mut p);
    assert_eq!(p.server.flow(s).unwrap().state(), State::TimeWait);
    // ... when the client's FIN comes again (our ACK was lost, say): ACKed
    // with SND.NXT (after our FIN) and RCV.NXT (after theirs), and the
    // wait starts over.
    let f = read(&fin);
    let ev = p
        .server
        .ingress(p.now, [1; 6], &fin, &mut p.to_client, || 7);
    assert_eq!(ev, Ingress::Flow(s));
    let answers: Vec<_> = p.to_client.packets.drain(..).map(|q| read(&q)).collect();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].flags, ACK);
    assert_eq!(answers[0].seq, f.ack, "SND.NXT: the client ACKed our FIN");
    assert_eq!(
        answers[0].ack,
        f.seq.wrapping_add(1),
        "RCV.NXT: past their FIN"
    );
    // Past the first deadline it holds on; at the new one it is over.
    p.now = t0 + TIME_WAIT + Duration::from_millis(1);
    server_timers(&mut p);
    assert_eq!(p.server.flow(s).unwrap().state(), State::TimeWait);
    p.now = late + TIME_WAIT;
    assert!(server_timers(&mut p).contains(&s));
    assert_eq!(p.server.flow(s).unwrap().state(), State::Closed);
    assert_eq!(p.server.time_wait(), 0);
    assert_eq!(p.server.remove(s), Some(7));
    assert_eq!(p.server.len(), 0);
    let st = p.server.stats();
    assert_eq!((st.reset_by_peer, st.timed_out), (0, 0), "{st:?}");
}

#[test]
fn a_rst_at_rcv_nxt_ends_time_wait_and_one_elsewhere_is_dropped() {
    let mut p = Pair::new();
    let (s, fin) = server_in_time_wait(&mut p, 40001);
    // A caller that asks for the socket gets a CLOSED placeholder; the
    // flow is still in TIME-WAIT and still answers the peer's FIN.
    let flow = p.server.flow_mut(s).unwrap();
    assert_eq!(flow.socket().state(), State::Closed);
    assert_eq!(flow.socket().recv_queue(), 0);
    assert_eq!(flow.state(), State::TimeWait);
    p.server
        .ingress(p.now, [1; 6], &fin, &mut p.to_client, || 7);
    assert_eq!(p.to_client.packets.drain(..).count(), 1, "the FIN ACKed");
    let f = read(&fin);
    let rcv_nxt = f.seq.wrapping_add(1);
    let off = segment(
        client(40001),
        server(),
        rcv_nxt.wrapping_add(7),
        0,
        RST,
        &[],
    );
    let ev = p
        .server
        .ingress(p.now, [1; 6], &off, &mut p.to_client, || 7);
    assert_eq!(ev, Ingress::Dropped);
    assert_eq!(p.server.flow(s).unwrap().state(), State::TimeWait);
    let exact = segment(client(40001), server(), rcv_nxt, 0, RST, &[]);
    let ev = p
        .server
        .ingress(p.now, [1; 6], &exact, &mut p.to_client, || 7);
    assert_eq!(ev, Ingress::Flow(s));
    assert!(p.to_client.packets.is_empty(), "no answer to a RST");
    assert_eq!(p.server.flow(s).unwrap().state(), State::Closed);
    assert_eq!(p.server.time_wait(), 0);
}

#[test]
fn a_new_syn_past_rcv_nxt_opens_a_connection_on_a_4_tuple_in_time_wait() {
    let mut p = Pair::new();
    let (s, fin) = server_in_time_wait(&mut p, 40002);
    let rcv_nxt = read(&fin).seq.wrapping_add(1);
    // An old SYN (at or before RCV.NXT) cannot be a new incarnation: it
    // gets an ACK of where the old one stands, and changes nothing.
    let old = segment(
        client(40002),
        server(),
        rcv_nxt.wrapping_sub(10),
        0,
        SYN,
        &[],
    );
    let ev = p
        .server
        .ingress(p.now, [1; 6], &old, &mut p.to_client, || 7);
    assert_eq!(ev, Ingress::Flow(s));
    let answers: Vec<_> = p.to_client.packets.drain(..).map(|q| read(&q)).collect();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!((answers[0].flags, answers[0].ack), (ACK, rcv_nxt));
    assert_eq!(p.server.flow(s).unwrap().state(), State::TimeWait);
    // One past it (RFC 6191): the old flow goes, a new one answers.
    let isn = rcv_nxt.wrapping_add(100_000);
    let new = segment(client(40002), server(), isn, 0, SYN, &[]);
    let ev = p
        .server
        .ingress(p.now, [1; 6], &new, &mut p.to_client, || 8);
    let Ingress::New(n) = ev else {
        panic!("not a new connection: {ev:?}");
    };
    assert!(p.server.flow(s).is_none(), "the old flow is gone");
    let answers: Vec<_> = p.to_client.packets.drain(..).map(|q| read(&q)).collect();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].flags, SYN | ACK);
    assert_eq!(answers[0].ack, isn.wrapping_add(1));
    assert_eq!(p.server.flow(n).unwrap().state(), State::SynReceived);
    assert_eq!(p.server.time_wait(), 0);
    assert_eq!(p.server.stats().time_wait_reopened, 1);
}
