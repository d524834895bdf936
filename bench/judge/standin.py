"""A small OpenAI-compatible server on 127.0.0.1 whose answers follow a script.

It stands in for model, judge and embedding servers (none can run here) on the real path: real HTTP,
real JSON, the wire format of /v1/chat/completions and /v1/embeddings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Script = Callable[[dict[str, Any]], "Reply | dict[str, Any] | str"]


def completion(content: str, *, prompt_tokens: int = 20, completion_tokens: int = 8) -> dict[str, Any]:
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 0,
        "model": "standin",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def embedding_list(vectors: list[list[float]], *, prompt_tokens: int = 6) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "model": "standin-embed",
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def last_user(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def good(question: str, quality: float, salt: str = "") -> bool:
    """Whether a server of this quality answers this question well: a fixed share of questions, chosen
    by a hash, so a server of quality 0.9 gets the same 90% right on every run."""
    digest = hashlib.sha256((salt + question).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < quality


def answering(quality: float) -> Script:
    """A model that answers "question N" with the reference "answer N" on a `quality` share of the
    questions (the same ones every run), and "no idea" otherwise."""

    def answer(body: dict[str, Any]) -> str:
        question = last_user(body)
        return f"answer {question.split()[-1]}" if good(question, quality) else "no idea"

    return answer


class OpenAIStandIn:
    def __init__(
        self, chat: Script | None = None, embeddings: Script | None = None, *, record: bool = True
    ) -> None:
        self._scripts = {"/v1/chat/completions": chat, "/v1/embeddings": embeddings}
        # Tests read what was asked; a long benchmark must not keep every request alive.
        self._record = record
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> OpenAIStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, path: str, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._record:
                self.requests.append((path, body))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            script = self._scripts.get(path)
            if script is None:
                return Reply(404, {"error": {"message": f"no {path} here"}})
            reply = script(body)
            if isinstance(reply, str):
                return Reply(body=completion(reply))
            if isinstance(reply, dict):
                return Reply(body=reply)
            if reply.delay:
                time.sleep(reply.delay)
            return reply
        finally:
            with self._lock:
                self.in_flight -= 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = {}
                reply = standin._serve(self.path, body)
                raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                # A client that gave up (a timeout under test) has nothing left to be told.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(raw)

            def log_message(self, *_: Any) -> None:
                pass

        return Handler
