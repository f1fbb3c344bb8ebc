"""An SMTP server for tests (aiosmtpd): accepts every message and writes it to a
JSON-lines file, one line per message: {"mail_from", "rcpt_tos", "data"}.

usage: sink.py PORT OUT.jsonl
"""

import json
import sys
import time

from aiosmtpd.controller import Controller


class Record:
    def __init__(self, out):
        self.out = out

    async def handle_DATA(self, server, session, envelope):
        line = json.dumps(
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
            }
        )
        with open(self.out, "a") as f:
            f.write(line + "\n")
        return "250 Message accepted for delivery"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Record(out), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
