"""Re-encodes the oracle matches.json.gz files compactly for the test suite.

Each module set (matched, quantized, attention_kv) becomes a bitset over the
modules of the tree it was computed on (tree.json for "before",
linearized.json.gz for "after_head"), bit i = module i, least significant bit
first, base64-encoded. Lossless: every name is checked to exist.
Usage: python3 encode-oracle-matches.py SHARED_ORACLE_DIR TEST_ORACLE_DIR
"""
import base64, gzip, json, os, sys

src, dst = sys.argv[1], sys.argv[2]


def bitset(names, index, size):
    bits = bytearray((size + 7) // 8)
    for n in names:
        i = index[n]
        bits[i >> 3] |= 1 << (i & 7)
    assert sum(bin(b).count("1") for b in bits) == len(names)
    return base64.b64encode(bytes(bits)).decode("ascii")


for model in sorted(os.listdir(src)):
    tree = json.load(open(f"{src}/{model}/tree.json"))
    lin = json.load(gzip.open(f"{src}/{model}/linearized.json.gz"))
    trees = {"before": tree["modules"], "after_head": lin["modules"]}
    out = {}
    for rid, r in json.load(gzip.open(f"{src}/{model}/matches.json.gz")).items():
        out[rid] = {"targets": r["targets"], "ignore": r["ignore"]}
        for phase, modules in trees.items():
            index = {name: i for i, (name, _) in enumerate(modules)}
            x = r[phase]
            out[rid][phase] = {k: bitset(x[k], index, len(modules)) for k in ("matched", "quantized", "attention_kv")}
            out[rid][phase]["log"] = x["log"]
    os.makedirs(f"{dst}/{model}", exist_ok=True)
    with gzip.open(f"{dst}/{model}/matches.json.gz", "wt", compresslevel=9) as f:
        json.dump(out, f, separators=(",", ":"))
    with gzip.open(f"{dst}/{model}/linearized.json.gz", "wt", compresslevel=9) as f:
        json.dump({"replaced": lin["replaced"], "modules": lin["modules"]}, f, separators=(",", ":"))
