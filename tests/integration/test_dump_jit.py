#!/usr/bin/env python3
"""JIT code: a frame in anonymous executable memory is named from /tmp/perf-PID.map in dumps
and profiles (as perf does), the stack that ends there ends in an explicit [unknown] frame,
and anonymous memory prints as [anon]; without a map the frame is [anon]+0xoffset."""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402


def jit_frames(d):
    th = cplib.thread_by_name(d, "jit-read")
    return th["frames"]


def test_named_from_perf_map():
    with cplib.Target("jit_waits") as t:
        try:
            frames = jit_frames(cplib.dump_json(t.pid))
            funcs = [f["function"] for f in frames]
            check("jit_wait_for_input" in funcs, "JIT frame not named from the map", frames)
            jf = frames[funcs.index("jit_wait_for_input")]
            check(jf["module"] == "[anon]", "JIT frame's module", jf)
            check(funcs[-1] == "[unknown]", "stack does not end in [unknown]", funcs)
            text = cplib.run(["dump", "-p", t.pid], check_rc=0).stdout
            block = text[text.index('"jit-read"'):].split("\n\n")[0]
            check("jit_wait_for_input" in block, "text dump lacks the JIT name", block)
            check("[unknown]" in block, "text dump lacks the [unknown] frame", block)
            check("[[anon]]" not in text, "[[anon]] printed", text)
        finally:
            try:
                os.unlink("/tmp/perf-%d.map" % t.pid)
            except FileNotFoundError:
                pass


def test_without_map():
    with cplib.Target("jit_waits", "nomap") as t:
        frames = jit_frames(cplib.dump_json(t.pid))
        anon = [f for f in frames if f["module"] == "[anon]"]
        check(anon and anon[0]["function"] is None and anon[0]["offset"],
              "anonymous frame without a map", frames)
        check(frames[-1]["function"] == "[unknown]", "no [unknown] at the end", frames)
        text = cplib.run(["dump", "-p", t.pid], check_rc=0).stdout
        check("[[anon]]" not in text and "[anon]+0x" in text, "anon frame text", text)


def test_profile_names_jit_frames():
    """The same map names JIT frames in profiles (folded output: module names, no [[anon]])."""
    with cplib.Target("jit_waits", "spin") as t, tempfile.TemporaryDirectory() as tmp:
        try:
            out = os.path.join(tmp, "jit.folded")
            cplib.run(["attach", "-p", t.pid, "--seconds", "1", "--format", "folded",
                       "-o", out], check_rc=0)
            with open(out) as f:
                text = f.read()
            check("jit_spin_loop" in text, "JIT frame not named in the profile", text)
            check("[[anon]]" not in text, "[[anon]] in folded output", text)
        finally:
            try:
                os.unlink("/tmp/perf-%d.map" % t.pid)
            except FileNotFoundError:
                pass


if __name__ == "__main__":
    cplib.main(globals())
