#!/usr/bin/env python3
"""Stands in for an appliance whose POST /enroll answers what a test asks of it, so that
install_ca_test.sh can see install-ca.sh meet a refusal or a dropped connection. The first path
segment says what to do, so one stub serves every case as its own base URL:

    GET  /<anything>/ca.crt    the CA file given on the command line
    POST /<status>/enroll      answers <status> with "stub answer <status>" (and Retry-After: 60
                               with 429)
    POST /drop/enroll          closes the connection without an answer

Each request is logged to LOG as "METHOD PATH length=<Content-Length or none>". Binds 127.0.0.1:0
and writes the port to PORT_FILE once it listens.

    enroll_stub.py CA_FILE LOG PORT_FILE
"""
import http.server
import os
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request(self, code="-", size="-"):
        pass

    def record(self):
        length = self.headers.get("Content-Length", "none")
        with open(self.server.log, "a", encoding="utf-8") as log:
            log.write(f"{self.command} {self.path} length={length}\n")
        if length != "none":
            self.rfile.read(int(length))

    def answer(self, status, body, headers=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.record()
        if self.path.endswith("/ca.crt"):
            with open(self.server.ca, "rb") as ca:
                data = ca.read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.answer(404, "not found\n")

    def do_POST(self):
        self.record()
        parts = self.path.split("/")
        if len(parts) != 3 or parts[2] != "enroll":
            self.answer(404, "not found\n")
        elif parts[1] == "drop":
            self.close_connection = True
        else:
            status = int(parts[1])
            headers = [("Retry-After", "60")] if status == 429 else []
            self.answer(status, f"stub answer {status}\n", headers)


def main():
    ca, log, port_file = sys.argv[1:4]
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    server.ca = ca
    server.log = log
    with open(port_file + ".tmp", "w", encoding="utf-8") as out:
        out.write(f"{server.server_address[1]}\n")
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
