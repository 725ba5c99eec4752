#!/usr/bin/env python3
"""The on-disk cache is trusted only when it is ours: a cache folder another user owns or may
write into, or a planted link inside it, turns the cache off for the run (`-v` says why); no
planted symbol is printed and nothing is created where a planted link points."""
import os
import pathlib
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cplib  # noqa: E402
from cplib import check  # noqa: E402

WORK = pathlib.Path(tempfile.mkdtemp(prefix="cprof-seccache-"))


def dump(pid, cache, *extra):
    env = dict(os.environ, CPROF_CACHE_DIR=str(cache))
    p = cplib.run(["dump", *extra, "-p", str(pid)], env=env, check_rc=0)
    return p.stdout, p.stderr


def planted_cache(pid):
    """A cache filled by a first dump, its function names then replaced by ATTACKER_FN."""
    cache = WORK / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    first, _ = dump(pid, cache)
    check("ATTACKER_FN" not in first, "the fixture already names ATTACKER_FN")
    files = list((cache / "sym1").iterdir())
    check(files, "the first dump wrote no cache file")
    for f in files:
        text = f.read_text(errors="replace")
        lines = [ln.split("\t")[0] + ("\tATTACKER_FN\x1f\x1f/etc/evil.c\x1f666\x1f1\x1f0"
                                       if "\t" in ln else "") for ln in text.split("\n")]
        f.write_text("\n".join(lines))
    return cache


def test_planted_symbols_need_an_untrusted_owner():
    """Control: the planted file in a cache of ours is used (the test can see a planted
    name); the same cache owned by another user, or writable by others, is not."""
    with cplib.Target("demo") as t:
        cache = planted_cache(t.pid)
        out, _ = dump(t.pid, cache)
        check("ATTACKER_FN" in out, "control: a planted name in our own cache is not used",
              out[:2000])
        cache = planted_cache(t.pid)
        os.chown(cache, 65534, 65534)
        out, err = dump(t.pid, cache, "-v")
        check("ATTACKER_FN" not in out and "evil.c" not in out,
              "a cache owned by another user was used", out[:2000])
        check("cache off for this run" in err and "owned by uid 65534" in err,
              "-v did not say why the cache is off", err)
        os.chown(cache, 0, 0)
        os.chmod(cache, 0o777)
        out, err = dump(t.pid, cache, "-v")
        check("ATTACKER_FN" not in out, "a cache writable by others was used", out[:2000])
        check("writable by group or others" in err, "-v did not say why", err)
        os.chmod(cache, 0o700)
        os.chmod(cache / "sym1", 0o770)
        out, err = dump(t.pid, cache)
        check("ATTACKER_FN" not in out, "a group-writable sym1 was used", out[:2000])
        cplib.assert_target_unharmed(t.pid)


def test_planted_link_is_not_followed():
    """sym1 -> /other/dir: nothing is created there, and the dump still names its frames."""
    other = WORK / "other"
    other.mkdir()
    cache = WORK / "linkcache"
    cache.mkdir(mode=0o700)
    os.symlink(other, cache / "sym1")
    with cplib.Target("demo") as t:
        out, err = dump(t.pid, cache, "-v")
        check(not os.listdir(other), "files created through a planted link",
              os.listdir(other))
        check("symbolic link" in err or "sym1" in err or "main" in out,
              "no dump", out[:1000], err)
        check(" main" in out or "main (" in out, "the dump lost its symbols", out[:2000])
        cplib.assert_target_unharmed(t.pid)


if __name__ == "__main__":
    try:
        cplib.main(globals())
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
