"""A private Postfix instance (its own config, queue and log directories
under a work directory, smtpd on a loopback port) for tests and benchmarks:
Debian's Postfix run with `postfix -c DIR`, never the system's instance.
Needs root (Postfix's master runs as root and drops to `postfix`)."""
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _free_port(ip):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


class PostfixInstance:
    def __init__(self, relayhost, hostname="postfix-relay.test", tls="none", extra=""):
        """relayhost: "[127.0.0.1]:2525"; every message goes there.
        tls: Postfix's smtp_tls_security_level toward the relayhost.
        The instance lives in a new directory under /tmp that Postfix's
        unprivileged daemons can reach (pytest's are root-only); stop()
        removes it."""
        self.dir = Path(tempfile.mkdtemp(prefix="ringmail-postfix-"))
        self.etc, self.queue, self.data = self.dir / "etc", self.dir / "queue", self.dir / "data"
        for x in (self.etc, self.queue, self.data):
            x.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.port = _free_port("127.0.0.1")
        self.log = self.dir / "maillog"
        master = []
        for line in Path("/etc/postfix/master.cf").read_text().splitlines():
            f = line.split()
            if len(f) > 1 and f[0] == "smtp" and f[1] == "inet":  # smtpd on our port
                line = f"127.0.0.1:{self.port} " + line[len("smtp"):]
            master.append(line)
        (self.etc / "master.cf").write_text("\n".join(master) + "\n")
        (self.etc / "main.cf").write_text(f"""compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.data}
mail_owner = postfix
setgid_group = postdrop
myhostname = {hostname}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = {relayhost}
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtp_tls_security_level = {tls}
smtpd_tls_security_level = none
biff = no
maillog_file_prefixes = {self.dir}
maillog_file = {self.log}
{extra}
""")
        subprocess.run(["/usr/sbin/postconf", "-c", str(self.etc), "-F", "*/*/chroot = n"], check=True)
        shutil.chown(self.data, "postfix")

    def start(self, timeout=15):
        subprocess.run(["/usr/sbin/postfix", "-c", str(self.etc), "check"], capture_output=True)
        subprocess.run(["/usr/sbin/postfix", "-c", str(self.etc), "start"], capture_output=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("postfix did not start")

    def master_pid(self):
        return int((self.queue / "pid" / "master.pid").read_text().strip())

    def queue_empty(self):
        q = subprocess.run(["/usr/sbin/postqueue", "-c", str(self.etc), "-p"],
                           capture_output=True, text=True)
        return "Mail queue is empty" in q.stdout

    def stop(self, keep=False):
        subprocess.run(["/usr/sbin/postfix", "-c", str(self.etc), "stop"], capture_output=True)
        self.final_log = self.log_text()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        if self.log.exists():
            return self.log.read_text()
        return getattr(self, "final_log", "")
