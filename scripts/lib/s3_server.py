"""The S3 server of the tests that restart a broker whose log lives in S3 (moto's S3, pinned by
scripts/lib/stack.sh), with one difference: it handles one request at a time.

S3 applies a conditional write (`If-Match` / `If-None-Match` on PUT) atomically: of two writers
racing on one object, one gets 412. moto's threaded server checks the condition and stores the
object in separate steps, so two concurrent conditional writes can both succeed, and a broker
that keeps its log ends in such objects then overwrites what it acknowledged. Requests still
arrive on many connections (one thread each); the application runs under one lock, its whole
response produced inside it.

    python s3_server.py -H 127.0.0.1 -p PORT
"""

import argparse
import os
import signal
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def serialized(app):
    lock = threading.Lock()

    def handle(environ, start_response):
        with lock:
            started = []
            body = []

            def capture(status, headers, exc_info=None):
                started[:] = [status, headers, exc_info]
                return body.append

            result = app(environ, capture)
            try:
                body.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        start_response(*started)
        return body

    return handle


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_simple(
        args.host,
        args.port,
        serialized(DomainDispatcherApplication(create_backend_app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
