#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 proxy for the S3 tests: it sits between the appliance and an S3
server (Moto, s3rver) in the test bed's network namespace and forwards every request and response
byte for byte (so SigV4 signatures, which cover the Host field, stay valid), unless a fault mode
says otherwise. Python 3 standard library only.

  s3_fault_proxy.py --listen ADDR:PORT --upstream ADDR:PORT --control ADDR:PORT

Each client connection gets its own upstream connection (opened again when the upstream closed
it), so keep-alive works as it does without the proxy: requests are parsed one after the other
(request line, fields, then a Content-Length or chunked body), and so are responses (interim 1xx
answers such as "100 Continue" are relayed; then the final one, its body framed by Content-Length,
chunked coding, or the end of the connection).

Control (plain HTTP on --control; every answer is JSON, 400 for a command it does not know):
  POST /mode with the command as body, e.g. curl -X POST http://ADDR:PORT/mode -d 'slowdown 5'
    pass                     forward everything (the default); ends any other mode
    slowdown N [METHOD]      the next N requests (only those of METHOD, when given) get the
                             proxy's own 503 SlowDown (S3's XML error), after their body is read
                             (a "100 Continue" first when the client asked for it); not forwarded
    stall_get N              the next N GETs are forwarded, but the client gets nothing back: the
                             connection is held until the client closes it
    reset_upload BYTES       the next PUT or POST that has a body: its head and at most BYTES
                             bytes of its body (never the whole body) go upstream, then both the
                             client and the upstream connection are reset (SO_LINGER 0: RST)
    stall_get_body N BYTES   the next N GETs: the response head and at most BYTES bytes of its
                             body (never the whole body) reach the client, then the connection is
                             held until the client closes it
    status                   answers with the counters, as GET /status does
    reset                    pass, and every counter back to zero
  Any fault mode may end with "match TEXT": then only requests whose target holds TEXT get the
  fault (and count against N), e.g. 'slowdown 3 GET match /blobs/' spares a health probe's GETs.
  GET /mode                  the current mode
  GET /status                the mode and the counters: requests seen by method, faults injected
                             by kind, final statuses relayed, client connections
Setting a mode replaces the previous one; a counted mode returns to pass once used up. Body sizes
are counted as they travel (a chunked body with its chunk framing).

Logs one line per request on stderr: connection number, method, target and what came of it (the
upstream's status, or the fault).
"""
import argparse
import asyncio
import collections
import json
import signal
import socket
import struct
import sys
import time

HEAD_LIMIT = 64 * 1024
PIECE = 64 * 1024
SLOWDOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
                 b'<Message>Please reduce your request rate.</Message></Error>')
TOKEN_CHARS = set(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def log(msg):
    now = time.time()
    print(f"{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now * 1000) % 1000:03d} "
          f"s3_fault_proxy: {msg}", file=sys.stderr, flush=True)


class BadMessage(Exception):
    """The peer sent something that is not HTTP/1.x as this proxy understands it."""


class UpstreamError(Exception):
    """The upstream could not be reached, or ended or broke the exchange."""


def parse_addr(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"not ADDR:PORT: {text}")
    return host.strip("[]"), int(port)


class Message:
    """A parsed request or response head: the start line's three parts and the fields."""

    def __init__(self, raw, start, fields):
        self.raw = raw
        self.start = start
        self.fields = fields

    def values(self, name):
        return [v for n, v in self.fields if n == name]

    def tokens(self, name):
        out = []
        for v in self.values(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def framing(self):
        """("chunked", None), ("length", N) or ("none", None); close-delimited is the caller's."""
        te = self.tokens("transfer-encoding")
        if te:
            if te[-1] != "chunked":
                return ("close", None)
            return ("chunked", None)
        lengths = {v.strip() for v in self.values("content-length")}
        if len(lengths) > 1:
            raise BadMessage("conflicting Content-Length fields")
        if lengths:
            value = lengths.pop()
            if not value.isdigit():
                raise BadMessage(f"bad Content-Length {value!r}")
            return ("length", int(value))
        return ("none", None)

    def keep_alive(self):
        conn = self.tokens("connection")
        if "close" in conn:
            return False
        if self.start[0] == "HTTP/1.0" or self.start[2] == "HTTP/1.0":
            return "keep-alive" in conn
        return True


async def read_head(reader, what):
    """The next message head (bytes up to and with the empty line), or None at a clean end."""
    while True:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            if not e.partial.strip():
                return None
            raise BadMessage(f"{what} ended inside a head") from None
        except asyncio.LimitOverrunError:
            raise BadMessage(f"{what} head longer than {HEAD_LIMIT} bytes") from None
        # Empty lines before a request line are to be ignored (RFC 9112, 2.2).
        stripped = raw.lstrip(b"\r\n")
        if stripped:
            return stripped


def parse_head(raw, response):
    lines = raw[:-4].split(b"\r\n")
    parts = lines[0].decode("latin-1").split(" ", 2)
    if len(parts) != 3:
        raise BadMessage(f"bad start line {lines[0][:80]!r}")
    version = parts[0] if response else parts[2]
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadMessage(f"not HTTP/1.x: {lines[0][:80]!r}")
    if response and not (len(parts[1]) == 3 and parts[1].isdigit()):
        raise BadMessage(f"bad status line {lines[0][:80]!r}")
    fields = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or not set(name) <= TOKEN_CHARS:
            raise BadMessage(f"bad field line {line[:80]!r}")
        fields.append((name.decode("latin-1").lower(), value.decode("latin-1").strip()))
    return Message(raw, parts, fields)


async def body_pieces(reader, kind, length):
    """Yields (raw bytes, is_last) of a body as it travels: framing included for chunked."""
    if kind == "length":
        left = length
        while left:
            data = await reader.read(min(PIECE, left))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(data)
            yield data, left == 0
    elif kind == "chunked":
        while True:
            try:
                line = await reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError:
                raise BadMessage("chunk size line too long") from None
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadMessage(f"bad chunk size line {line[:40]!r}") from None
            if size < 0:
                raise BadMessage("negative chunk size")
            if size == 0:
                tail = line
                while True:
                    t = await reader.readuntil(b"\r\n")
                    tail += t
                    if t == b"\r\n":
                        break
                yield tail, True
                return
            yield line, False
            left = size
            while left:
                data = await reader.read(min(PIECE, left))
                if not data:
                    raise asyncio.IncompleteReadError(b"", left)
                left -= len(data)
                yield data, False
            crlf = await reader.readexactly(2)
            if crlf != b"\r\n":
                raise BadMessage("chunk data not followed by CRLF")
            yield crlf, False
    elif kind == "close":
        while True:
            data = await reader.read(PIECE)
            if not data:
                return
            yield data, False


async def forward_body(reader, writer, kind, length, limit=None):
    """Copies a body from reader to writer (writer None: reads it and drops it). With limit, stops
    after at most limit bytes and never passes the body's last byte. Returns (bytes, complete)."""
    sent = 0
    async for piece, last in body_pieces(reader, kind, length):
        take = len(piece)
        if limit is not None:
            take = min(limit - sent, len(piece) - 1 if last else len(piece))
        if take > 0 and writer is not None:
            writer.write(piece[:take])
            await writer.drain()
        sent += max(take, 0)
        if take < len(piece):
            return sent, False
    return sent, True


def reset(writer):
    """Closes the connection with an RST (SO_LINGER on, timeout 0) instead of a FIN."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


def close(writer):
    if writer is not None:
        try:
            writer.close()
        except Exception:  # already closed or broken: nothing left to do
            pass


class State:
    """The fault mode and the counters, shared by every connection."""

    def __init__(self):
        self.clear()

    def clear(self):
        self.mode, self.remaining, self.method, self.nbytes = "pass", 0, None, 0
        self.match = None
        self.requests = collections.Counter()
        self.faults = collections.Counter()
        self.responses = collections.Counter()
        self.connections = 0

    def describe(self):
        d = {"mode": self.mode}
        if self.mode in ("slowdown", "stall_get", "stall_get_body"):
            d["remaining"] = self.remaining
        if self.mode == "slowdown":
            d["method"] = self.method
        if self.mode in ("reset_upload", "stall_get_body"):
            d["bytes"] = self.nbytes
        if self.match is not None:
            d["match"] = self.match
        return d

    def status(self):
        return {"mode": self.describe(), "requests": dict(self.requests),
                "faults": dict(self.faults), "responses": dict(self.responses),
                "connections": self.connections}

    def command(self, text):
        words = text.split()
        if not words:
            raise ValueError("empty command")

        def count(word):
            if not word.isdigit() or int(word) < 1:
                raise ValueError(f"not a positive number: {word}")
            return int(word)

        match = None
        if len(words) >= 3 and words[-2] == "match":
            match, words = words[-1], words[:-2]
        name, args = words[0], words[1:]
        if match is not None and name in ("pass", "status", "reset"):
            raise ValueError(f"{name} takes no match")
        if name == "pass" and not args:
            self.mode, self.remaining, self.method, self.nbytes = "pass", 0, None, 0
        elif name == "slowdown" and len(args) in (1, 2):
            method = args[1].upper() if len(args) == 2 else None
            if method is not None and not set(method.encode()) <= TOKEN_CHARS:
                raise ValueError(f"not a method: {args[1]}")
            self.mode, self.remaining, self.method, self.nbytes = name, count(args[0]), method, 0
        elif name == "stall_get" and len(args) == 1:
            self.mode, self.remaining, self.method, self.nbytes = name, count(args[0]), None, 0
        elif name == "reset_upload" and len(args) == 1:
            self.mode, self.remaining, self.method, self.nbytes = name, 1, None, count(args[0])
        elif name == "stall_get_body" and len(args) == 2:
            self.mode, self.remaining, self.method = name, count(args[0]), None
            self.nbytes = count(args[1])
        elif name == "status" and not args:
            return self.status()
        elif name == "reset" and not args:
            self.clear()
        else:
            raise ValueError(f"unknown command: {text.strip()!r}")
        self.match = match
        log(f"mode: {json.dumps(self.describe())}")
        return self.describe()

    def take(self, method, target, has_body):
        """The fault for a request now parsed, or None; uses one count of the mode."""
        applies = {
            "slowdown": self.method is None or method == self.method,
            "stall_get": method == "GET",
            "stall_get_body": method == "GET",
            "reset_upload": method in ("PUT", "POST") and has_body,
        }.get(self.mode, False)
        if self.match is not None and self.match not in target:
            applies = False
        if not applies:
            return None
        fault = self.mode
        self.remaining -= 1
        if self.remaining <= 0:
            self.mode, self.remaining, self.method, self.match = "pass", 0, None, None
        self.faults[fault] += 1
        return fault


class Connection:
    """One client connection and the upstream connection that goes with it."""

    serial = 0

    def __init__(self, state, upstream, reader, writer):
        Connection.serial += 1
        self.id = Connection.serial
        self.state = state
        self.upstream = upstream
        self.creader, self.cwriter = reader, writer
        self.ureader = self.uwriter = None

    async def run(self):
        try:
            while await self.one_request():
                pass
        except (BadMessage, UpstreamError, asyncio.IncompleteReadError, ConnectionError,
                OSError) as e:
            log(f"#{self.id} connection ends: {type(e).__name__}: {e}")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug here must not take the other connections down
            log(f"#{self.id} connection ends on an unexpected {type(e).__name__}: {e}")
        finally:
            close(self.uwriter)
            close(self.cwriter)

    async def answer(self, status, reason, body, ctype, keep_alive):
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n"
                f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}\r\n"
                f"x-amz-request-id: s3-fault-proxy-{self.id}\r\n")
        if not keep_alive:
            head += "Connection: close\r\n"
        self.cwriter.write(head.encode() + b"\r\n" + body)
        await self.cwriter.drain()

    async def connect_upstream(self):
        if self.ureader is not None and not self.ureader.at_eof():
            return
        close(self.uwriter)
        self.ureader = self.uwriter = None
        try:
            self.ureader, self.uwriter = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream, limit=HEAD_LIMIT), 10)
        except (OSError, asyncio.TimeoutError) as e:
            raise UpstreamError(f"cannot connect to {self.upstream[0]}:{self.upstream[1]}: {e}")

    async def hold(self):
        """Sends nothing more and waits for the client to close (what it sends is dropped)."""
        t0 = time.monotonic()
        while await self.creader.read(PIECE):
            pass
        return time.monotonic() - t0

    async def one_request(self):
        """Handles the next request; False when the client connection is to end."""
        try:
            raw = await read_head(self.creader, "request")
        except BadMessage as e:
            log(f"#{self.id} bad request: {e}")
            await self.answer(400, "Bad Request", b"bad request\n", "text/plain", False)
            return False
        if raw is None:
            return False
        try:
            req = parse_head(raw, response=False)
            kind, length = req.framing()
            if kind == "close":
                raise BadMessage("request Transfer-Encoding does not end in chunked")
        except BadMessage as e:
            log(f"#{self.id} bad request: {e}")
            await self.answer(400, "Bad Request", b"bad request\n", "text/plain", False)
            return False
        method, target = req.start[0], req.start[1]
        what = f"#{self.id} {method} {target}"
        has_body = kind == "chunked" or (kind == "length" and length > 0)
        self.state.requests[method] += 1
        fault = self.state.take(method, target, has_body)

        if fault == "slowdown":
            if "100-continue" in req.tokens("expect"):
                self.cwriter.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            got, _ = await forward_body(self.creader, None, kind, length)
            await self.answer(503, "Service Unavailable", SLOWDOWN_BODY, "application/xml",
                              req.keep_alive())
            log(f"{what} -> fault slowdown: 503 SlowDown (request body of {got} B drained)")
            return req.keep_alive()

        try:
            await self.connect_upstream()
        except UpstreamError as e:
            log(f"{what} -> 502: {e}")
            await self.answer(502, "Bad Gateway", f"{e}\n".encode(), "text/plain", False)
            return False
        self.uwriter.write(req.raw)

        if fault == "reset_upload":
            return await self.reset_upload(what, kind, length)
        if fault == "stall_get":
            if has_body:
                await forward_body(self.creader, self.uwriter, kind, length)
            await self.uwriter.drain()
            log(f"{what} -> fault stall_get: forwarded, holding the client")
            held = await self.hold()
            log(f"{what} -> fault stall_get: client closed after {held:.1f} s")
            return False
        limit = self.state.nbytes if fault == "stall_get_body" else None
        return await self.exchange(what, req, kind, length, limit)

    async def exchange(self, what, req, kind, length, limit):
        """Forwards the request body and relays the response, both at once (a client that sent
        Expect: 100-continue waits for the upstream's interim answer before it sends the body)."""
        sent = {"client": 0}
        body = asyncio.ensure_future(forward_body(self.creader, self.uwriter, kind, length))
        resp = asyncio.ensure_future(self.relay_response(req, sent, limit))
        done, pending = await asyncio.wait({body, resp}, return_when=asyncio.FIRST_EXCEPTION)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if resp in done and resp.exception() is not None:
            e = resp.exception()
            log(f"{what} -> upstream failed: {type(e).__name__}: {e}")
            if sent["client"] == 0:
                await self.answer(502, "Bad Gateway", f"upstream: {e}\n".encode(),
                                  "text/plain", False)
            return False
        if body in done and body.exception() is not None:
            e = body.exception()
            log(f"{what} -> the request body did not get through: {type(e).__name__}: {e}")
            return False
        status, keep, complete, relayed = resp.result()
        if not complete:
            self.state.responses[status] += 1
            log(f"{what} -> fault stall_get_body: {status}, head and {relayed} B of the body "
                "relayed, holding the client")
            held = await self.hold()
            log(f"{what} -> fault stall_get_body: client closed after {held:.1f} s")
            return False
        self.state.responses[status] += 1
        log(f"{what} -> {status} ({relayed} B of body)")
        return keep and req.keep_alive()

    async def relay_response(self, req, sent, limit):
        """Relays interim answers and the final response; returns (status, keep_alive, complete,
        body bytes relayed). With limit, stops after at most limit bytes of the body."""
        while True:
            try:
                raw = await read_head(self.ureader, "response")
            except BadMessage as e:
                raise UpstreamError(str(e)) from None
            if raw is None:
                raise UpstreamError("upstream closed the connection without a response")
            try:
                resp = parse_head(raw, response=True)
            except BadMessage as e:
                raise UpstreamError(str(e)) from None
            status = int(resp.start[1])
            self.cwriter.write(raw)
            sent["client"] += len(raw)
            await self.cwriter.drain()
            if 100 <= status < 200 and status != 101:
                continue
            break
        kind, length = resp.framing()
        if req.start[0] == "HEAD" or status in (204, 304) or status < 200:
            kind, length = "none", None
        elif kind == "none" and not resp.values("content-length"):
            kind = "close"  # neither length nor chunked: the body ends with the connection
        relayed, complete = 0, True
        if kind != "none":
            try:
                relayed, complete = await forward_body(self.ureader, self.cwriter, kind, length,
                                                       limit)
            except BadMessage as e:
                raise UpstreamError(str(e)) from None
            except asyncio.IncompleteReadError:
                raise UpstreamError("upstream ended inside the response body") from None
        elif limit is not None:
            complete = False  # stall_get_body on a bodiless answer: hold after the head
        keep = kind != "close" and resp.keep_alive()
        return status, keep, complete, relayed

    async def reset_upload(self, what, kind, length):
        """Forwards at most state.nbytes of the body (relaying interim answers only), then RST."""
        limit = self.state.nbytes

        async def interim():
            while True:
                raw = await read_head(self.ureader, "response")
                if raw is None:
                    return
                status = parse_head(raw, response=True).start[1]
                if status.startswith("1") and status != "101":
                    self.cwriter.write(raw)
                    await self.cwriter.drain()
                else:
                    return  # a final answer the client must never see: drop it

        relay = asyncio.ensure_future(interim())
        try:
            got, _ = await forward_body(self.creader, self.uwriter, kind, length, limit)
            note = f"after {got} B of the body"
        except (asyncio.IncompleteReadError, ConnectionError, OSError, BadMessage) as e:
            note = f"the client or upstream broke off first ({type(e).__name__})"
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
        reset(self.uwriter)
        reset(self.cwriter)
        self.uwriter = self.cwriter = None
        log(f"{what} -> fault reset_upload: both connections reset {note}")
        return False


async def control(state, reader, writer):
    """One control request (Connection: close)."""
    try:
        raw = await asyncio.wait_for(read_head(reader, "control request"), 10)
        if raw is None:
            return
        req = parse_head(raw, response=False)
        kind, length = req.framing()
        body = b""
        if kind == "length":
            body = await asyncio.wait_for(reader.readexactly(min(length, 4096)), 10)
        method, path = req.start[0], req.start[1].split("?", 1)[0]
        code, out = 200, None
        try:
            if method == "POST" and path == "/mode":
                out = state.command(body.decode("utf-8", "replace"))
            elif method == "POST" and path == "/reset":
                out = state.command("reset")
            elif method == "GET" and path == "/mode":
                out = state.describe()
            elif method == "GET" and path == "/status":
                out = state.status()
            else:
                code, out = 404, {"error": f"no {method} {path}"}
        except ValueError as e:
            code, out = 400, {"error": str(e)}
        data = (json.dumps(out, sort_keys=True) + "\n").encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[code]
        writer.write(f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        await writer.drain()
    except (BadMessage, asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError,
            OSError) as e:
        log(f"control: {type(e).__name__}: {e}")
    finally:
        close(writer)


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=parse_addr, required=True, help="ADDR:PORT for clients")
    ap.add_argument("--upstream", type=parse_addr, required=True, help="ADDR:PORT of the S3 server")
    ap.add_argument("--control", type=parse_addr, required=True, help="ADDR:PORT of the control")
    args = ap.parse_args()
    state = State()

    async def client(reader, writer):
        state.connections += 1
        await Connection(state, args.upstream, reader, writer).run()

    proxy = await asyncio.start_server(client, *args.listen, limit=HEAD_LIMIT)
    ctl = await asyncio.start_server(lambda r, w: control(state, r, w), *args.control,
                                     limit=HEAD_LIMIT)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log(f"listening on {args.listen[0]}:{args.listen[1]}, upstream {args.upstream[0]}:"
        f"{args.upstream[1]}, control on {args.control[0]}:{args.control[1]}")
    await stop.wait()
    proxy.close()
    ctl.close()
    log("stopped")


if __name__ == "__main__":
    asyncio.run(main())
