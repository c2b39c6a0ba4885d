//! TIME-WAIT without a socket (ARCHITECTURE.md, "TIME-WAIT"). The side
//! that closes first holds its connection in TIME-WAIT for a while
//! (RFC 9293 section 3.6.1) so that a retransmitted FIN is acknowledged
//! and an old duplicate cannot reach a new incarnation. A server that
//! reaps idle sessions closes first, so every reaped connection passes
//! through it; with its smoltcp socket and both buffers it would cost
//! about 9 KiB for [`TIME_WAIT`] (smoltcp's own close delay). As the
//! kernel keeps a small `inet_timewait_sock` in place of the socket, a
//! flow entering TIME-WAIT here frees its socket and keeps the numbers
//! TIME-WAIT needs: SND.NXT and RCV.NXT (followed already), the window
//! last advertised and the deadline.
//!
//! What may arrive (RFC 9293 section 3.10.7.4, TIME-WAIT): a retransmitted
//! FIN is acknowledged and the deadline restarts; a RST at exactly RCV.NXT
//! ends the flow (RFC 5961 section 3.2), elsewhere it is dropped; a SYN
//! whose sequence number lies past RCV.NXT ends the flow and opens a new
//! connection on the same 4-tuple (RFC 6191 section 2, as the kernel
//! does), any other SYN or segment gets a rate-limited ACK (RFC 5961
//! section 4.2).

use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

use super::{bare_segment, Egress, FlowId, Ingress, SegmentInfo, TcpStack};

/// How long a flow stays in TIME-WAIT (smoltcp's close delay).
pub const TIME_WAIT: Duration = Duration::from_millis(10_000);

/// A flow's TIME-WAIT, once its socket is freed. Its deadline (micros)
/// is kept in the flow's `born`, which only a half-open flow needs (one
/// byte here, so that every flow does not grow by eight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum TimeWait {
    /// Not in TIME-WAIT (or in it with its socket still).
    #[default]
    No,
    /// In TIME-WAIT until the deadline.
    Waiting,
    /// Over (the deadline passed, or a RST came): CLOSED, for the caller
    /// to remove.
    Over,
}

/// What a segment to a flow in TIME-WAIT did.
pub(super) enum TimeWaitSegment {
    /// Answered, dropped or taken as the end: the caller returns this.
    Done(Ingress),
    /// A SYN for a new incarnation: the flow is gone, the caller opens a
    /// new connection with the segment.
    Reopen,
}

impl<T> TcpStack<T> {
    /// Free the socket of a flow that entered TIME-WAIT (its socket state
    /// says so), keeping the numbers it needs; `false` (nothing done) when
    /// it lacks them. Its timer comes due at the end of TIME-WAIT.
    pub(super) fn enter_time_wait(&mut self, index: usize, now: Instant) -> bool {
        let flow = &mut self.flows[index];
        if flow.time_wait != TimeWait::No
            || flow.parked
            || flow.socket().state() != tcp::State::TimeWait
            || flow.rcv_nxt.is_none()
            || flow.sent.snd_nxt.is_none()
        {
            return false;
        }
        let _ = flow.set.remove(flow.handle);
        flow.set = SocketSet::new(Vec::new());
        flow.time_wait = TimeWait::Waiting;
        flow.born = now.total_micros() + TIME_WAIT.total_micros() as i64;
        flow.probing = false;
        self.time_wait_len += 1;
        self.time_wait_timer(index);
        true
    }

    /// A caller asked for the socket of a flow in TIME-WAIT
    /// ([`TcpStack::flow_mut`]): it gets a CLOSED socket without buffers,
    /// never polled (the stack answers for the flow; [`super::Flow::state`]
    /// tells TIME-WAIT from CLOSED). Reading it finds nothing, closing it
    /// does nothing, and a caller that removes flows whose socket is
    /// CLOSED only ends the TIME-WAIT early.
    pub(super) fn time_wait_placeholder(&mut self, index: usize) {
        let flow = &mut self.flows[index];
        let mut set = SocketSet::new(Vec::with_capacity(1));
        flow.handle = set.add(tcp::Socket::new(
            tcp::SocketBuffer::new(Vec::new()),
            tcp::SocketBuffer::new(Vec::new()),
        ));
        flow.set = set;
    }

    /// File the timer of a flow in TIME-WAIT at its deadline.
    fn time_wait_timer(&mut self, index: usize) {
        let flow = &mut self.flows[index];
        if flow.time_wait != TimeWait::Waiting {
            return;
        }
        let until = flow.born;
        if flow.timer.is_some_and(|(at, _)| at <= until) {
            // An earlier timer stays; when it fires, this one is filed.
            return;
        }
        self.want_timer(index, until);
    }

    /// The timer of a flow in TIME-WAIT came due: over at its deadline
    /// (pushed to `fired` for the caller to remove), else filed again.
    pub(super) fn time_wait_fired(&mut self, index: usize, now: Instant, fired: &mut Vec<FlowId>) {
        let flow = &mut self.flows[index];
        if flow.time_wait != TimeWait::Waiting {
            return;
        }
        if now.total_micros() >= flow.born {
            flow.time_wait = TimeWait::Over;
            self.time_wait_len -= 1;
            fired.push(FlowId {
                index,
                gen: flow.gen,
            });
        } else {
            self.time_wait_timer(index);
        }
    }

    /// A segment (already parsed and checked) for a flow in TIME-WAIT or
    /// past it.
    pub(super) fn time_wait_segment<E: Egress>(
        &mut self,
        index: usize,
        seg: &SegmentInfo,
        link: crate::LinkAddr,
        now: Instant,
        egress: &mut E,
    ) -> TimeWaitSegment {
        let flow = &mut self.flows[index];
        let id = FlowId {
            index,
            gen: flow.gen,
        };
        let (TimeWait::Waiting, Some(rcv_nxt), Some(snd_nxt)) =
            (flow.time_wait, flow.rcv_nxt, flow.sent.snd_nxt)
        else {
            // Over: the caller removes it at its next look.
            return TimeWaitSegment::Done(Ingress::Dropped);
        };
        let off = seg.seq.wrapping_sub(rcv_nxt) as i32;
        if seg.rst() {
            if off != 0 {
                self.stats.out_of_window += 1;
                return TimeWaitSegment::Done(Ingress::Dropped);
            }
            flow.time_wait = TimeWait::Over;
            self.time_wait_len -= 1;
            return TimeWaitSegment::Done(Ingress::Flow(id));
        }
        if seg.syn() && seg.flags & 0x10 == 0 && off > 0 {
            // A new incarnation (RFC 6191): its sequence numbers cannot
            // be mistaken for the old one's.
            self.stats.time_wait_reopened += 1;
            self.remove(id);
            return TimeWaitSegment::Reopen;
        }
        if seg.fin() && !seg.syn() {
            // The peer's FIN again (our ACK of it was lost): ACK it and
            // restart the wait (RFC 9293 section 3.10.7.4).
            let wnd = flow.sent.wnd;
            flow.link = link;
            bare_segment(egress, flow.link, &flow.key, snd_nxt, rcv_nxt, 0x10, wnd);
            flow.born = now.total_micros() + TIME_WAIT.total_micros() as i64;
            self.time_wait_timer(index);
            return TimeWaitSegment::Done(Ingress::Flow(id));
        }
        Self::challenge_ack(flow, now, egress, &mut self.stats.challenge_acks);
        TimeWaitSegment::Done(Ingress::Flow(id))
    }
}
