"""The OpenAI-compatible backend against a local stand-in chat-completions server (SSE streaming)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chatrec.backends.base import GenerationOptions
from chatrec.backends.openai_http import OpenAIBackend
from chatrec.errors import GenerationError

OPTIONS = GenerationOptions(max_new_tokens=50, temperature=0.0, seed=7)
USER = [{"role": "user", "content": "a train set please"}]


class StandIn:
    """What the next request gets: SSE ``chunks`` (then [DONE]), an HTTP ``status`` error, or ``cut``
    (some chunks, then the connection drops). Records every request body."""

    def __init__(self):
        self.chunks: list[str] = []
        self.status = 200
        self.cut = False
        self.requests: list[dict] = []


def _handler(stand_in: StandIn):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            stand_in.requests.append({"path": self.path, **body})
            if stand_in.status != 200:
                payload = json.dumps({"error": {"message": "model overloaded", "type": "server_error"}}).encode()
                self.send_response(stand_in.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for i, piece in enumerate(stand_in.chunks):
                chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                if stand_in.cut and i == 0:
                    self.wfile.write(b"data: {\"choices\": [{\"delta\": {\"content\": ")  # half an event
                    self.close_connection = True
                    return
            done = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())

    return Handler


@pytest.fixture
def server():
    stand_in = StandIn()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stand_in))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    stand_in.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield stand_in
    httpd.shutdown()
    httpd.server_close()


def test_streams_pieces_in_order_and_sends_the_request(server):
    server.chunks = ["Try the ", "[[Hornby Express Train Set]]", ", it is great ", "🚂"]
    backend = OpenAIBackend("demo-model", server.url, timeout=5)
    pieces = list(backend.stream(USER, OPTIONS))
    assert pieces == server.chunks
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert (request["model"], request["messages"], request["stream"]) == ("demo-model", USER, True)
    assert (request["max_tokens"], request["temperature"], request["seed"]) == (50, 0.0, 7)


def test_empty_reply_yields_nothing(server):
    assert list(OpenAIBackend("m", server.url, timeout=5).stream(USER, OPTIONS)) == []


@pytest.mark.parametrize("status", [400, 500])
def test_http_error_becomes_generation_error(server, status):
    server.status = status
    with pytest.raises(GenerationError, match=f"model server at .* failed: HTTP {status} .*model overloaded"):
        list(OpenAIBackend("m", server.url, timeout=5).stream(USER, OPTIONS))


def test_unknown_model_names_the_model(server):
    server.status = 404
    with pytest.raises(GenerationError, match="HTTP 404 .*serves a model named 'qwen-7b'"):
        list(OpenAIBackend("qwen-7b", server.url, timeout=5).stream(USER, OPTIONS))


def test_connection_dropped_mid_stream_becomes_generation_error(server):
    server.chunks, server.cut = ["Hello", " never arrives"], True
    got = []
    with pytest.raises(GenerationError):
        for piece in OpenAIBackend("m", server.url, timeout=5).stream(USER, OPTIONS):
            got.append(piece)
    assert got == ["Hello"]


def test_server_down_says_how_to_fix_it(server):
    backend = OpenAIBackend("m", "http://127.0.0.1:9/v1", timeout=2)
    with pytest.raises(GenerationError) as err:
        list(backend.stream(USER, OPTIONS))
    message = str(err.value)
    assert message.startswith("cannot reach the model server at http://127.0.0.1:9/v1")
    assert "vllm serve m" in message and "--base-url" in message


def test_model_flag_and_base_url_reach_the_server(server, small_catalog_path, make_services):
    """``--model openai:NAME --base-url URL`` through settings and services, one streamed turn."""
    from chatrec.recommender import Recommender

    server.chunks = ["Try ", "[[Rag Doll Emily]]", "."]
    services = make_services(small_catalog_path, backend="load", model="openai:served-name", base_url=server.url)
    assert services.backend.name == "openai:served-name"
    rec = Recommender(services)
    pieces = list(rec.respond(rec.new_state(), "a soft doll"))
    result = pieces[-1]
    assert [r.item.id for r in result.recommendations][:1] == ["d2"]
    assert len(pieces) >= 3  # partial replies were streamed before the result
    sent = server.requests[0]["messages"]
    # The server caches prompt prefixes: candidates travel with the latest message, the system prompt is stable.
    assert "Rag Doll Emily" not in sent[0]["content"] and "Rag Doll Emily" in sent[-1]["content"]
    assert sent[-1]["content"].endswith("a soft doll")


def test_server_down_turn_fails_visibly_with_catalog_fallback(small_catalog_path, make_services):
    from chatrec.recommender import Recommender

    services = make_services(small_catalog_path, backend="load", model="openai:m", base_url="http://127.0.0.1:9/v1")
    rec = Recommender(services)
    result = rec.run_turn(rec.new_state(), "a train set")
    assert result.status == "failed" and "cannot reach the model server" in result.error
    assert result.display.startswith("⚠️ Sorry — the language model failed")
    assert result.recommendations  # the ranked catalog items are still shown


def test_invented_item_is_never_recommended(server, small_catalog_path, make_services):
    from chatrec.recommender import Recommender

    server.chunks = ["You could try [[Hornby Express Train Set]]", " or the **Super Mega Robot Dragon**", "!"]
    services = make_services(small_catalog_path, backend=OpenAIBackend("m", server.url, timeout=5))
    result = Recommender(services).run_turn(Recommender(services).new_state(), "a train set for my son")
    assert result.status == "ok"
    ids = [r.item.id for r in result.recommendations]
    assert ids[0] == "t1"  # the named catalog item comes first
    assert "Super Mega Robot Dragon" in result.ungrounded
    assert all("Dragon" not in r.item.title for r in result.recommendations)
    assert "~~Super Mega Robot Dragon~~ _(not in our catalog)_" in result.display
