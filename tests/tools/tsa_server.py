#!/usr/bin/env python3
"""A real RFC 3161 Time-Stamp Authority on loopback, for the tests: HTTP in front of
`openssl ts -reply` (RFC 3161 section 3.4: POST application/timestamp-query, answer
application/timestamp-reply). Standard library only.

Usage: tsa_server.py <openssl.cnf> <state-dir>
Prints `listening <port>` once it accepts connections. The test steers it through files in
<state-dir>:
  mode      ok (default): sign with the config's default section
            section:<name>: sign with another section of the config (other signer, other digests)
            forged:<cert>:<key>: re-sign the TSTInfo of a real token with `openssl cms` and
                     that certificate (for signers `openssl ts` itself refuses to use)
            replay:  answer with the previous reply again (stale nonce, other imprint)
            down:    answer 503, as a TSA in maintenance
  requests  one line appended per request received (the tests count retries with it)
  auth      if present, `user:password` that requests must carry as HTTP basic auth
"""
import base64
import http.server
import os
import subprocess
import sys
import tempfile

CONFIG, STATE = sys.argv[1], sys.argv[2]


def read(name, default=""):
    try:
        with open(os.path.join(STATE, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return default


def run(args, **kw):
    return subprocess.run(["openssl"] + args, check=True, capture_output=True, **kw)


def ts_reply(query, section=None):
    with tempfile.TemporaryDirectory() as d:
        q, r = os.path.join(d, "q.tsq"), os.path.join(d, "r.tsr")
        with open(q, "wb") as f:
            f.write(query)
        args = ["ts", "-reply", "-config", CONFIG, "-queryfile", q, "-out", r]
        if section:
            args += ["-section", section]
        run(args)
        with open(r, "rb") as f:
            return f.read()


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def forged(query, cert, key):
    """A token whose TSTInfo is real but whose signer is `cert`, wrapped as a granted reply."""
    with tempfile.TemporaryDirectory() as d:
        r, tok, tst, out = (os.path.join(d, n) for n in ("r.tsr", "tok.der", "tst.der", "forged.der"))
        with open(r, "wb") as f:
            f.write(ts_reply(query))
        run(["ts", "-reply", "-in", r, "-token_out", "-out", tok])
        run(["cms", "-verify", "-noverify", "-inform", "DER", "-in", tok, "-out", tst])
        run(["cms", "-sign", "-binary", "-nodetach", "-nosmimecap", "-md", "sha256", "-outform", "DER",
             "-econtent_type", "1.2.840.113549.1.9.16.1.4", "-signer", cert, "-inkey", key, "-in", tst, "-out", out])
        with open(out, "rb") as f:
            token = f.read()
    body = bytes([0x30, 0x03, 0x02, 0x01, 0x00]) + token  # PKIStatusInfo { granted }, token
    return bytes([0x30]) + der_len(len(body)) + body


class Handler(http.server.BaseHTTPRequestHandler):
    last_reply = b""

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        query = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(os.path.join(STATE, "requests"), "a") as f:
            f.write("request\n")
        auth = read("auth")
        if auth:
            want = "Basic " + base64.b64encode(auth.encode()).decode()
            if self.headers.get("Authorization") != want:
                return self.answer(401, b"authentication required")
        if self.headers.get("Content-Type") != "application/timestamp-query":
            return self.answer(415, b"expected application/timestamp-query")
        mode = read("mode", "ok")
        try:
            if mode == "down":
                return self.answer(503, b"maintenance")
            if mode == "replay":
                reply = Handler.last_reply
            elif mode.startswith("section:"):
                reply = ts_reply(query, mode.split(":", 1)[1])
            elif mode.startswith("forged:"):
                _, cert, key = mode.split(":", 2)
                reply = forged(query, cert, key)
            else:
                reply = ts_reply(query)
        except subprocess.CalledProcessError as e:
            return self.answer(500, e.stderr or b"openssl failed")
        if mode != "replay":
            Handler.last_reply = reply
        self.answer(200, reply, "application/timestamp-reply")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("listening", server.server_address[1], flush=True)
server.serve_forever()
