"""Play the seed report's three-client session (figures 10-13) against a
Parley server on 127.0.0.1:9999 with the seed's unmodified client, and
check that each client's terminal shows exactly what the figures show.

Usage: python3 session.py  (the server must already listen on 127.0.0.1:9999)
Exit status 0 when every transcript matches.
"""
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPT = "Do you want to send massege? (y:yes/n:no/q:quit)"
PAUSE = 0.3  # a person's pace: the server coalesces faster changes

# What each terminal shows, from figures 11, 12 and 13.
FIG11 = """Enter ID:120
List ['120']
{p}n
List ['120', '150']
{p}y
Enter Peer ID: 150
Enter Message to send
>hi
List ['120', '150']
{p}n
List ['120', '150', '170']
{p}n
hello
List ['120', '150', '170']
{p}n
List ['120', '170']
{p}y
Enter Peer ID: 170
Enter Message to send
>hello2
List ['120', '170']
{p}n
List ['120']
{p}q
""".format(p=PROMPT)

FIG12 = """Enter ID:150
List ['120', '150']
{p}n
hi
List ['120', '150']
{p}n
List ['120', '150', '170']
{p}n
List ['120', '150', '170']
{p}q
""".format(p=PROMPT)

FIG13 = """Enter ID:170
List ['120', '150', '170']
{p}y
Enter Peer ID: 120
Enter Message to send
>hello
List ['120', '150', '170']
{p}n
List ['120', '170']
{p}n
hello2
List ['120', '170']
{p}q
""".format(p=PROMPT)


class Terminal:
    """A seed client whose stdout we read and whose stdin we type into;
    `screen` is what a terminal would show (output plus echoed input)."""

    def __init__(self, name):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-u", os.path.join(HERE, "client.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.out = ""
        self.screen = ""
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            b = self.proc.stdout.read(1)
            if not b:
                return
            with self.lock:
                self.out += b.decode("utf-8", "replace")
                self.screen += b.decode("utf-8", "replace")

    def expect(self, text, timeout=10.0):
        """Wait until the output so far ends with `text`."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if self.out.endswith(text):
                    self.out = ""
                    return
            time.sleep(0.01)
        with self.lock:
            raise AssertionError(f"{self.name}: waited for {text!r}, have {self.out!r}")

    def type(self, line):
        time.sleep(PAUSE)
        with self.lock:
            self.screen += line + "\n"
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def send(self, peer, text):
        """Answer the prompt with `y` and send `text` to `peer`."""
        self.type("y")
        self.expect("Enter Peer ID: ")
        self.type(peer)
        self.expect("Enter Message to send\n>")
        self.type(text)


def sign_in(id):
    """A new seed client, given `id` when it asks."""
    term = Terminal(f"client {id}")
    term.expect("Enter ID:")
    term.type(id)
    return term


def listed(*ids):
    """The list the server sends, then the prompt."""
    return f"List {list(ids)}\n{PROMPT}"


def all_see(terms, *online):
    """Each of `terms` shows the list of who is `online`, then the prompt."""
    for c in terms:
        c.expect(listed(*online))


def answer(*keys):
    """Each `(terminal, key)` answers the prompt, in turn."""
    for term, key in keys:
        term.type(key)


def deliver(sender, peer, receiver, text, online, others=()):
    """`sender` sends `text` to `peer`: `receiver` shows it above the list
    of who is `online`, and each of `others`, then `sender`, shows the
    list again."""
    sender.send(peer, text)
    receiver.expect(text + "\n" + listed(*online))
    all_see((*others, sender), *online)


def main():
    c1 = sign_in("120")
    all_see((c1,), "120")
    answer((c1, "n"))

    c2 = sign_in("150")
    all_see((c2, c1), "120", "150")
    answer((c2, "n"))
    deliver(c1, "150", c2, "hi", ("120", "150"))
    answer((c1, "n"), (c2, "n"))

    c3 = sign_in("170")
    all_see((c1, c2, c3), "120", "150", "170")
    answer((c1, "n"), (c2, "n"))
    deliver(c3, "120", c1, "hello", ("120", "150", "170"), others=(c2,))
    answer((c3, "n"), (c1, "n"), (c2, "q"))

    all_see((c1, c3), "120", "170")
    answer((c3, "n"))
    deliver(c1, "170", c3, "hello2", ("120", "170"))
    answer((c1, "n"), (c3, "q"))
    all_see((c1,), "120")
    answer((c1, "q"))

    ok = True
    for term, want in ((c1, FIG11), (c2, FIG12), (c3, FIG13)):
        term.proc.wait(timeout=10)
        time.sleep(0.1)
        if term.screen != want:
            ok = False
            print(f"--- {term.name} shows:\n{term.screen}--- the figure shows:\n{want}", file=sys.stderr)
        else:
            print(f"{term.name}: matches its figure")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
