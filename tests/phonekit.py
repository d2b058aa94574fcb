"""A phone's contact port answered in the test process: after a phone registered with SIPp
(which then exits), :class:`SipListener` binds the same port and answers 200 to whatever
FreeSWITCH sends there (message-waiting NOTIFY, OPTIONS), keeping the NOTIFYs.

Why: a SIPp callee started with ``-m 1`` takes an unsolicited NOTIFY (FreeSWITCH's
message-waiting NOTIFY after the REGISTER of a phone whose owner has a mailbox, retransmitted
until answered) as its one call and quits before the INVITE; and the MWI tests need to read
the NOTIFY's body. :meth:`SipListener.register` registers from the listener's own socket
(digest authentication here), so no NOTIFY can slip in between a SIPp REGISTER's end and
the listener's start.
"""

from __future__ import annotations

import hashlib
import queue
import re
import secrets
import socket
import threading

from tests import fskit, support
from whistle_tasks.data import registrations
from whistle_tasks.ops import provisioning


class SipListener:
    """127.0.0.1:``port`` answered in a thread (see the module doc)."""

    def __init__(self, port: int, name: str = "phone") -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        support.wait_until(self._bind, timeout=10, what=f"{name}'s port {port} free again")
        self.sock.settimeout(0.2)
        self.notifies: list[str] = []
        self.responses: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _bind(self) -> bool:
        try:
            self.sock.bind(("127.0.0.1", self.port))
        except OSError:
            return False
        return True

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            text = data.decode("utf-8", "replace")
            if text.startswith("SIP/2.0"):
                self.responses.put(text)
                continue
            head = text.split("\r\n\r\n", 1)[0].split("\r\n")
            keep = [line for line in head[1:]
                    if re.match(r"(?i)(via|v|from|f|to|t|call-id|i|cseq)\s*:", line)]
            reply = "SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n"
            self.sock.sendto(reply.encode(), peer)
            if head[0].startswith("NOTIFY "):
                self.notifies.append(text)

    def summary(self, waiting: str = r"\w+", counts: str | None = None,
                timeout: float = 40) -> str:
        """The first NOTIFY with ``Messages-Waiting: <waiting>`` (a regular expression) and,
        when given, ``Voice-Message: <counts>`` (e.g. ``1/0``)."""
        def found() -> str | None:
            for text in list(self.notifies):
                if re.search(rf"(?mi)^Messages-Waiting:\s*{waiting}\s*$", text) and (
                        counts is None or re.search(
                            rf"(?mi)^Voice-Message:\s*{re.escape(counts)}\b", text)):
                    return text
            return None

        return support.wait_until(found, timeout=timeout,
                                  what=f"a NOTIFY {waiting} {counts} (got {self.notifies})")

    def register(self, sip_port: int, realm: str, user: str, password: str, *,
                 expires: int = 3600, call_id: str | None = None,
                 timeout: float = 30) -> str:
        """REGISTER ``user@realm`` with this port as its contact at FreeSWITCH's
        127.0.0.1:``sip_port`` (answering the digest challenge); ``expires`` 0 with the
        ``call_id`` of an earlier registration removes it. Returns the Call-ID."""
        call_id = call_id or secrets.token_hex(12)
        tag, uri = secrets.token_hex(6), f"sip:{realm}"
        authorization = ""
        for cseq in (1, 2):
            request = (
                f"REGISTER {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{secrets.token_hex(8)}"
                ";rport\r\nMax-Forwards: 70\r\n"
                f"From: <sip:{user}@{realm}>;tag={tag}\r\nTo: <sip:{user}@{realm}>\r\n"
                f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{user}@127.0.0.1:{self.port};transport=udp>\r\n"
                f"Expires: {expires}\r\n{authorization}User-Agent: whistle-test\r\n"
                "Content-Length: 0\r\n\r\n")
            self.sock.sendto(request.encode(), ("127.0.0.1", sip_port))
            answer = self._final(cseq, timeout)
            status = answer.split(" ", 2)[1]
            if status == "200":
                return call_id
            challenge = re.search(r"(?mi)^WWW-Authenticate:\s*Digest\s+(.*)$", answer)
            if status != "401" or challenge is None or authorization:
                raise AssertionError(f"REGISTER {user}@{realm}: {answer[:400]}")
            fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.group(1)))
            authorization = _digest(fields, user, password, uri)
        raise AssertionError(f"REGISTER {user}@{realm}: not registered")

    def _final(self, cseq: int, timeout: float) -> str:
        while True:
            try:
                answer = self.responses.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no answer to REGISTER (CSeq {cseq})") from None
            if re.search(rf"(?mi)^CSeq:\s*{cseq}\s+REGISTER", answer) and \
                    int(answer.split(" ", 2)[1]) >= 200:
                return answer

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self.thread.join(5)


def _digest(challenge: dict[str, str], user: str, password: str, uri: str) -> str:
    """The Authorization header answering a digest challenge (MD5, qop auth or none)."""
    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    realm, nonce = challenge.get("realm", ""), challenge.get("nonce", "")
    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"REGISTER:{uri}")
    header = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
    if "auth" in challenge.get("qop", "").split(","):
        cnonce = secrets.token_hex(8)
        response = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        header += f', qop=auth, nc=00000001, cnonce="{cnonce}"'
    else:
        response = md5(f"{ha1}:{nonce}:{ha2}")
    header += f', response="{response}", algorithm=MD5'
    if challenge.get("opaque"):
        header += f', opaque="{challenge["opaque"]}"'
    return f"Authorization: {header}\r\n"


# --- SIPp phones (a device registered from a port of its own; a SIPp answering there) ------

def udp_port() -> int:
    """A UDP port free on 127.0.0.1, for one SIPp phone."""
    return fskit.free_port((socket.SOCK_DGRAM,))


def register(fs: fskit.Platform, realm: str, user: str, *, timeout: float = 30) -> int:
    """A device of ``realm`` (created when missing) registered by SIPp from a port of its
    own, once Whistle knows where it is; returns the port."""
    if not any(d.get("username") == user for d in provisioning.list_devices(realm)):
        provisioning.create_device(realm, user, password=f"pw-{user}")
    port = udp_port()
    result = fs.sipp.run("register.xml", port=port, service=user, user=user,
                         password=f"pw-{user}", variables={"realm": realm, "expires": 3600})
    assert result.ok, result.describe()
    support.wait_until(lambda: registrations.lookup(realm, user), timeout=timeout,
                       what=f"{user} registered")
    return port


def sipp_phone(fs: fskit.Platform, scenario: str, port: int, user: str) -> fskit.Background:
    """SIPp playing ``scenario`` (a callee: ``uas_answer.xml``, ``uas_ring_cancel.xml``...)
    on a registered phone's ``port``, once it listens."""
    found = fs.sipp.start(scenario, port=port, service=user, timeout=90)
    support.wait_until(lambda: found.listening(port), timeout=10, what=f"{user}'s SIPp")
    return found
