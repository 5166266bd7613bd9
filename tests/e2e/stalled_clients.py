#!/usr/bin/env python3
"""Clients that start pulling a blob over TLS and then stop reading, as a hung or suspended
client would. Each opens its own connection with a small receive buffer, sends one GET, reads
--read bytes of the answer and then holds the connection without reading for --hold seconds, or
until the server ends it. Prints one line per client on stdout:

    client N: read BYTES, then held; server ended it after S s   (or: still open after S s)

and exits 0 once every client has been held or ended; 1 when a client could not even start
(connection, TLS or HTTP status other than 200).

  stalled_clients.py --host ADDR --sni NAME --ca FILE --path /v2/.../blobs/sha256:...
                     [--clients 50] [--read 65536] [--hold 10] [--ready FILE]
"""
import argparse
import socket
import ssl
import sys
import time


def start(args, ctx):
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Small, so the kernel on this side takes little on the client's behalf and the server's
    # writes stall soon after the client stops reading.
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(10)
    raw.connect((args.host, args.port))
    conn = ctx.wrap_socket(raw, server_hostname=args.sni)
    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.sni}\r\n"
               "User-Agent: pullthrough-e2e-stalled-client\r\n\r\n")
    conn.sendall(request.encode())
    got = b""
    while len(got) < args.read:
        chunk = conn.recv(min(16384, args.read - len(got)))
        if not chunk:
            raise RuntimeError(f"connection ended after {len(got)} bytes")
        got += chunk
    status_line = got.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 200 " not in status_line + " ":
        raise RuntimeError(f"answer {status_line!r}")
    return conn, len(got)


# tcpi_state, the first byte of struct tcp_info (linux/tcp.h): the connection's TCP state.
TCP_CLOSE = 7
TCP_CLOSE_WAIT = 8


def ended(conn):
    """True once the server has closed (FIN) or reset the connection. Read from the kernel's TCP
    state, since the client must not read: unread data would hide a FIN from recv()."""
    state = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    return state in (TCP_CLOSE, TCP_CLOSE_WAIT)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--sni", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--read", type=int, default=65536)
    parser.add_argument("--hold", type=float, default=10.0)
    parser.add_argument("--ready", help="file to create once every client is holding")
    args = parser.parse_args()

    ctx = ssl.create_default_context(cafile=args.ca)
    clients = []
    for n in range(args.clients):
        try:
            clients.append(start(args, ctx))
        except (OSError, ssl.SSLError, RuntimeError) as error:
            print(f"client {n}: could not start: {error}")
            return 1
    held_since = time.monotonic()
    if args.ready:
        open(args.ready, "w").close()
    ended_after = [None] * len(clients)
    while time.monotonic() - held_since < args.hold and None in ended_after:
        for n, (conn, _) in enumerate(clients):
            if ended_after[n] is None and ended(conn):
                ended_after[n] = time.monotonic() - held_since
        time.sleep(0.05)
    for n, (conn, read) in enumerate(clients):
        if ended_after[n] is None:
            print(f"client {n}: read {read}, then held; still open after {args.hold:.1f} s")
        else:
            print(f"client {n}: read {read}, then held; server ended it after {ended_after[n]:.2f} s")
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
