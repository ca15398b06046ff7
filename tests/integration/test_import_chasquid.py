"""`ringmail import-chasquid`: a chasquid configuration directory (as an
operator has it: chasquid.conf, certs/, domains/ with a users file written
by chasquid-util, an aliases file and a DKIM key, hooks/) turned into a
ringmail one; the report of what has no equivalent; the files; and
ringmaild started on the result (listeners moved to free loopback ports)
authenticating chasquid's user over STARTTLS, delivering an alias and
refusing an unknown user. Error cases: no directory, no chasquid.conf, a
line that does not parse, an existing destination without --force."""
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from conftest import BACKEND, RINGMAILD, assert_config_checks, free_port
from test_tls import client_context, make_cert
from test_tools import RINGMAIL, tool

CHASQUID_USERS = Path(__file__).resolve().parent.parent / "data" / "chasquid-users"
PASSWORD = "secret"  # alice's in tests/data/chasquid-users
HOST = "mx.example.test"

CONF = """\
# chasquid.conf of a small installation
hostname: "mx.example.test"
max_data_size_mb: 20
smtp_address: ":25"
smtp_address: "mail.internal:2525"   # a host name: not mapped
submission_address: "127.0.0.1:587"
submission_address: '[::1]:587'
submission_over_tls_address: ":465"
monitoring_address: "127.0.0.1:1099"
mail_delivery_agent_bin: "maildrop"
mail_delivery_agent_args: ["-f", "%from%", "-d", "%to_user%"]
data_dir: "/var/lib/chasquid"
suffix_separators: "+-"
drop_characters: "._"
mail_log_path: "<syslog>"
dovecot_auth: true
haproxy_incoming: true
give_up_send_after: "30h"
max_queue_items: 500
"""


@pytest.fixture
def chasquid_dir(tmp_path):
    if not os.path.exists(RINGMAIL):
        pytest.skip(f"{RINGMAIL} not built")
    src = tmp_path / "chasquid"
    (src / "domains" / "example.test").mkdir(parents=True)
    (src / "domains" / "other.test").mkdir()
    (src / "chasquid.conf").write_text(CONF)
    users = src / "domains" / "example.test" / "users"
    shutil.copyfile(CHASQUID_USERS, users)
    users.chmod(0o640)
    (src / "domains" / "example.test" / "aliases").write_text(
        "# sales goes to alice\nsales: alice\npostmaster: alice\n")
    (src / "domains" / "example.test" / "notes.txt").write_text("not chasquid's\n")
    r = tool("dkim-keygen", "example.test", "--selector", "sel1", "--algo", "ed25519",
             "--domains-dir", str(src / "domains"))
    assert r.returncode == 0, r.stderr
    make_cert(src / "certs" / HOST, HOST, "fullchain.pem", "privkey.pem")
    # A certificate folder that is a link (to certbot's live/, as chasquid's
    # documentation suggests).
    make_cert(tmp_path / "letsencrypt" / "live" / "link.example.test", "link.example.test",
              "fullchain.pem", "privkey.pem")
    os.symlink("../../letsencrypt/live/link.example.test", src / "certs" / "link.example.test")
    (src / "hooks").mkdir()
    (src / "hooks" / "post-data").write_text("#!/bin/sh\n")
    return src


def run_import(src, out, *extra):
    return tool("import-chasquid", str(src), "--to", str(out), "--data-dir",
                str(out.parent / "data"), *extra)


def test_report_and_files(chasquid_dir, tmp_path):
    out = tmp_path / "out"
    r = run_import(chasquid_dir, out)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    data = tmp_path / "data"
    assert lines[:-1] == [
        "domains/example.test/notes.txt: not a file ringmail reads (users, aliases, "
        "dkim:<selector>.pem): not imported",
        "domains/other.test: no users file: nobody of this domain can authenticate (chasquid "
        "asked dovecot; ringmail cannot), and mail for any mailbox name there is taken",
        f"certs/link.example.test: a link to {tmp_path}/letsencrypt/live/link.example.test: "
        "the copy links there too (renewals are picked up)",
        "hooks/post-data: ringmail runs no hooks: not imported",
        'chasquid.conf:5: smtp_address "mail.internal:2525": \'mail.internal\' is a host name; '
        "ringmail listens on IP addresses (write one in the [[listener]]): not imported",
        'chasquid.conf:10: mail_delivery_agent_bin "maildrop" (-f %from% -d %to_user%): local '
        f"delivery is Maildir under data_dir ({data}/mail/<domain>/<user>/Maildir); for an MDA "
        "or Dovecot's LMTP set delivery in a domain's domain.toml (docs/aliases.md)",
        'chasquid.conf:12: data_dir "/var/lib/chasquid": chasquid\'s queue and domain records are '
        "not imported (let its queue empty before switching); ringmail's data_dir is " + str(data),
        'chasquid.conf:9: monitoring_address "127.0.0.1:1099": ringmaild has no monitoring HTTP '
        "server: not imported",
        'chasquid.conf:15: mail_log_path "<syslog>": ringmaild logs every event on stderr (the '
        "journal under systemd): not imported",
        "chasquid.conf:16: dovecot_auth: ringmaild authenticates against the domains' users files "
        "only: not imported",
        "chasquid.conf:17: haproxy_incoming: ringmaild does not read the PROXY protocol: not "
        "imported (clients behind HAProxy would all have its address)",
        "chasquid.conf:19: max_queue_items 500: ringmail's queue has no item limit: not imported",
    ]
    assert lines[-1] == (
        f"wrote {out}/ringmail.toml: 2 domains (1 users file, 1 DKIM key), 2 certificates, "
        f"6 listeners; check it with: ringmaild --check-config --config {out}/ringmail.toml")

    cfg = tomllib.loads((out / "ringmail.toml").read_text())
    assert cfg["hostname"] == HOST
    assert cfg["data_dir"] == str(data)
    assert cfg["domains_dir"] == str(out / "domains")
    assert cfg["local_domains"] == ["example.test", "other.test"]
    assert [(l["address"], l["kind"]) for l in cfg["listener"]] == [
        ("0.0.0.0:25", "smtp"), ("[::]:25", "smtp"),
        ("127.0.0.1:587", "submission"), ("[::1]:587", "submission"),
        ("0.0.0.0:465", "submissions"), ("[::]:465", "submissions")]
    assert cfg["tls"] == {"cert_dirs": [str(out / "certs")]}
    assert cfg["aliases"] == {"suffix_separators": "+-", "drop_characters": "._"}
    assert cfg["limits"] == {"message_bytes_max": 20 * 1024 * 1024}
    assert cfg["outbound"] == {"expire_s": 30 * 3600}

    # The files, byte for byte; secrets 0600.
    for rel, mode in [("domains/example.test/users", 0o600),
                      ("domains/example.test/aliases", 0o644),
                      ("domains/example.test/dkim:sel1.pem", 0o600),
                      (f"certs/{HOST}/fullchain.pem", None),
                      (f"certs/{HOST}/privkey.pem", 0o600)]:
        assert (out / rel).read_bytes() == (chasquid_dir / rel).read_bytes(), rel
        if mode is not None:
            assert stat.S_IMODE((out / rel).stat().st_mode) == mode, rel
    assert not (out / "domains" / "example.test" / "notes.txt").exists()
    assert (out / "domains" / "other.test").is_dir()
    link = out / "certs" / "link.example.test"
    assert link.is_symlink()
    assert os.readlink(link) == str(tmp_path / "letsencrypt" / "live" / "link.example.test")
    assert not (out / "hooks").exists()

    # The file loads.
    assert_config_checks(str(out / "ringmail.toml"))
    # And the tools read the same domains.
    r = tool("aliases-resolve", "Sales-news@example.test", "--config", str(out / "ringmail.toml"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "mailbox  alice@example.test\n"
    r = subprocess.run([RINGMAIL, "authenticate", "alice@example.test", "--password-stdin",
                        "--domains-dir", str(out / "domains")],
                       input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def loopback_config(out, tmp_path):
    """The imported file with its listeners moved to free 127.0.0.1 ports
    (one per kind; the others dropped) and DNS pointed at a closed port:
    tests only listen on loopback and ask no resolver outside."""
    text = (out / "ringmail.toml").read_text()
    ports = {}

    def repl(m):
        kind = m.group(2)
        if kind in ports:
            return ""
        ports[kind] = free_port(socket.AF_INET, "127.0.0.1")
        return f'[[listener]]\naddress = "127.0.0.1:{ports[kind]}"\nkind = "{kind}"\n'

    text, n = re.subn(r'\[\[listener\]\]\naddress = "([^"]*)"\nkind = "([^"]*)"\n', repl, text)
    assert n == 6 and set(ports) == {"smtp", "submission", "submissions"}, text
    text = text.replace("[outbound]\n", '[outbound]\ndns_servers = "127.0.0.1:9"\n')
    path = tmp_path / "loopback.toml"
    path.write_text(text)
    return path, ports


def wait_listening(proc, ports, log):
    deadline = time.monotonic() + 15
    for port in ports:
        while True:
            assert proc.poll() is None, f"ringmaild exited: {log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"port {port} not listening: {log.read_text()}"
                time.sleep(0.05)


def wait_files(d, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(d.glob("*")) if d.exists() else []
        if files:
            return files
        time.sleep(0.05)
    return []


def test_ringmaild_serves_the_imported_configuration(chasquid_dir, tmp_path):
    if not os.path.exists(RINGMAILD):
        pytest.skip(f"{RINGMAILD} not built")
    out = tmp_path / "out"
    r = run_import(chasquid_dir, out)
    assert r.returncode == 0, r.stderr
    config, ports = loopback_config(out, tmp_path)
    log = tmp_path / "ringmaild.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen([RINGMAILD, "--config", str(config), "--threads", "1",
                                 "--backend", BACKEND],
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
    try:
        wait_listening(proc, ports.values(), log)
        mail = tmp_path / "data" / "mail" / "example.test" / "alice" / "Maildir" / "new"
        cert_der = ssl.PEM_cert_to_DER_cert((chasquid_dir / "certs" / HOST / "fullchain.pem").read_text())

        # chasquid's user, chasquid's password, over STARTTLS with
        # chasquid's certificate.
        with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=10) as s:
            s.ehlo("client.example")
            assert not s.has_extn("auth")
            s.starttls(context=client_context())
            assert s.sock.getpeercert(binary_form=True) == cert_der
            s.ehlo("client.example")
            with pytest.raises(smtplib.SMTPAuthenticationError):
                s.login("alice@example.test", "wrong")
            code, _ = s.docmd("AUTH PLAIN " + __import__("base64").b64encode(
                b"\0alice@example.test\0" + PASSWORD.encode()).decode())
            assert code == 235
            s.sendmail("alice@example.test", ["alice@example.test"],
                       b"From: alice@example.test\r\nSubject: signed\r\n\r\nhello\r\n")
        [signed] = wait_files(mail)
        text = signed.read_text()
        assert "Subject: signed" in text
        # Signed with the imported DKIM key.
        assert re.search(r"DKIM-Signature: [^\n]*(\n\s[^\n]*)*\bs=sel1;", text), text

        # Implicit TLS on the submission_over_tls port.
        with smtplib.SMTP_SSL("127.0.0.1", ports["submissions"], timeout=10,
                              context=client_context()) as s:
            s.login("alice@example.test", PASSWORD)

        # Port 25: an alias (suffix separator '-', drop character '_' from
        # chasquid.conf) reaches alice; an unknown user gets 550.
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as s:
            s.ehlo("sender.example")
            assert s.docmd("MAIL FROM:<someone@sender.example>")[0] == 250
            code, msg = s.docmd("RCPT TO:<nobody@example.test>")
            assert code == 550, msg
            assert s.docmd("RCPT TO:<sa_les-news@example.test>")[0] == 250
            code, msg = s.data(b"Subject: for sales\r\n\r\nan order\r\n")
            assert code == 250, msg
        deadline = time.monotonic() + 15
        while len(list(mail.glob("*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        files = sorted(mail.glob("*"))
        assert len(files) == 2, files
        assert any("Subject: for sales" in f.read_text() for f in files)
        assert not (tmp_path / "data" / "mail" / "example.test" / "sales").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = "killed"
    assert rc == 0, log.read_text()


def test_defaults_systemd_and_parser(tmp_path):
    """chasquid's defaults (systemd sockets), text-format details (joined
    strings, ';', lists, escapes), and no certs/: no submissions listener."""
    if not os.path.exists(RINGMAIL):
        pytest.skip(f"{RINGMAIL} not built")
    src = tmp_path / "chasquid"
    (src / "domains" / "example.test").mkdir(parents=True)
    (src / "chasquid.conf").write_text(
        'hostname: "mx." \'example.test\';  # joined\n'
        'suffix_separators: "+\\x2d"\n'
        "mail_delivery_agent_args: []\n"
        "new_chasquid_setting: 7\n")
    out = tmp_path / "out"
    r = run_import(src, out)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    data = tmp_path / "data"
    assert lines[:-1] == [
        "domains/example.test: no users file: nobody of this domain can authenticate, and mail "
        "for any mailbox name there is taken",
        "chasquid.conf (chasquid's default): smtp_address \"systemd\": listening on 0.0.0.0:25 "
        "and [::]:25 (ringmail.socket's addresses: enable it to take the sockets from systemd)",
        "chasquid.conf (chasquid's default): submission_address \"systemd\": listening on "
        "0.0.0.0:587 and [::]:587 (ringmail.socket's addresses: enable it to take the sockets "
        "from systemd)",
        "chasquid.conf (chasquid's default): submission_over_tls_address \"systemd\": listening "
        "on 0.0.0.0:465 and [::]:465 (ringmail.socket's addresses: enable it to take the sockets "
        "from systemd)",
        "chasquid.conf (chasquid's default): mail_delivery_agent_bin \"maildrop\" (-f %from% -d "
        f"%to_user%): local delivery is Maildir under data_dir ({data}/mail/<domain>/<user>/"
        "Maildir); for an MDA or Dovecot's LMTP set delivery in a domain's domain.toml "
        "(docs/aliases.md)",
        "chasquid.conf (chasquid's default): data_dir \"/var/lib/chasquid\": chasquid's queue and "
        "domain records are not imported (let its queue empty before switching); ringmail's "
        f"data_dir is {data}",
        "chasquid.conf:4: new_chasquid_setting: not a chasquid setting ringmail knows: not imported",
        "certs/: missing: STARTTLS is not offered, and submission_over_tls listeners are left out",
    ]
    cfg = tomllib.loads((out / "ringmail.toml").read_text())
    assert cfg["hostname"] == "mx.example.test"
    assert cfg["aliases"]["suffix_separators"] == "+-"
    assert cfg["limits"]["message_bytes_max"] == 50 * 1024 * 1024  # chasquid's default
    assert cfg["outbound"]["expire_s"] == 20 * 3600  # chasquid's default give_up_send_after
    assert [(l["address"], l["kind"]) for l in cfg["listener"]] == [
        ("0.0.0.0:25", "smtp"), ("[::]:25", "smtp"),
        ("0.0.0.0:587", "submission"), ("[::]:587", "submission")]
    assert cfg["tls"] == {"cert_dirs": []}
    assert_config_checks(str(out / "ringmail.toml"))


def test_missing_directory_and_conf(tmp_path):
    if not os.path.exists(RINGMAIL):
        pytest.skip(f"{RINGMAIL} not built")
    r = tool("import-chasquid", str(tmp_path / "nosuch"), "--to", str(tmp_path / "out"))
    assert r.returncode == 1
    assert r.stderr == f"ringmail: import-chasquid: {tmp_path}/nosuch: not a directory\n"
    (tmp_path / "empty").mkdir()
    r = tool("import-chasquid", str(tmp_path / "empty"), "--to", str(tmp_path / "out"))
    assert r.returncode == 1
    assert r.stderr == (f"ringmail: import-chasquid: {tmp_path}/empty/chasquid.conf: not found "
                        f"(is {tmp_path}/empty chasquid's configuration directory?)\n")
    assert not (tmp_path / "out").exists()


def test_destination_exists_without_force(chasquid_dir, tmp_path):
    out = tmp_path / "out"
    assert run_import(chasquid_dir, out).returncode == 0
    users = out / "domains" / "example.test" / "users"
    users.write_text("changed by hand\n")
    before = (out / "ringmail.toml").read_text()
    (chasquid_dir / "chasquid.conf").write_text(CONF.replace("max_data_size_mb: 20", "max_data_size_mb: 30"))
    r = run_import(chasquid_dir, out)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == f"ringmail: import-chasquid: {out}/ringmail.toml exists (--force overwrites it)\n"
    assert (out / "ringmail.toml").read_text() == before
    assert users.read_text() == "changed by hand\n"
    # Only a copied file in the way is refused too.
    (out / "ringmail.toml").unlink()
    r = run_import(chasquid_dir, out)
    assert r.returncode == 1
    assert "exists (--force overwrites it)" in r.stderr
    assert not (out / "ringmail.toml").exists()
    r = run_import(chasquid_dir, out, "--force")
    assert r.returncode == 0, r.stderr
    assert "message_bytes_max = 31457280" in (out / "ringmail.toml").read_text()
    assert users.read_bytes() == CHASQUID_USERS.read_bytes()


@pytest.mark.parametrize("conf, error", [
    ('hostname: mx.example.test\n', "chasquid.conf:1: hostname: must be a quoted string"),
    ('hostname: "a.test"\n5: 3\n', "chasquid.conf:2: expected a field name, found '5'"),
    ('hostname: "mx"\nmax_data_size_mb: "20"\n', "chasquid.conf:2: max_data_size_mb: must be an integer"),
    ('\n\nhostname: "mx.example.test\n', "chasquid.conf:3: string not closed on its line"),
    ('dovecot_auth: yes\n', "chasquid.conf:1: dovecot_auth: must be true or false"),
    ('hostname: "a.test"\n# x\nhostname: "b.test"\n',
     "chasquid.conf:3: hostname: given twice (also on line 1)"),
    ('limits {\n  x: 1\n}\n', "chasquid.conf:1: limits: nested messages are not part of chasquid.conf"),
    ('hostname "a.test"\n', "chasquid.conf:1: hostname: expected ':' after the field name, found a string"),
    ('give_up_send_after: "3 days"\n',
     'chasquid.conf:1: give_up_send_after "3 days" is not a duration like 20h or 90m'),
    ('hostname: "not_a host"\n', "chasquid.conf:1: hostname 'not_a host' is not a valid host name "
     "(set hostname in chasquid.conf)"),
    ('hostname: "mx.example.test"\nsmtp_address: "mx:25"\nsubmission_address: "mx:587"\n'
     'submission_over_tls_address: "mx:465"\n',
     "no listener address could be imported (see the lines above)"),
])
def test_unusable_configuration(tmp_path, conf, error):
    if not os.path.exists(RINGMAIL):
        pytest.skip(f"{RINGMAIL} not built")
    src = tmp_path / "chasquid"
    src.mkdir()
    (src / "chasquid.conf").write_text(conf)
    r = run_import(src, tmp_path / "out")
    assert r.returncode == 1, r.stdout
    [line] = r.stderr.splitlines()
    assert line.startswith("ringmail: import-chasquid: ")
    msg = line[len("ringmail: import-chasquid: "):]
    assert msg.endswith(error), line
    assert not (tmp_path / "out" / "ringmail.toml").exists()
