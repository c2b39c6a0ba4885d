#!/usr/bin/python3
"""Interop vectors for smb-rpc, made and checked by impacket (a real DCE/RPC + MS-SRVS stack).

  /usr/bin/python3 impacket_vectors.py gen     # impacket ENCODES bind + srvsvc requests -> vectors/*.bin
  cargo test -p smb-rpc --test impacket_vectors  with SMB_RPC_VECTOR_OUT=<this dir>/vectors/responses
                                               # our RpcPipe answers them -> vectors/responses/*.bin
  /usr/bin/python3 impacket_vectors.py check   # impacket DECODES our responses and checks them

The Rust test needs no python: it reads the committed vectors.
"""
import os
import struct
import sys

from impacket.dcerpc.v5 import rpcrt, srvs
from impacket.dcerpc.v5.ndr import NULL

HERE = os.path.dirname(os.path.abspath(__file__))
VEC = os.path.join(HERE, "vectors")
RESP = os.path.join(VEC, "responses")

NDR20 = ("8a885d04-1ceb-11c9-9fe8-08002b104860", "2.0")
NDR64 = ("71710533-BEBA-4937-8319-B5DBEF9CCC36", "1.0")


def fake_bind_ack(syntax):
    """A minimal bind_ack accepting context 0 with `syntax`, so that impacket's bind() returns."""
    ts = rpcrt.uuidtup_to_bin(syntax)
    addr = b"\\PIPE\\srvsvc\x00"
    body = struct.pack("<HHLH", 4280, 4280, 0x1234, len(addr)) + addr
    body += b"\x00" * ((4 - (16 + len(body)) % 4) % 4)
    body += struct.pack("<BBH", 1, 0, 0) + struct.pack("<HH", 0, 0) + ts
    hdr = struct.pack("<BBBB4sHHL", 5, 0, 12, 3, b"\x10\x00\x00\x00", 16 + len(body), 0, 1)
    return hdr + body


class CaptureTransport:
    """Duck-typed impacket transport that records what the client sends."""

    def __init__(self, ack):
        self.sent = []
        self.ack = ack

    def send(self, data, forceWriteAndx=0, forceRecv=0):
        self.sent.append(bytes(data))

    def recv(self, forceRecv=0, count=0):
        return self.ack

    def get_credentials(self):
        return ("", "", "", "", "", "", None, None)

    def doesSupportNTLMv2(self):
        return True


def requests():
    r = srvs.NetrShareEnum()
    r["ServerName"] = "\\\\127.0.0.1\x00"
    r["PreferedMaximumLength"] = 0xFFFFFFFF
    r["ResumeHandle"] = 0
    r["InfoStruct"]["Level"] = 1
    r["InfoStruct"]["ShareInfo"]["tag"] = 1
    r["InfoStruct"]["ShareInfo"]["Level1"]["Buffer"] = NULL
    yield "share_enum_1", r

    r = srvs.NetrSessionEnum()
    r["ServerName"] = NULL
    r["ClientName"] = NULL
    r["UserName"] = NULL
    r["InfoStruct"]["Level"] = 10
    r["InfoStruct"]["SessionInfo"]["tag"] = 10
    r["InfoStruct"]["SessionInfo"]["Level10"]["Buffer"] = NULL
    r["PreferedMaximumLength"] = 0xFFFFFFFF
    r["ResumeHandle"] = 0
    yield "session_enum_10", r

    r = srvs.NetrServerGetInfo()
    r["ServerName"] = "\\\\127.0.0.1\x00"
    r["Level"] = 102
    yield "server_get_info_102", r


def gen():
    os.makedirs(VEC, exist_ok=True)
    for name, syntax in (("ndr20", NDR20), ("ndr64", NDR64)):
        t = CaptureTransport(fake_bind_ack(syntax))
        dce = rpcrt.DCERPC_v5(t)
        dce.bind(srvs.MSRPC_UUID_SRVS, transfer_syntax=syntax)
        write(f"{name}_bind.bin", t.sent[0])
        ndr64 = dce.transfer_syntax == dce.NDR64Syntax
        assert ndr64 == (syntax == NDR64)
        for req_name, req in requests():
            if ndr64:
                req.changeTransferSyntax(dce.NDR64Syntax)
            t.sent.clear()
            dce.call(req.opnum, req)
            write(f"{name}_{req_name}.bin", b"".join(t.sent))
        # The same NetrShareEnum cut by impacket into 16-byte stub fragments.
        dce.set_max_fragment_size(16)
        t.sent.clear()
        _, req = next(requests())
        if ndr64:
            req.changeTransferSyntax(dce.NDR64Syntax)
        dce.call(req.opnum, req)
        assert len(t.sent) > 3
        write(f"{name}_share_enum_1_frag16.bin", b"".join(t.sent))
        dce.set_max_fragment_size(0)


def write(name, data):
    with open(os.path.join(VEC, name), "wb") as f:
        f.write(data)
    print(f"wrote {name} ({len(data)} bytes)")


def pdus(data):
    while data:
        frag_len = struct.unpack("<H", data[8:10])[0]
        yield data[:frag_len]
        data = data[frag_len:]


def stub_of(data):
    stub = b""
    for p in pdus(data):
        h = rpcrt.MSRPCRespHeader(p)
        assert h["type"] == rpcrt.MSRPC_RESPONSE, h["type"]
        stub += h["pduData"]
    return stub


def check():
    ok = 0
    for name in ("ndr20", "ndr64"):
        ndr64 = name == "ndr64"
        data = read(f"{name}_bind.bin")
        h = rpcrt.MSRPCHeader(data)
        assert h["type"] == rpcrt.MSRPC_BINDACK
        ack = rpcrt.MSRPCBindAck(h.getData())
        item = ack.getCtxItem(1)
        assert item["Result"] == 0, item["Result"]
        want = rpcrt.uuidtup_to_bin(NDR64 if ndr64 else NDR20)
        assert item["TransferSyntax"] == want
        assert ack["SecondaryAddr"].rstrip("\x00") == "\\PIPE\\srvsvc", ack["SecondaryAddr"]
        print(f"{name} bind_ack: accepted, max_tfrag={ack['max_tfrag']} sec_addr={ack['SecondaryAddr']!r}")

        for base in ("share_enum_1", "share_enum_1_frag16"):
            r = srvs.NetrShareEnumResponse(stub_of(read(f"{name}_{base}.bin")), isNDR64=ndr64)
            assert r["ErrorCode"] == 0
            names = [e["shi1_netname"][:-1] for e in r["InfoStruct"]["ShareInfo"]["Level1"]["Buffer"]]
            types = [e["shi1_type"] for e in r["InfoStruct"]["ShareInfo"]["Level1"]["Buffer"]]
            assert names == ["IPC$", "data"], names
            assert types[0] == 0x80000003, types
            print(f"{name} {base}: shares={names} types={[hex(t) for t in types]} total={r['TotalEntries']}")

        r = srvs.NetrSessionEnumResponse(stub_of(read(f"{name}_session_enum_10.bin")), isNDR64=ndr64)
        assert r["ErrorCode"] == 0
        buf = r["InfoStruct"]["SessionInfo"]["Level10"]["Buffer"]
        sess = [(e["sesi10_cname"][:-1], e["sesi10_username"][:-1], e["sesi10_idle_time"]) for e in buf]
        assert sess == [("10.0.0.5", "alice", 7), ("WS01", "bob", 50)], sess
        print(f"{name} session_enum_10: {sess}")

        r = srvs.NetrServerGetInfoResponse(stub_of(read(f"{name}_server_get_info_102.bin")), isNDR64=ndr64)
        assert r["ErrorCode"] == 0
        info = r["InfoStruct"]["ServerInfo102"]
        assert info["sv102_name"][:-1] == "SMBCORE"
        assert info["sv102_disc"] == 42, info["sv102_disc"]
        assert info["sv102_platform_id"] == 500
        print(f"{name} server_get_info_102: name={info['sv102_name'][:-1]} disc={info['sv102_disc']} "
              f"version={info['sv102_version_major']}.{info['sv102_version_minor']} type={info['sv102_type']:#x}")

        r = srvs.NetrSessionEnumResponse(stub_of(read(f"{name}_session_enum_10_anonymous.bin")), isNDR64=ndr64)
        assert r["ErrorCode"] == 5, r["ErrorCode"]
        print(f"{name} session_enum_10 as anonymous: ErrorCode={r['ErrorCode']} (ERROR_ACCESS_DENIED)")
        ok += 1
    print(f"impacket decoded all responses of {ok} transfer syntaxes")


def read(name):
    with open(os.path.join(RESP, name), "rb") as f:
        return f.read()


if __name__ == "__main__":
    {"gen": gen, "check": check}[sys.argv[1] if len(sys.argv) > 1 else "gen"]()
