#!/usr/bin/python3
"""The man pages against the programs they describe (meson test man_pages).

Each page built by pandoc (docs/man/meson.build) is rendered by `man -l`
at 80 columns, must render without a word on stderr, and must start with
its NAME line. Then what it documents is compared with what the built
binaries say about themselves, so that an option added later without a line
in its page fails here:

  ringmaild, smtp-blaster   every option of --help in the OPTIONS section
  ringmail                  every option of `ringmail --help` in OPTIONS;
                            every command (`ringmail CMD --help`, and
                            `ringmail queue CMD --help`) has its own
                            subsection under COMMANDS holding each of its
                            options
  ringmail-sendmail         every option its argument parser takes
                            (tools/sendmail.cc) and, once it has one, every
                            option of its --help, in OPTIONS
  ringmail.toml             every section and key that `ringmail
                            config-show` prints, in that section's
                            subsection, with the default it prints

Usage: man_pages_test.py --man MAN --source-root DIR
           --page KIND PAGE BINARY [--page ...]
KIND is ringmaild, ringmail, ringmail-sendmail, smtp-blaster or
ringmail.toml (whose BINARY is ringmail). Exit 77 (skipped) without `man`.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

failures = []
checks = 0


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        failures.append(what)
    return ok


def run(cmd, cwd, env=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd, env=env)


# --- the rendered page ------------------------------------------------------

DASHES = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-",
                        "\u2212": "-", "\u2018": "'", "\u2019": "'", "\u00a0": " "})


def render(man, page, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "MAN"))}
    env.update({"MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat", "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8"})
    r = run([man, "-P", "cat", "-l", page], cwd, env)
    check(r.returncode == 0, f"{page}: man -l exited {r.returncode}: {r.stderr.strip()}")
    check(r.stderr.strip() == "", f"{page}: man -l said on stderr: {r.stderr.strip()}")
    text = re.sub(r".\x08", "", r.stdout)          # overstrike bold/underline
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)      # SGR
    return text.translate(DASHES)


def sections(text):
    """{SECTION: {SUBSECTION or "": text}}. In man's output a section
    heading starts in column 0, a subsection heading in column 3. A line
    broken after a hyphen (hyphenation is off, so only an explicit one:
    `--domains-` / `dir`) is joined again."""
    out = {}
    sec, sub = None, ""
    for line in text.splitlines():
        if line and not line[0].isspace():
            sec, sub = line.strip(), ""
            out.setdefault(sec, {})[sub] = ""
            continue
        if sec is None:
            continue
        if re.match(r"^ {3}\S", line):
            sub = line.strip()
            out[sec][sub] = ""
            continue
        out[sec][sub] += line + "\n"
    for s in out.values():
        for k in s:
            s[k] = re.sub(r"(\w-)\n[ \t]*", r"\1", s[k])
    return out


def whole(sec):
    return "\n".join([k + "\n" + v for k, v in sec.items()])


def terms(text):
    """The entries of the definition lists (.TP): a line 7 columns in
    after a blank line, starting with a dash ("-c FILE, --config FILE", or
    "--json Print ..." when the term is short enough to share its line)."""
    lines = text.split("\n")
    return "\n".join(l for prev, l in zip([""] + lines, lines)
                     if prev.strip() == "" and re.match(r"^ {7}-", l))


def has_option(text, opt, attached=False):
    """`opt` as a word of its own (--size is not found in --size-min); with
    attached, a placeholder in capitals may follow (-qRDOMAIN, -oOPTION)."""
    tail = r"(?![a-z0-9_-])" if attached else r"(?![\w-])"
    return re.search(r"(?<![\w-])" + re.escape(opt) + tail, text) is not None


# --- what the binaries say --------------------------------------------------

def help_of(binary, args, cwd):
    """(options, subcommands) of a CLI11 --help, -h/--help left out."""
    r = run([binary, *args, "--help"], cwd)
    if not check(r.returncode == 0,
                 f"{os.path.basename(binary)} {' '.join(args)} --help exited {r.returncode}"):
        return None, None
    opts, subs, block = [], [], None
    for line in r.stdout.splitlines():
        if re.match(r"^\S.*:$", line):
            block = line[:-1]
            continue
        m = re.match(r"^  (\S+)", line)
        if not m:
            continue
        if block == "Options" and m.group(1).startswith("-"):
            opts += [o for o in m.group(1).split(",") if o.startswith("-")]
        elif block == "Subcommands":
            subs.append(m.group(1))
    return [o for o in opts if o not in ("-h", "--help")], subs


def generic_help_options(binary, cwd):
    """Options in a --help of any layout (ringmail-sendmail's, once it has
    one): the words that start a line and begin with a dash. None when the
    program has no --help."""
    r = run([binary, "--help"], cwd)
    if r.returncode != 0:
        return None
    opts = set()
    for line in (r.stdout + r.stderr).splitlines():
        m = re.match(r"^\s+(-[^\s,]+(?:,\s*-[^\s,]+)*)", line)
        if m:
            opts |= {re.sub(r"[\[<=].*$", "", o.strip()) for o in m.group(1).split(",")}
    return {o for o in opts if o not in ("-h", "--help", "-", "")}


# --- one check per kind of page ---------------------------------------------

def check_name(page, secs, names):
    body = secs.get("NAME", {}).get("", "").strip()
    check(body.startswith(names + " - "),
          f"{page}: NAME should start '{names} - ', is '{body[:60]}'")


def check_options_section(page, secs, options, attached=False):
    """Each option an entry of OPTIONS; with attached (the sendmail flags
    that take a value in the same word, or name a family such as -o...),
    named anywhere in it."""
    opts = whole(secs.get("OPTIONS", {}))
    check(opts != "", f"{page}: no OPTIONS section")
    where = opts if attached else terms(opts)
    for o in options:
        check(has_option(where, o, attached),
              f"{page}: option {o} is not {'in' if attached else 'an entry of'} OPTIONS")


def check_ringmail(page, secs, binary, cwd):
    top, cmds = help_of(binary, [], cwd)
    if top is None:
        return
    check_options_section(page, secs, top)
    commands = secs.get("COMMANDS", {})
    check(commands != {}, f"{page}: no COMMANDS section")
    # A subsection heading may name several commands: "queue flush, queue hold".
    titled = {}
    for title, text in commands.items():
        for name in title.split(", "):
            titled[name] = text
    leaves = []
    todo = [[c] for c in cmds]
    while todo:
        path = todo.pop(0)
        opts, subs = help_of(binary, path, cwd)
        if opts is None:
            continue
        if subs:
            todo += [path + [s] for s in subs]
        else:
            leaves.append((path, opts))
    check(len(leaves) >= 20, f"{page}: only {len(leaves)} commands found in ringmail --help")
    for path, opts in leaves:
        name = " ".join(path)
        if not check(name in titled, f"{page}: no subsection for `ringmail {name}`"):
            continue
        for o in opts:
            check(has_option(terms(titled[name]), o),
                  f"{page}: option {o} of `ringmail {name}` is not an entry of its subsection")


def sendmail_parser_options(source_root):
    """The flags tools/sendmail.cc's parse_args() takes: a == "-t",
    flag == 'f', a.rfind("-qR", 0) == 0."""
    path = os.path.join(source_root, "tools", "sendmail.cc")
    with open(path, encoding="utf-8") as f:
        src = f.read()
    m = re.search(r"bool parse_args\(.*?\n}\n", src, re.S)
    if not check(m is not None, f"{path}: parse_args() not found"):
        return set(), set()
    body = m.group(0)
    exact = set(re.findall(r'\ba == "(-[^"]*)"', body))
    prefixed = {"-" + c for c in re.findall(r"\bflag == '(.)'", body)}
    prefixed |= set(re.findall(r'\ba\.rfind\("(-[^"]+)", 0\) == 0', body))
    return exact, prefixed


def check_sendmail(page, secs, binary, source_root, cwd):
    exact, prefixed = sendmail_parser_options(source_root)
    check(len(exact) + len(prefixed) >= 10,
          f"{page}: only {sorted(exact | prefixed)} found in tools/sendmail.cc's parse_args")
    helped = generic_help_options(binary, cwd) or set()
    check_options_section(page, secs, sorted(exact | helped))
    check_options_section(page, secs, sorted(prefixed), attached=True)


def config_show(binary, toml, cwd):
    path = os.path.join(cwd, "check.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(toml)
    r = run([binary, "config-show", "--config", path], cwd)
    if not check(r.returncode == 0, f"ringmail config-show exited {r.returncode}: {r.stderr}"):
        return []
    out, section = [], "Top-level keys"
    for line in r.stdout.splitlines():
        if re.match(r"^\[.*\]$", line):
            section = line
        elif m := re.match(r"^(\w+) = (.*)$", line):
            out.append((section, m.group(1), m.group(2)))
        elif m := re.match(r"^# (\w+) is set", line):
            out.append((section, m.group(1), None))
    return out


MINIMAL = """hostname = "mx.example.test"
data_dir = "/nonexistent/ringmail"
local_domains = ["example.test"]
[[listener]]
address = "127.0.0.1:2525"
[[outbound.route]]
domain = "example.net"
"""
# Every table the parser knows, each key with a value that is not the default.
FULL = MINIMAL + """next_hop = "smtp.provider.example:587"
tls = "verify"
ca_file = "/etc/ssl/ca.pem"
auth_user = "me@example.com"
auth_password = "secret"
connections = 2
messages_per_connection = 3
messages_per_minute = 4
[[api.token]]
name = "billing"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
scopes = ["inject"]
sender_domains = ["example.test"]
[[events.webhook]]
name = "crm"
url = "http://127.0.0.1:9/"
types = ["Bounce"]
batch_size = 5
timeout_s = 3
secret = "k"
max_backoff_s = 60
[events.amqp]
url = "amqp://u:p@127.0.0.1:9/v"
exchange = "x"
routing_key = "k"
types = ["Delivery"]
batch_size = 5
timeout_s = 3
max_backoff_s = 60
"""
# Required, or given above, or resolved at start: no default to show.
NO_DEFAULT = {("Top-level keys", "hostname"), ("Top-level keys", "data_dir"),
              ("Top-level keys", "local_domains"), ("Top-level keys", "threads"),
              ("[[listener]]", "address"), ("[[outbound.route]]", "domain")}


def check_toml(page, secs, binary, cwd):
    keys = secs.get("KEYS", {})
    check(keys != {}, f"{page}: no KEYS section")
    full = config_show(binary, FULL, cwd)
    check(len(full) >= 70, f"{page}: only {len(full)} keys from ringmail config-show")
    for section, key, _ in full:
        text = keys.get(section)
        if not check(text is not None, f"{page}: no subsection {section}"):
            continue
        check(re.search(r"^ {7}" + re.escape(key) + r"( |$)", text, re.M) is not None,
              f"{page}: key {key} is not an entry of {section}")
    for section, key, value in config_show(binary, MINIMAL, cwd):
        if (section, key) in NO_DEFAULT or value is None or section not in keys:
            continue
        check(re.search(r"^ {7}" + re.escape(f"{key} = {value}") + r"\s*$", keys[section],
                        re.M) is not None,
              f"{page}: {section} {key}: the default is {value} (ringmail config-show)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--man", required=True)
    ap.add_argument("--source-root", required=True)
    ap.add_argument("--page", nargs=3, action="append", required=True,
                    metavar=("KIND", "PAGE", "BINARY"))
    a = ap.parse_args()
    a.source_root = os.path.abspath(a.source_root)
    if not os.path.exists(a.man):
        print(f"{a.man} not found (install man-db): skipped")
        return 77
    # meson gives paths relative to the build directory, where we start;
    # the programs run in an empty directory (not a ringmail checkout).
    pages = [(k, os.path.abspath(p), os.path.abspath(b)) for k, p, b in a.page]
    with tempfile.TemporaryDirectory() as cwd:
        os.environ.pop("RINGMAIL_CONFIG", None)
        for kind, page, binary in pages:
            name = os.path.basename(page)
            secs = sections(render(a.man, page, cwd))
            if kind == "ringmail.toml":
                check_name(name, secs, "ringmail.toml")
                check_toml(name, secs, binary, cwd)
            elif kind == "ringmail":
                check_name(name, secs, "ringmail")
                check_ringmail(name, secs, binary, cwd)
            elif kind == "ringmail-sendmail":
                check_name(name, secs, "ringmail-sendmail, mailq")
                check_sendmail(name, secs, binary, a.source_root, cwd)
            else:
                check_name(name, secs, kind)
                opts, _ = help_of(binary, [], cwd)
                check_options_section(name, secs, (opts or []) + ["-h", "--help"])
    for f in failures:
        print("FAIL " + f)
    print(f"man pages: {checks - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
