"""A fake Anthropic Messages API on loopback, for driving the real ``anthropic`` SDK in tests.

It is a real HTTP server on ``127.0.0.1`` and an ephemeral port. It serves
``POST /v1/messages``, ``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}`` and
``GET /v1/messages/batches/{id}/results``; records every request (parsed JSON body and
headers) in ``.requests``; and injects faults on demand:

- ``server.faults.append(f)`` - the next API request gets fault ``f``: ``"429"`` (with
  ``retry-after``), ``"500"``, ``"529"`` (overloaded), any other status code as a string,
  ``"hang"`` (no answer until ``hang_seconds`` pass - longer than a test client's time-out),
  ``"malformed"`` (a reply whose text is broken JSON), ``"markdown"`` (the reply wrapped in a
  markdown code fence), ``"prose"`` (the reply JSON inside a sentence), ``"empty"`` (an empty
  reply), ``"badpass"`` (the reply with ``"pass": 2``); and faults of the 200 body itself:
  ``"truncated"`` (the JSON or JSONL body cut in half, on any endpoint), ``"notmessage"`` (valid JSON
  that is not the response asked for), ``"nocontent"`` (a Messages response with an empty
  ``content`` list). ``faults.extend(["truncated"] * 3)`` truncates the next three replies;
  ``"ok"`` (no fault) is a placeholder that aims the faults after it at later requests.
- ``server.batch_faults.append(f)`` - the next batch *item* gets ``"errored"`` (a server
  error), ``"invalid"`` (an ``invalid_request_error``), ``"expired"``, ``"canceled"``,
  ``"missing"`` (no result line at all), ``"duplicate"`` (its result line twice) or
  ``"succeeded"`` (no fault: a placeholder that aims the faults after it at later items).
  Unknown fault names are rejected when added.

The reply text comes from ``server.responder(request_json) -> str`` (default: a pass).
``server.paid`` counts the answers delivered whole (a Messages reply, or a batch item that
succeeded), keyed by the request's parameters (:func:`request_key`): what a client was charged
for and could read, so a test can assert nothing was paid for twice.
Usage is estimated the way Anthropic documents it: text ~ 4 characters a token, an image
``width * height / 750`` tokens, so tests can measure what a judge call costs.
"""

from __future__ import annotations

import base64
import io
import json
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


DEFAULT_REPLY = '{"pass": 1, "reason": "fake judge reply"}'
_HTTP_FAULTS = {"429": "rate_limit_error", "529": "overloaded_error", "408": "timeout_error",
                "409": "conflict_error", "400": "invalid_request_error",
                "401": "authentication_error"}
_TEXT_FAULTS = ("malformed", "markdown", "prose", "empty", "badpass")
_BODY_FAULTS = ("truncated", "notmessage", "nocontent")
_BATCH_FAULTS = ("errored", "invalid", "expired", "canceled", "missing", "duplicate",
                 "succeeded")


def _is_request_fault(fault: str) -> bool:
    return (fault in ("hang", "ok") or fault in _TEXT_FAULTS or fault in _BODY_FAULTS
            or (fault.isdigit() and len(fault) == 3))


def request_key(params: dict) -> str:
    """One Messages request's parameters as a canonical string: the key of ``server.paid``, the
    same for a synchronous call and the batch item that asks the same."""
    return json.dumps(params, sort_keys=True)


class FaultQueue(list):
    """A list of fault names that rejects unknown names when they are added."""

    def __init__(self, valid: Callable[[str], bool], expected: str) -> None:
        super().__init__()
        self._valid, self._expected = valid, expected

    def _check(self, faults) -> list[str]:
        faults = list(faults)
        for fault in faults:
            if not isinstance(fault, str) or not self._valid(fault):
                raise ValueError(f"unknown fault {fault!r}: expected {self._expected}")
        return faults

    def append(self, fault: str) -> None:
        super().extend(self._check([fault]))

    def extend(self, faults) -> None:
        super().extend(self._check(faults))

    def __iadd__(self, faults):
        self.extend(faults)
        return self


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it: method, path, lower-cased headers, parsed body."""

    method: str
    path: str
    headers: dict[str, str]
    json: dict | None
    raw: bytes


def estimate_input_tokens(body: dict) -> int:
    """Input tokens of a Messages body: ~4 characters per text token, ``w*h/750`` per image."""
    chars, image_tokens = 0, 0
    system = body.get("system") or ""
    blocks = [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
    for message in body.get("messages", []):
        content = message.get("content", "")
        blocks += [{"type": "text", "text": content}] if isinstance(content, str) else content
    for block in blocks:
        if block.get("type") == "text":
            chars += len(block.get("text", ""))
        elif block.get("type") == "image":
            image_tokens += image_block_tokens(block)
    return math.ceil(chars / 4) + image_tokens


def image_block_tokens(block: dict) -> int:
    """Anthropic's documented image cost, ``width * height / 750`` tokens."""
    from PIL import Image

    data = base64.b64decode(block["source"]["data"])
    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
    return math.ceil(width * height / 750)


def _message(body: dict, text: str) -> dict:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
        "model": body.get("model", "unknown"), "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": estimate_input_tokens(body),
                  "output_tokens": max(1, math.ceil(len(text) / 4)),
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


class FakeAnthropicServer:
    """A scriptable fake of the Anthropic Messages and Message Batches API (see module doc).

    Use as a context manager; ``base_url`` is what the SDK's ``base_url`` (or
    ``ANTHROPIC_BASE_URL``) must be set to.
    """

    def __init__(self, responder: Callable[[dict], str] | None = None,
                 hang_seconds: float = 5.0, retry_after: str = "0.01",
                 polls_before_end: int = 1, delay: float = 0.0) -> None:
        self.responder: Callable[[dict], str] = responder or (lambda body: DEFAULT_REPLY)
        self.hang_seconds = hang_seconds
        self.retry_after = retry_after
        self.polls_before_end = polls_before_end
        self.delay = delay
        self.faults: list[str] = FaultQueue(_is_request_fault, "an HTTP status such as '429', "
                                            f"'hang', 'ok', or one of {_TEXT_FAULTS + _BODY_FAULTS}")
        self.batch_faults: list[str] = FaultQueue(_BATCH_FAULTS.__contains__,
                                                  f"one of {_BATCH_FAULTS}")
        self.requests: list[RecordedRequest] = []
        self.batches: dict[str, dict] = {}
        self.in_flight = 0
        self.max_in_flight = 0  #: most requests the server was handling at once
        self.paid: Counter[str] = Counter()  #: answers delivered whole, by :func:`request_key`
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeAnthropicServer:
        """Bind an ephemeral loopback port and serve in a daemon thread."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake any hanging request, stop serving and release the port."""
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeAnthropicServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running server."""
        if self._httpd is None:
            raise RuntimeError("FakeAnthropicServer is not running: use it as a context manager")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- views -----------------------------------------------------------------------------
    def message_requests(self) -> list[RecordedRequest]:
        """The recorded ``POST /v1/messages`` requests, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path == "/v1/messages"]

    def _next(self, queue: list[str]) -> str | None:
        with self._lock:
            return queue.pop(0) if queue else None

    # -- request handling (called from handler threads) ------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._serve(handler, method)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = handler.path.split("?", 1)[0]
        with self._lock:
            self.requests.append(RecordedRequest(method, path, {k.lower(): v for k, v in
                                                                handler.headers.items()},
                                                 body, raw))
        if self.delay:
            time.sleep(self.delay)
        fault = self._next(self.faults)
        if fault == "hang":
            self._stop.wait(self.hang_seconds)
            fault = None  # if anyone is still listening, answer normally
        if fault == "ok":
            fault = None
        if fault is not None and fault not in _TEXT_FAULTS and fault not in _BODY_FAULTS:
            return self._error(handler, fault)
        if method == "POST" and path == "/v1/messages":
            message = _message(body or {}, self._reply(body or {}, fault))
            if fault == "nocontent":
                message["content"] = []
            if fault not in ("truncated", "notmessage"):
                with self._lock:
                    self.paid[request_key(body or {})] += 1
            return self._send(handler, 200, message, fault=fault)
        if method == "POST" and path == "/v1/messages/batches":
            return self._send(handler, 200, self._create_batch(body or {}), fault=fault)
        parts = path.strip("/").split("/")
        if method == "GET" and parts[:3] == ["v1", "messages", "batches"] and len(parts) >= 4:
            batch = self.batches.get(parts[3])
            if batch is None:
                return self._error(handler, "404")
            if len(parts) == 4:
                batch["polls"] += 1
                return self._send(handler, 200, self._batch_status(batch), fault=fault)
            if len(parts) == 5 and parts[4] == "results":
                lines = "".join(json.dumps(r) + "\n" for r in batch["results"])
                return self._send_raw(handler, 200, _faulty(lines.encode(), fault), "application/x-jsonl")
        return self._error(handler, "404")

    def _reply(self, body: dict, fault: str | None) -> str:
        text = self.responder(body)
        if fault == "malformed":
            return text[: max(1, len(text) // 2)]
        if fault == "markdown":
            return f"```json\n{text}\n```"
        if fault == "prose":
            return f"Here is my verdict: {text} I looked carefully."
        if fault == "empty":
            return ""
        if fault == "badpass":
            return json.dumps({**json.loads(text), "pass": 2})
        return text

    def _create_batch(self, body: dict) -> dict:
        batch_id = f"msgbatch_{uuid.uuid4().hex[:24]}"
        results = []
        for request in body.get("requests", []):
            fault = self._next(self.batch_faults)
            cid = request["custom_id"]
            if fault == "missing":
                continue
            if fault in ("errored", "invalid"):
                kind = "api_error" if fault == "errored" else "invalid_request_error"
                result = {"type": "errored", "error": {"type": "error", "error": {
                    "type": kind, "message": f"fake {kind}"}}}
            elif fault in ("expired", "canceled"):
                result = {"type": fault}
            else:
                params = request["params"]
                result = {"type": "succeeded",
                          "message": _message(params, self._reply(params, None))}
                with self._lock:
                    self.paid[request_key(params)] += 1
            results.append({"custom_id": cid, "result": result})
            if fault == "duplicate":
                results.append({"custom_id": cid, "result": result})
        results.reverse()  # the API promises no order: clients must match by custom_id
        batch = {"id": batch_id, "results": results, "polls": 0,
                 "n": len(body.get("requests", []))}
        with self._lock:
            self.batches[batch_id] = batch
        return self._batch_status(batch)

    def _batch_status(self, batch: dict) -> dict:
        ended = batch["polls"] >= self.polls_before_end
        counts = {k: 0 for k in ("processing", "succeeded", "errored", "canceled", "expired")}
        if ended:
            for r in batch["results"]:
                counts[r["result"]["type"]] += 1
        else:
            counts["processing"] = batch["n"]
        now = "2026-01-01T00:00:00Z"
        return {"id": batch["id"], "type": "message_batch",
                "processing_status": "ended" if ended else "in_progress",
                "request_counts": counts, "created_at": now, "expires_at": "2026-01-02T00:00:00Z",
                "ended_at": now if ended else None, "archived_at": None,
                "cancel_initiated_at": None,
                "results_url": (f"{self.base_url}/v1/messages/batches/{batch['id']}/results"
                                if ended else None)}

    def _error(self, handler: BaseHTTPRequestHandler, fault: str) -> None:
        status = int(fault)
        kind = _HTTP_FAULTS.get(fault, "not_found_error" if status == 404 else "api_error")
        headers = {"retry-after": self.retry_after} if status == 429 else {}
        self._send(handler, status, {"type": "error", "error": {
            "type": kind, "message": f"fake {status}"}}, headers)

    def _send(self, handler, status: int, payload: dict, headers: dict | None = None,
              fault: str | None = None) -> None:
        data = _faulty(json.dumps(payload).encode(), fault)
        self._send_raw(handler, status, data, "application/json", headers)

    @staticmethod
    def _send_raw(handler, status: int, data: bytes, ctype: str,
                  headers: dict | None = None) -> None:
        try:
            handler.send_response(status)
            handler.send_header("content-type", ctype)
            handler.send_header("content-length", str(len(data)))
            handler.send_header("request-id", f"req_{uuid.uuid4().hex[:12]}")
            for key, value in (headers or {}).items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (time-out); nothing to deliver


def _faulty(data: bytes, fault: str | None) -> bytes:
    """A 200 body as a body fault leaves it: cut in half, or replaced by JSON of another shape."""
    if fault == "truncated":
        return data[: len(data) // 2]
    if fault == "notmessage":
        return b'{"ok": true}'
    return data


def _make_handler(server: FakeAnthropicServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            server._handle(self, "POST")

        def do_GET(self) -> None:  # noqa: N802
            server._handle(self, "GET")

        def log_message(self, *args) -> None:  # keep test output clean
            pass

    return Handler
