"""An SMTP server that requires AUTH (PLAIN or LOGIN) for one user, over plain TCP.

Started by tests/support/smtp_auth.rs with the test venv's Python (aiosmtpd). Settings come from
the environment so the password is not on a command line:

  SMTP_AUTH_LISTEN    host:port to listen on
  SMTP_AUTH_MAILDIR   Maildir that receives every accepted message
  SMTP_AUTH_LOG       file that gets one line per AUTH attempt: "<mechanism> ok|fail"
  SMTP_AUTH_USER      the one user name accepted
  SMTP_AUTH_PASSWORD  its password

Mail from a client that has not authenticated is refused (auth_required), so a delivered
message proves the client authenticated.
"""

import os
import signal
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

host, port = os.environ["SMTP_AUTH_LISTEN"].rsplit(":", 1)
user = os.environ["SMTP_AUTH_USER"].encode()
password = os.environ["SMTP_AUTH_PASSWORD"].encode()
auth_log = os.environ["SMTP_AUTH_LOG"]
lock = threading.Lock()


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == user and auth_data.password == password
    with lock, open(auth_log, "a") as f:
        f.write(f"{mechanism} {'ok' if ok else 'fail'}\n")
    return AuthResult(success=ok, handled=False)


controller = Controller(
    Mailbox(os.environ["SMTP_AUTH_MAILDIR"]),
    hostname=host,
    port=int(port),
    authenticator=authenticator,
    auth_required=True,
    auth_require_tls=False,
)
controller.start()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
stop.wait()
controller.stop()
