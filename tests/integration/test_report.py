#!/usr/bin/env python3
"""cprof's pprof files checked by real readers, and `cprof report` on ours and on Go's.

The profile under test is the hand-built one of tests/unit/test_profile.c (two mappings,
inlined frames, special and kernel locations, several threads), which that test writes in
every format with `--write DIR`. It is checked by `go tool pprof` (no warnings allowed), by a
small protobuf decoder written here (pprof's validity rules), by xml.etree (the SVG) and by
`cprof report`. Go's own runtime/pprof output, from tests/targets/goprof, is read back too.
"""
import gzip
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

BUILD = pathlib.Path(os.environ.get("CPROF_BUILD") or pathlib.Path(cplib.CPROF).resolve().parent.parent)
TEST_PROFILE = BUILD / "tests" / "unit" / "test_profile"
WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-report-"))
GO_ENV = cplib.GO_ENV

_ours = None
_go = None


def ours():
    """Directory holding ours.{pb.gz,folded,txt,svg} from the unit test's hand-built profile."""
    global _ours
    if _ours is None:
        if not TEST_PROFILE.exists():
            cplib.skip("%s not built" % TEST_PROFILE)
        d = WORK / "ours"
        d.mkdir()
        p = subprocess.run([str(TEST_PROFILE), "--write", str(d)], capture_output=True,
                           text=True, timeout=120)
        check(p.returncode == 0, "test_profile --write failed", p.stdout, p.stderr)
        _ours = d
    return _ours


def go_profile():
    """A CPU profile written by Go's runtime/pprof (built from tests/targets/goprof)."""
    global _go
    if _go is None:
        if not shutil.which("go"):
            cplib.skip("go is not installed")
        d = WORK / "go"
        d.mkdir()
        exe = d / "goprof"
        p = subprocess.run(["go", "build", "-o", str(exe),
                            str(cplib.SRC / "tests" / "targets" / "goprof" / "main.go")],
                           capture_output=True, text=True, timeout=300, env=GO_ENV, cwd=str(d))
        check(p.returncode == 0, "go build of goprof failed", p.stderr)
        out = d / "go.pprof"
        p = subprocess.run([str(exe), str(out)], capture_output=True, text=True, timeout=300)
        check(p.returncode == 0 and "READY" in p.stdout, "goprof failed", p.stdout, p.stderr)
        _go = out
    return _go


def pprof_ok(*args):
    """go tool pprof ARGS must succeed without a word on stderr."""
    p = cplib.go_pprof(*args)
    check(p.returncode == 0, "go tool pprof %s exited %d" % (" ".join(map(str, args)), p.returncode),
          p.stderr[-2000:])
    check(p.stderr.strip() == "", "go tool pprof %s warned" % " ".join(map(str, args)), p.stderr)
    return p.stdout


# ---- a tiny protobuf decoder: enough of the wire format for profile.proto ----

def varint(buf, i):
    shift = v = 0
    while True:
        check(i < len(buf), "varint runs past the end")
        b = buf[i]
        i += 1
        v |= (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            return v, i
        check(shift < 70, "varint too long")


def fields(buf):
    """[(field number, wire type, value)]: ints for varints, bytes for length-delimited."""
    out = []
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 2:
            n, i = varint(buf, i)
            check(i + n <= len(buf), "length-delimited field past the end")
            v = buf[i:i + n]
            i += n
        elif wt == 1:
            v = int.from_bytes(buf[i:i + 8], "little")
            i += 8
        elif wt == 5:
            v = int.from_bytes(buf[i:i + 4], "little")
            i += 4
        else:
            raise cplib.Failure("bad wire type %d" % wt)
        out.append((num, wt, v))
    return out


def ints(fs, num):
    """Repeated integer field num, packed or not."""
    vals = []
    for n, wt, v in fs:
        if n != num:
            continue
        if wt == 0:
            vals.append(v)
        else:
            j = 0
            while j < len(v):
                x, j = varint(v, j)
                vals.append(x)
    return vals


def one(fs, num, default=0):
    vals = [v for n, _, v in fs if n == num]
    return vals[-1] if vals else default


def signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def decode_profile(path):
    data = pathlib.Path(path).read_bytes()
    check(data[:2] == b"\x1f\x8b", "%s is not gzipped" % path)
    top = fields(gzip.decompress(data))
    prof = {
        "strings": [v.decode("utf-8") for n, _, v in top if n == 6],
        "sample_type": [fields(v) for n, _, v in top if n == 1],
        "samples": [fields(v) for n, _, v in top if n == 2],
        "mappings": [fields(v) for n, _, v in top if n == 3],
        "locations": [fields(v) for n, _, v in top if n == 4],
        "functions": [fields(v) for n, _, v in top if n == 5],
        "period_type": [fields(v) for n, _, v in top if n == 11],
        "top": top,
    }
    return prof


# ---- the tests ----

def test_go_pprof_reads_ours():
    d = ours()
    pb = d / "ours.pb.gz"
    top = pprof_ok("-top", pb)
    for name in ("helper", "compute", "main", "__memcpy_avx_unaligned", "do_syscall_64",
                 "[truncated]"):
        check(re.search(r"\s%s(\s|$)" % re.escape(name), top, re.M), "-top lacks %s" % name, top)
    check("Type: cpu" in top, "-top type", top)
    check("lost samples: 7" in top, "-top lacks the lost-samples comment", top)

    raw = pprof_ok("-raw", pb)
    check("samples/count cpu/nanoseconds[dflt]" in raw, "sample types", raw)
    check("PeriodType: cpu nanoseconds" in raw and "Period: 10101010" in raw, "period", raw)
    check(re.search(r"^\s+1000 10101010000: ", raw, re.M), "the 1000-sample stack", raw)
    check(re.search(r"^\s+300 3030303000: ", raw, re.M), "the 300-sample stack", raw)
    check("thread:[worker]" in raw and "pid:[100] tid:[101]" in raw, "labels", raw)
    m = re.search(r"^1: 0x555555554000/0x555555558000/0x1000 (\S+) 0123abcd (.*)$", raw, re.M)
    check(m, "mapping 1 is not the main executable with exact start/limit/offset", raw)
    check(m.group(1).endswith("test_profile"), "mapping 1 file", m.group(1))
    check("[FN][FL][LN][IN]" in m.group(2), "main mapping flags", m.group(0))
    m = re.search(r"^2: 0x7ffff7dd0000/0x7ffff7f50000/0x26000 \S+libc.so.6\s+(.*)$", raw, re.M)
    check(m and m.group(1).strip() == "[FN]", "libc mapping: functions, no lines", raw)
    check("[kernel]" in raw, "kernel mapping", raw)
    # Inlined frames innermost first within one location.
    check(re.search(r"helper src/app.c:12 s=10\(_Z6helperv\)\n\s+compute src/app.c:22 s=20", raw),
          "inlined helper not listed before compute with lines and system name", raw)

    traces = pprof_ok("-traces", pb)
    check(re.search(r"thread:\s+worker", traces), "traces labels", traces)
    check(re.search(r"__memcpy_avx_unaligned\n\s+helper \(inline\)\n\s+compute\n\s+main", traces),
          "traces order", traces)

    lines = pprof_ok("-top", "-lines", pb)
    check(re.search(r"helper src/app.c:12", lines), "-lines lacks helper src/app.c:12", lines)
    check(re.search(r"main src/app.c:40", lines), "-lines lacks main src/app.c:40", lines)


def test_go_pprof_reads_anonymous_code():
    """Frames in anonymous memory (JIT code) or in a deleted binary must not make pprof warn
    about missing files."""
    d = ours()
    top = pprof_ok("-top", d / "anon.pb.gz")
    check("main" in top, "-top of the anonymous-code profile", top)
    raw = pprof_ok("-raw", d / "anon.pb.gz")
    check(re.search(r"^2: 0x7f0000000000/0x7f0000010000/0x0 \[anon\]", raw, re.M),
          "anonymous mapping not named [anon]", raw)
    check(re.search(r"^3: 0x7f1000000000/0x7f1000010000/0x2000 /nonexistent/\S+/deleted-app\s+\[FN\]$",
                    raw, re.M), "deleted binary's mapping", raw)


def test_protobuf_validity():
    d = ours()
    p = decode_profile(d / "ours.pb.gz")
    s = p["strings"]
    check(s and s[0] == "", "string_table[0] is not empty", s[:3])
    check(len(s) == len(set(s)), "duplicate strings",
          sorted(x for x in set(s) if s.count(x) > 1))

    def ids(msgs):
        got = [one(m, 1) for m in msgs]
        check(all(i != 0 for i in got), "zero id", got)
        check(len(got) == len(set(got)), "duplicate ids", got)
        return set(got)

    mapping_ids = ids(p["mappings"])
    location_ids = ids(p["locations"])
    function_ids = ids(p["functions"])
    check(len(mapping_ids) == 3, "mappings", mapping_ids)
    m1 = p["mappings"][0]
    check(one(m1, 1) == 1, "first mapping is not id 1")
    check(s[one(m1, 5)].endswith("/test_profile"), "mapping 1 is not the main executable",
          s[one(m1, 5)])
    check((one(m1, 2), one(m1, 3), one(m1, 4)) == (0x555555554000, 0x555555558000, 0x1000),
          "mapping 1 start/limit/offset not exact")
    check(s[one(m1, 6)] == "0123abcd", "build id")

    for loc in p["locations"]:
        mid = one(loc, 2)
        check(mid == 0 or mid in mapping_ids, "location refers to missing mapping %d" % mid)
        for n, _, v in loc:
            if n == 4:
                fid = one(fields(v), 1)
                check(fid in function_ids, "line refers to missing function %d" % fid)
    for fn in p["functions"]:
        for num in (2, 3, 4):
            check(one(fn, num) < len(s), "function string index out of range")

    types = [(s[one(t, 1)], s[one(t, 2)]) for t in p["sample_type"]]
    check(types == [("samples", "count"), ("cpu", "nanoseconds")], "sample types", types)
    check(s[one(p["top"], 14)] == "cpu", "default_sample_type is not cpu")
    pt = p["period_type"][0]
    check((s[one(pt, 1)], s[one(pt, 2)]) == ("cpu", "nanoseconds"), "period_type")
    check(one(p["top"], 12) == 10101010, "period")
    check(one(p["top"], 9) > 0 and one(p["top"], 10) == 2000000000, "time/duration")
    comments = [s[c] for c in ints(p["top"], 13)]
    check(any("lost samples: 7" in c for c in comments), "lost samples comment", comments)

    total = 0
    for smp in p["samples"]:
        vals = ints(smp, 2)
        check(len(vals) == len(types), "sample has %d values for %d types" % (len(vals), len(types)))
        check(vals[1] == vals[0] * 10101010, "cpu != count * period", vals)
        total += vals[0]
        for lid in ints(smp, 1):
            check(lid in location_ids, "sample refers to missing location %d" % lid)
        labels = {}
        for n, _, v in smp:
            if n == 3:
                lf = fields(v)
                labels[s[one(lf, 1)]] = (s[one(lf, 2)] if one(lf, 2) else None, one(lf, 3))
        check(set(labels) == {"thread", "tid", "pid"}, "labels", labels)
        check(labels["thread"][0] in ("worker", "other"), "thread label is a string", labels)
        check(labels["tid"][1] in (101, 102) and labels["pid"][1] == 100, "numeric labels", labels)
    check(total == 1415, "sample count %d" % total)


def test_report_on_ours():
    d = ours()
    p = cplib.run(["report", d / "ours.pb.gz"], check_rc=0)
    out = p.stdout
    check("      flat  flat%   sum%        cum   cum%" in out, "table header", out)
    check("Showing nodes accounting for 14.29s, 100% of 14.29s total" in out, "summary", out)
    check(re.search(r"^\s+10\.51s 73\.50% 73\.50%\s+13\.54s 94\.70%  helper \(inline\)$", out,
                    re.M),
          "helper row", out)
    check(out == (d / "ours.txt").read_text(), "report differs from the writer's own table")
    check(p.stderr == "", "stderr not empty", p.stderr)

    p = cplib.run(["report", d / "ours.pb.gz", "--top", "2"], check_rc=0)
    check("Showing top 2 nodes out of 8" in p.stdout, "--top 2", p.stdout)
    rows = [l for l in p.stdout.splitlines() if re.match(r"^\s+\S+\s+[\d.]+%", l)]
    check(len(rows) == 2, "--top 2 printed %d rows" % len(rows), p.stdout)

    p = cplib.run(["report", "--format", "folded", d / "ours.pb.gz"], check_rc=0)
    check(p.stdout == (d / "ours.folded").read_text(), "folded differs from the writer's", p.stdout)
    check("main;compute;helper;__memcpy_avx_unaligned 300\n" in p.stdout, "folded line", p.stdout)
    check("main;compute;helper 1040\n" in p.stdout, "identical stacks merged", p.stdout)

    # Standard input, and an uncompressed profile.
    with open(d / "ours.pb.gz", "rb") as f:
        p = cplib.run(["report", "-"], check_rc=0, stdin=f)
    check("helper" in p.stdout, "report - (stdin)", p.stdout)
    plain = WORK / "ours.pb"
    plain.write_bytes(gzip.decompress((d / "ours.pb.gz").read_bytes()))
    p = cplib.run(["report", plain], check_rc=0)
    check(p.stdout == (d / "ours.txt").read_text(), "uncompressed profile reads differently")


def test_report_on_go_profile():
    prof = go_profile()
    p = cplib.run(["report", prof], check_rc=0)
    check("main.burnCPU" in p.stdout, "Go profile table lacks main.burnCPU", p.stdout)
    row = re.search(r"^\s+(\S+)\s+([\d.]+)%\s+\S+\s+\S+\s+\S+\s+main\.burnCPU$", p.stdout, re.M)
    check(row and row.group(1) != "0", "main.burnCPU has no flat time", p.stdout)
    check("Type: cpu" in p.stdout, "Go profile type", p.stdout)

    folded = cplib.run(["report", "--format", "folded", prof], check_rc=0).stdout
    check(re.search(r"^runtime\.main;main\.main;main\.burnCPU(;\S+)* \d+$", folded, re.M),
          "Go stacks not folded root first", folded)
    ours_total = sum(int(l.rsplit(" ", 1)[1]) for l in folded.splitlines())

    # The same samples as Go's own reader counts.
    raw = pprof_ok("-raw", prof)
    go_total = sum(int(m.group(1)) for m in re.finditer(r"^\s+(\d+)\s+\d+: [\d ]+$", raw, re.M))
    check(ours_total == go_total and go_total > 0,
          "folded total %d != pprof's %d" % (ours_total, go_total))

    svg = cplib.run(["report", "--format", "svg", prof], check_rc=0).stdout
    root = ET.fromstring(svg)
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    check(any(t.startswith("main.burnCPU (") for t in titles), "SVG of Go profile", titles[:10])


def test_svg():
    d = ours()
    text = (d / "ours.svg").read_text()
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise cplib.Failure("SVG is not well-formed XML: %s" % e)
    ns = "{http://www.w3.org/2000/svg}"
    check(root.tag == ns + "svg", "root element", root.tag)
    scripts = list(root.iter(ns + "script"))
    check(len(scripts) == 1 and "function zoom" in scripts[0].text and
          "function search" in scripts[0].text and "unzoom" in scripts[0].text,
          "zoom/search script missing")
    titles = [t.text for t in root.iter(ns + "title")]
    check("helper (1340 samples, 94.70%)" in titles, "helper frame", titles)
    check("all (1415 samples, 100.00%)" in titles, "root frame", titles)
    check("__memcpy_avx_unaligned (300 samples, 21.20%)" in titles, "leaf frame", titles)
    # Self-contained: nothing fetched from anywhere.
    for el in root.iter():
        for k, v in el.attrib.items():
            check(not k.endswith("href"), "external reference %s=%s" % (k, v))
    check(not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), "URL in SVG")
    # Frames nest: each frame's samples fit inside the frame below it.
    frames = [(int(g.get("data-s")), int(g.get("data-n")), int(g.get("data-d")))
              for g in root.iter(ns + "g") if g.get("class") == "f"]
    check(len(frames) >= 8, "frames", frames)
    for s0, n0, d0 in frames:
        if d0 == 0:
            continue
        check(any(d1 == d0 - 1 and s1 <= s0 and s0 + n0 <= s1 + n1 for s1, n1, d1 in frames),
              "frame %r has no parent" % ((s0, n0, d0),))


# A minimal DOM for the flame graph's script, enough to run it under node: the elements of
# the SVG with attributes, text, listeners and getElementsByTagName.
SVG_HARNESS = r"""
const fs = require('fs');
const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
function El(tag, attrs, text) {
  this.tagName = tag; this.attrs = attrs || {}; this.textContent = text || '';
  this.children = []; this.style = {}; this.listeners = {};
}
El.prototype.getAttribute = function (k) { return k in this.attrs ? String(this.attrs[k]) : null; };
El.prototype.setAttribute = function (k, v) { this.attrs[k] = String(v); };
El.prototype.addEventListener = function (t, f) { (this.listeners[t] = this.listeners[t] || []).push(f); };
El.prototype.getElementsByTagName = function (t) {
  const out = [];
  (function walk(e) { e.children.forEach(function (c) { if (c.tagName === t) out.push(c); walk(c); }); })(this);
  return out;
};
El.prototype.fire = function (t) { (this.listeners[t] || []).forEach(function (f) { f({ preventDefault() {}, key: '' }); }); };
function build(n) { const e = new El(n.tag, n.attrs, n.text); e.children = n.children.map(build); return e; }
const root = build(spec.root);
const byId = {};
(function walk(e) { if (e.attrs.id) byId[e.attrs.id] = e; e.children.forEach(walk); })(root);
let onload = null, promptAnswer = '';
global.document = root;
root.getElementById = function (id) { return byId[id] || null; };
root.addEventListener = function () {};
global.window = { addEventListener(t, f) { if (t === 'load') onload = f; },
                  prompt() { return promptAnswer; }, alert(m) { throw new Error(m); } };
(0, eval)(spec.script);  // global scope, as in a browser
onload();
const fgFrames = root.getElementsByTagName('g').filter(g => g.attrs['class'] === 'f');
function find(name) {
  return fgFrames.find(g => g.getElementsByTagName('title')[0].textContent.startsWith(name + ' ('));
}
function state(g) {
  const r = g.getElementsByTagName('rect')[0];
  return { x: +r.attrs.x, w: +r.attrs.width, hidden: g.style.display === 'none',
           opacity: g.attrs.opacity || '1', label: g.getElementsByTagName('text')[0].textContent };
}
const out = {};
find('helper').fire('mouseover');
out.hover = byId.details.textContent;
find('compute').fire('click');
out.zoom = {};
['all', 'main', 'compute', 'helper', '__memcpy_avx_unaligned', '[truncated]'].forEach(n => out.zoom[n] = state(find(n)));
out.reset_visible = byId.reset.attrs.visibility;
byId.reset.fire('click');
out.unzoom = {};
['all', 'compute', '[truncated]'].forEach(n => out.unzoom[n] = state(find(n)));
out.reset_hidden = byId.reset.attrs.visibility;
promptAnswer = 'helper|memcpy';
byId.search.fire('click');
out.matched = byId.matched.textContent;
out.helper_fill = find('helper').getElementsByTagName('rect')[0].attrs.fill;
byId.search.fire('click');
out.cleared = byId.matched.textContent;
out.helper_fill_after = find('helper').getElementsByTagName('rect')[0].attrs.fill;
console.log(JSON.stringify(out));
"""


def svg_to_spec(root):
    ns = "{http://www.w3.org/2000/svg}"

    def conv(el):
        return {"tag": el.tag.replace(ns, ""), "attrs": dict(el.attrib), "text": el.text or "",
                "children": [conv(c) for c in el]}
    script = next(root.iter(ns + "script")).text
    return {"root": conv(root), "script": script}


def test_svg_script_runs():
    """The flame graph's script, run under node with a minimal DOM: hover, zoom, reset, search."""
    import json
    if not shutil.which("node"):
        cplib.skip("node is not installed: cannot run the SVG's script")
    d = ours()
    root = ET.fromstring((d / "ours.svg").read_text())
    spec = WORK / "svg.json"
    spec.write_text(json.dumps(svg_to_spec(root)))
    harness = WORK / "harness.js"
    harness.write_text(SVG_HARNESS)
    p = subprocess.run(["node", str(harness), str(spec)], capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "the SVG script failed under node", p.stderr[-3000:])
    r = json.loads(p.stdout)
    check(r["hover"] == "helper (1340 samples, 94.70%)", "hover details", r["hover"])
    z = r["zoom"]
    # Zoomed into compute: it and its callees span the full width (1180 px from x=10).
    for n in ("compute", "helper"):
        check(abs(z[n]["x"] - 10) < 0.01 and abs(z[n]["w"] - 1180) < 0.01 and not z[n]["hidden"],
              "%s not full width after zoom" % n, z[n])
    check(z["compute"]["label"] == "compute", "label after zoom", z["compute"])
    check(abs(z["__memcpy_avx_unaligned"]["w"] - 1180 * 300 / 1340) < 0.05,
          "callee width after zoom", z["__memcpy_avx_unaligned"])
    check(z["[truncated]"]["hidden"], "unrelated frame still shown after zoom", z["[truncated]"])
    check(not z["all"]["hidden"] and z["all"]["opacity"] == "0.5" and
          not z["main"]["hidden"], "ancestors not shown dimmed", z["all"], z["main"])
    check(r["reset_visible"] == "visible" and r["reset_hidden"] == "hidden", "reset button", r)
    u = r["unzoom"]
    check(abs(u["compute"]["w"] - 1180 * 1340 / 1415) < 0.05 and not u["[truncated]"]["hidden"],
          "reset zoom did not restore widths", u)
    check(r["matched"] == "Matched: 94.70%", "search matched % (nested matches once)", r["matched"])
    check(r["helper_fill"] == "rgb(230,0,230)", "match not highlighted", r["helper_fill"])
    check(r["cleared"].strip() == "" and r["helper_fill_after"] != "rgb(230,0,230)",
          "search not cleared", r)


def one_line_error(args, pattern, rc=1):
    """A run error is one line; a usage error (2) may add hints."""
    cplib.error_line(cplib.run(args), rc, pattern, hints=rc != 1)


def test_bad_inputs():
    d = ours()
    good = (d / "ours.pb.gz").read_bytes()
    cases = {
        "empty.pb.gz": b"",
        "truncated.pb.gz": good[:len(good) // 2],
        "corrupt.pb.gz": good[:40] + bytes(b ^ 0x5a for b in good[40:80]) + good[80:],
        "text.txt": b"this is a text file, not a profile\n" * 10,
        "random.bin": bytes((i * 197 + 11) % 256 for i in range(3000)),
        "truncated.pb": gzip.decompress(good)[:-7],
    }
    for name, data in cases.items():
        path = WORK / name
        path.write_bytes(data)
        one_line_error(["report", path], r"^cprof: %s: not a pprof profile: \S" % re.escape(str(path)))
    one_line_error(["report", WORK / "missing.pb.gz"],
                   r"^cprof: %s: cannot read: No such file" % re.escape(str(WORK / "missing.pb.gz")))
    one_line_error(["report", WORK], r"^cprof: %s: cannot read: Is a directory" % re.escape(str(WORK)))

    # Usage errors: exit 2.
    pb = d / "ours.pb.gz"
    one_line_error(["report"], r"^cprof: report: missing FILE", rc=2)
    one_line_error(["report", pb, "--top", "0"], r"^cprof: report: invalid --top '0'", rc=2)
    one_line_error(["report", pb, "--top", "x"], r"^cprof: report: invalid --top 'x'", rc=2)
    one_line_error(["report", pb, "--format", "pdf"], r"^cprof: report: invalid --format 'pdf'", rc=2)
    one_line_error(["report", pb, pb], r"^cprof: report: unexpected argument", rc=2)
    one_line_error(["report", pb, "--bogus"], r"^cprof: report: unknown option '--bogus'", rc=2)
    one_line_error(["report", pb, "--format", "folded", "--top", "3"], r"^cprof: report: --top", rc=2)
    p = cplib.run(["report", "--help"], check_rc=0)
    check("Examples:" in p.stdout and "--top" in p.stdout, "help text", p.stdout)
    # The help is printed as is, not as a printf format: no doubled percent signs.
    check("sum% is the running total of flat%." in p.stdout and "%%" not in p.stdout,
          "help text names the sum% and flat% columns", p.stdout)


if __name__ == "__main__":
    try:
        cplib.main(dict(globals()))
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
