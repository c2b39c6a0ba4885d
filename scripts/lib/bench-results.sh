# Shared by the benchmark scripts (bench-peers.sh, bench-encryption.sh): one JSON line per
# result, values read from smb-loadgen's JSON, and a short error line from a log.
# Source it; it defines functions only.

# json_row "NAME..." VALUE... KEY=VALUE... : a JSON object of the named positional values
# (as strings) and the KEY=VALUE pairs (values as JSON where they parse, else strings).
json_row() {
    python3 - "$@" <<'PYEOF'
import json, sys
names = sys.argv[1].split()
row = dict(zip(names, sys.argv[2:2 + len(names)]))
for kv in sys.argv[2 + len(names):]:
    k, v = kv.split("=", 1)
    try:
        row[k] = json.loads(v)
    except ValueError:
        row[k] = v
print(json.dumps(row))
PYEOF
}

# jget FILE EXPR: a value from a loadgen JSON file (python expression on j), or null.
jget() {
    python3 - "$1" "$2" <<'PYEOF'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
    print(json.dumps(eval(sys.argv[2], {"j": j})))
except Exception:
    print("null")
PYEOF
}

# last_line FILE: its last non-empty line, as a JSON string.
last_line() {
    python3 -c 'import json,sys; l=[x.strip() for x in open(sys.argv[1], errors="replace") if x.strip()]; print(json.dumps(l[-1][:160] if l else "no output"))' "$1"
}

# first_error LOG: the log's last line mentioning an error (or an NTSTATUS), as a JSON string.
first_error() {
    python3 -c 'import json,sys; l=[x.strip() for x in open(sys.argv[1], errors="replace") if "rror" in x or "refused" in x or "STATUS_" in x]; print(json.dumps(l[-1][:160] if l else "no result"))' "$1"
}
