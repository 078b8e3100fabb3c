"""The dependencies suite's package index: serves a folder (kit.write_index's simple/ and
files/) over HTTP, logs every request as "PEER METHOD PATH STATUS" to LOG so a test can
count downloads, and holds back files whose name contains "slow" for SLOW seconds (to make
two installs overlap). Started by conftest.py inside a namespace the suite created:
  index_server.py ROOT ADDR PORT LOG READY [SLOW]
Standard library only."""

import functools
import http.server
import sys
import time
from pathlib import Path


class Handler(http.server.SimpleHTTPRequestHandler):
    log_file = None
    slow = 0.0

    def do_GET(self):
        if "slow" in self.path.rsplit("/", 1)[-1]:
            time.sleep(self.slow)
        super().do_GET()

    def log_request(self, code="-", size="-"):
        code = getattr(code, "value", code)
        self.log_file.write(f"{self.client_address[0]} {self.command} {self.path} {code}\n")

    def log_message(self, fmt, *args):
        pass  # errors are logged through log_request with their status


def main(root, addr, port, log, ready, slow="2"):
    Handler.log_file = open(log, "a", buffering=1)
    Handler.slow = float(slow)
    server = http.server.ThreadingHTTPServer((addr, int(port)), functools.partial(Handler, directory=root))
    Path(ready).write_text("ready\n")
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
