//! SMB2 TREE_DISCONNECT request and response (MS-SMB2 2.2.11 and 2.2.12): both are a 4-byte body.

use crate::header::Command;

crate::msg::simple4!(
    TreeDisconnectRequest,
    TreeDisconnectRequestRepr,
    Command::TreeDisconnect,
    "SMB2 TREE_DISCONNECT request"
);
crate::msg::simple4!(
    TreeDisconnectResponse,
    TreeDisconnectResponseRepr,
    Command::TreeDisconnect,
    "SMB2 TREE_DISCONNECT response"
);

#[cfg(test)]
mod request {
    use super::*;
    crate::msg::simple4_tests!(
        TreeDisconnectRequest,
        TreeDisconnectRequestRepr,
        Command::TreeDisconnect
    );
}

#[cfg(test)]
mod response {
    use super::*;
    crate::msg::simple4_tests!(
        TreeDisconnectResponse,
        TreeDisconnectResponseRepr,
        Command::TreeDisconnect
    );
}
