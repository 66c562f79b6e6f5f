"""The client against a server that answers badly: every case is a TransportError
(or the error the body names), never a crash."""

import http.server
import threading

import pytest

import clusterm

ANSWERS = {
    "/v1/nodes": (200, "application/json", b"not json at all"),
    "/v1/cluster": (200, "application/json", b'{"state": 17}'),
    "/v1/globals": (500, "text/html", b"<html>boom</html>"),
    "/v1/jobs": (409, "application/json", b'{"error": {"code": "node_busy", "message": "node \\"n1\\" is busy with job 3"}}'),
    "/v1/jobs/1/logs": (200, "text/event-stream", b"event: line\ndata: {broken\n\n"),
    "/v1/nodes/n1": (418, "application/json", b'{"error": {"code": "teapot", "message": "short and stout"}}'),
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, ctype, body = ANSWERS.get(self.path.split("?")[0], (404, "text/plain", b"nope"))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def bad_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_malformed_answers_are_transport_errors(bad_server):
    c = clusterm.Client(bad_server, timeout=10)
    with pytest.raises(clusterm.TransportError, match="not JSON"):
        c.nodes()
    with pytest.raises(clusterm.TransportError, match="unexpected shape"):
        c.cluster()
    with pytest.raises(clusterm.TransportError, match="500"):
        c.globals()
    with pytest.raises(clusterm.TransportError, match="bad log line"):
        list(c.job_logs(1, follow=True))
    with pytest.raises(clusterm.TransportError, match="404"):
        c.job(5)


def test_error_bodies_pick_the_exception_class(bad_server):
    c = clusterm.Client(bad_server, timeout=10)
    with pytest.raises(clusterm.NodeBusy) as e:
        c.jobs()
    assert e.value.code == "node_busy" and "n1" in e.value.message
    # A code this client does not know still raises, as the base class, keeping the code.
    with pytest.raises(clusterm.ClustermError) as e:
        c.node("n1")
    assert type(e.value) is clusterm.ClustermError
    assert e.value.code == "teapot" and e.value.message == "short and stout"
