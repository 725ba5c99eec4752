#!/usr/bin/env python3
"""The layout rules of docs/ARCHITECTURE.md, checked on the source tree.

Fails (exit 1, one line per finding) when:
- a .c or .h file under src/, unwind/, symbolize/ or cmd/ is over MAX_FILE_LINES lines, or a
  top-level function in one is over MAX_FUNCTION_LINES lines (from the line naming it to its
  closing brace), unless EXCEPTIONS names it with a reason;
- an exception no longer applies (the file or function is back under the limit, or gone);
- a file tracked by git mentions a document outside the repository (FORBIDDEN);
- a source file includes a project header of a layer it may not include: the rule is
  base <- target <- {unwind, symbolize, diagnose} <- {dump, profile} <- serve <- cmd, and a
  layer may include its own headers and those of every layer below it.

Run from anywhere: `python3 tests/check_layout.py [--all]` (--all also lists what the
exceptions excuse). tests/integration/test_layout.py runs it as a test.
"""
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

MAX_FILE_LINES = 800
MAX_FUNCTION_LINES = 120
SOURCE_DIRS = ("src", "unwind", "symbolize", "cmd")

# What is allowed over a limit, and why: "path" for a file, "path:function" for a function.
EXCEPTIONS = {
}

# Split so that this file does not mention them itself.
FORBIDDEN = ("../" + "shared", "SPEC" + ".md", "STYLE" + ".md")

# Each layer's folder and the layers below it (which it may include).
LAYER_OF_DIR = {
    "src/base": "base", "src/target": "target", "unwind": "unwind", "symbolize": "symbolize",
    "src/diagnose": "diagnose", "src/dump": "dump", "src/profile": "profile",
    "src/serve": "serve", "cmd": "cmd", "src/agent": "agent", "src/inject": "inject",
    "src/golang": "golang",
}
BELOW = {
    "base": set(),
    # The allocation sampler loaded into targets: it stands alone; its agent_proto.h is the
    # contract with the profile layer.
    "agent": set(),
    "target": {"base"},
    "unwind": {"base", "target"},
    "symbolize": {"base", "target"},
    "diagnose": {"base", "target"},
    "inject": {"base", "target", "unwind", "symbolize"},
    "golang": {"base", "target", "unwind", "symbolize", "diagnose"},
    "dump": {"base", "target", "unwind", "symbolize", "diagnose", "golang"},
    "profile": {"base", "target", "unwind", "symbolize", "diagnose", "golang", "inject", "agent"},
}
BELOW["serve"] = BELOW["profile"] | {"profile", "dump"}
BELOW["cmd"] = BELOW["serve"] | {"serve"}
# Headers generated into the build tree: config.h is for every layer; profile.pb-c.h is
# generated from src/profile/profile.proto.
GENERATED = {"config.h": None, "profile.pb-c.h": "profile"}


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=str(ROOT), check=True,
                         stdout=subprocess.PIPE).stdout.decode()
    return [p for p in out.split("\0") if p]


def layer_of(path):
    d = os.path.dirname(path)
    return LAYER_OF_DIR.get(d)


def strip_comments_and_strings(text):
    """The text with comments, string and character literals blanked, newlines kept."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'',
                  blank, text, flags=re.S)


NOT_A_NAME = {"__attribute__", "__attribute", "typeof", "__typeof__", "if", "while", "for",
              "switch", "return", "sizeof"}


def functions(text):
    """(name, first line, lines) of each top-level function body in C source text."""
    code = strip_comments_and_strings(text)
    # Preprocessor lines do not count towards headers (a macro's braces are not a function).
    code = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", lambda m: re.sub(r"[^\n]", " ", m.group(0)),
                  code, flags=re.M)
    found = []
    depth = 0
    header_start = 0
    body_start = None
    for i, c in enumerate(code):
        if c == "{":
            if depth == 0:
                header = code[header_start:i]
                calls = [m for m in re.finditer(r"(\w+)\s*\(", header)
                         if m.group(1) not in NOT_A_NAME]
                if calls and "=" not in header.split("(")[0]:
                    # The name is the first identifier that opens a parameter list.
                    m = calls[0]
                    line = code.count("\n", 0, header_start + m.start()) + 1
                    body_start = (m.group(1), line)
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                if body_start:
                    end = code.count("\n", 0, i) + 1
                    found.append((body_start[0], body_start[1], end - body_start[1] + 1))
                body_start = None
                header_start = i + 1
        elif c == ";" and depth == 0:
            header_start = i + 1
    return found


def check_sizes(files):
    """Findings and excused items for the file and function limits."""
    findings, excused, over = [], [], set()
    for path in files:
        if not path.startswith(tuple(d + "/" for d in SOURCE_DIRS)):
            continue
        if not path.endswith((".c", ".h")):
            continue
        text = (ROOT / path).read_text(errors="replace")
        n = text.count("\n")
        if n > MAX_FILE_LINES:
            over.add(path)
            msg = "%s: %d lines (limit %d)" % (path, n, MAX_FILE_LINES)
            (excused if path in EXCEPTIONS else findings).append(msg)
        for name, line, length in functions(text):
            if length > MAX_FUNCTION_LINES:
                key = "%s:%s" % (path, name)
                over.add(key)
                msg = "%s:%d: %s: %d lines (limit %d)" % (path, line, name, length,
                                                          MAX_FUNCTION_LINES)
                (excused if key in EXCEPTIONS else findings).append(msg)
    for key in sorted(set(EXCEPTIONS) - over):
        findings.append("%s: listed in EXCEPTIONS but no longer over the limit" % key)
    return findings, excused


def check_forbidden(files):
    findings = []
    for path in files:
        try:
            text = (ROOT / path).read_text(errors="replace")
        except (OSError, IsADirectoryError):
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for word in FORBIDDEN:
                if word in line:
                    findings.append("%s:%d: mentions %s, a document outside the repository"
                                    % (path, lineno, word))
    return findings


def check_includes(files):
    findings = []
    header_layer = dict((h, l) for h, l in GENERATED.items())
    for path in files:
        if path.endswith(".h") and layer_of(path):
            header_layer[os.path.basename(path)] = layer_of(path)
    for path in files:
        layer = layer_of(path)
        if not layer or not path.endswith((".c", ".h")):
            continue
        text = (ROOT / path).read_text(errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if not m:
                continue
            name = os.path.basename(m.group(1))
            if name not in header_layer:
                findings.append("%s:%d: includes \"%s\", which is no project header"
                                % (path, lineno, m.group(1)))
                continue
            target = header_layer[name]
            if target is None or target == layer or target in BELOW[layer]:
                continue
            findings.append("%s:%d: %s includes \"%s\" of %s, which is not below it"
                            % (path, lineno, layer, name, target))
    return findings


def main():
    files = tracked_files()
    sizes, excused = check_sizes(files)
    findings = sizes + check_forbidden(files) + check_includes(files)
    if "--all" in sys.argv[1:]:
        for e in excused:
            print("excused: %s" % e)
    for f in findings:
        print(f)
    print("layout: %d finding(s), %d excused" % (len(findings), len(excused)))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
