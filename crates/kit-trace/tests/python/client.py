"""A Zipkin-instrumented Python client (py_zipkin) calling a kit server: it sends its span's
B3 headers and prints, as JSON, the headers, the reply and the spans py_zipkin reported."""
import json
import sys
import urllib.request

from py_zipkin import Encoding, Kind
from py_zipkin.request_helpers import create_http_headers
from py_zipkin.transport import BaseTransportHandler
from py_zipkin.zipkin import zipkin_span


class Collect(BaseTransportHandler):
    def __init__(self):
        self.payloads = []

    def get_max_payload_bytes(self):
        return None

    def send(self, payload):
        self.payloads.append(payload)


def main(url):
    transport = Collect()
    with zipkin_span(service_name="py-client", span_name="call kit", transport_handler=transport,
                     sample_rate=100.0, encoding=Encoding.V2_JSON, kind=Kind.CLIENT):
        # The headers of this very span: the kit server's span is its child.
        headers = {k: v for k, v in create_http_headers().items() if v is not None}
        request = urllib.request.Request(url, data=b"py", headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read().decode()
    spans = [span for payload in transport.payloads for span in json.loads(payload)]
    print(json.dumps({"headers": headers, "body": body, "spans": spans}))


if __name__ == "__main__":
    main(sys.argv[1])
