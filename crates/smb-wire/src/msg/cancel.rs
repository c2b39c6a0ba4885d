//! SMB2 CANCEL request (MS-SMB2 2.2.30). There is no CANCEL response: the cancelled request
//! is answered instead (STATUS_CANCELLED).

use crate::header::Command;

crate::msg::simple4!(
    CancelRequest,
    CancelRequestRepr,
    Command::Cancel,
    "SMB2 CANCEL request"
);

#[cfg(test)]
mod request {
    use super::*;
    crate::msg::simple4_tests!(CancelRequest, CancelRequestRepr, Command::Cancel);
}
