//! SMB2 ECHO request and response (MS-SMB2 2.2.28 and 2.2.29): both are a 4-byte body.

use crate::header::Command;

crate::msg::simple4!(
    EchoRequest,
    EchoRequestRepr,
    Command::Echo,
    "SMB2 ECHO request"
);
crate::msg::simple4!(
    EchoResponse,
    EchoResponseRepr,
    Command::Echo,
    "SMB2 ECHO response"
);

#[cfg(test)]
mod request {
    use super::*;
    crate::msg::simple4_tests!(EchoRequest, EchoRequestRepr, Command::Echo);
}

#[cfg(test)]
mod response {
    use super::*;
    crate::msg::simple4_tests!(EchoResponse, EchoResponseRepr, Command::Echo);
}
