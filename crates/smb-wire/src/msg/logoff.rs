//! SMB2 LOGOFF request and response (MS-SMB2 2.2.7 and 2.2.8): both are a 4-byte body.

use crate::header::Command;

crate::msg::simple4!(
    LogoffRequest,
    LogoffRequestRepr,
    Command::Logoff,
    "SMB2 LOGOFF request"
);
crate::msg::simple4!(
    LogoffResponse,
    LogoffResponseRepr,
    Command::Logoff,
    "SMB2 LOGOFF response"
);

#[cfg(test)]
mod request {
    use super::*;
    crate::msg::simple4_tests!(LogoffRequest, LogoffRequestRepr, Command::Logoff);
}

#[cfg(test)]
mod response {
    use super::*;
    crate::msg::simple4_tests!(LogoffResponse, LogoffResponseRepr, Command::Logoff);
}
