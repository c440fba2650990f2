"""An aiosmtpd handler that stores mail like aiosmtpd.handlers.Mailbox, but refuses at DATA
every message addressed to one recipient, with a given reply (for example 554).

Used as: python -m aiosmtpd -n -l HOST:PORT -c refusing_smtp.Refusing MAILDIR RCPT "554 5.7.1 refused"
"""

from aiosmtpd.handlers import Mailbox


class Refusing(Mailbox):
    def __init__(self, mail_dir, refused_rcpt, reply):
        super().__init__(mail_dir)
        self.refused_rcpt = refused_rcpt.lower()
        self.reply = reply

    async def handle_DATA(self, server, session, envelope):
        if any(r.lower() == self.refused_rcpt for r in envelope.rcpt_tos):
            return self.reply
        return await super().handle_DATA(server, session, envelope)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 3:
            parser.error("Refusing takes MAILDIR RCPT REPLY")
        return cls(*args)
