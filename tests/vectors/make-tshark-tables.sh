#!/usr/bin/env bash
# Decode every vector in this folder with Wireshark's dissectors (tshark) and
# write tshark/<vector>.tsv: one row per NBSS frame, both directions, with the
# fields crates/smb-wire/tests/real_vectors.rs compares against smb-wire.
# These tables are the independent oracle: they come from tshark, not from us.
#
# Needs: tshark (Debian package tshark), python3. Usage: tests/vectors/make-tshark-tables.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
mkdir -p tshark
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# tshark field -> our column name. Multi-valued fields come comma-separated.
FIELDS=(
    ip.src:dir
    smb.dialect.name:smb1_dialects
    smb2.protocol_id:protocol_id
    smb2.cmd:cmd
    smb2.flags.response:response
    smb2.flags.async:async
    smb2.flags.chained:chained
    smb2.flags.signature:signed
    smb2.nt_status:status
    smb2.msg_id:msg_id
    smb2.sesid:session_id
    smb2.tid:tree_id
    smb2.aid:async_id
    smb2.credit.charge:credit_charge
    smb2.credits.requested:credits_requested
    smb2.credits.granted:credits_granted
    smb2.dialect:dialects
    smb2.negotiate_context.type:negotiate_contexts
    smb2.olb.length:buffer_lengths
    ntlmssp.messagetype:ntlmssp_type
    smb2.share_type:share_type
    smb2.filename:filename
    smb2.fid:file_id
    smb2.ioctl.function:ctl_code
    smb2.max_ioctl_out_size:max_output
    smb2.read_length:read_length
    smb2.write_length:write_length
    smb2.file_offset:file_offset
    smb2.header.transform.msg_size:transform_msg_size
    smb2.tree:tree
    smb2.sec_mode:security_mode
    smb2.session_flags:session_flags
)
args=()
header="index"
for f in "${FIELDS[@]}"; do
    args+=(-e "${f%%:*}")
    header+=$'\t'"${f##*:}"
done

for c2s in *.c2s.bin; do
    base="${c2s%.c2s.bin}"
    python3 to_pcap.py "$base" "$TMP/$base.pcap"
    {
        echo "$header"
        tshark -r "$TMP/$base.pcap" -T fields -E separator=/t -E occurrence=a -E aggregator=, "${args[@]}" 2>/dev/null |
            awk -F'\t' 'BEGIN { OFS = "\t"; c = 0; s = 0 }
                {
                    if ($1 == "127.0.0.1") { $1 = "c2s"; i = c++ } else { $1 = "s2c"; i = s++ }
                    # $4 cmd, $5 response. tshark copies the share type and file name of
                    # earlier frames into later ones; keep them only where they are on the wire:
                    # share_type ($21) on TREE_CONNECT responses, filename ($22) on CREATE requests,
                    # tree ($30) on TREE_CONNECT requests.
                    if (!($4 == "3" && $5 == "1")) { $21 = "" }
                    if (!($4 == "3" && $5 == "0")) { $30 = "" }
                    if (!($4 == "5" && $5 == "0")) { $22 = "" }
                    print i, $0
                }'
    } >"tshark/$base.tsv"
done
tshark --version | head -1 >tshark/VERSION
ls -l tshark
