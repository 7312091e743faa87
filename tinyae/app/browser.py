"""A headless Chromium driven over the DevTools protocol through a pipe: the standard library only.

``chromium --headless --remote-debugging-pipe`` reads protocol messages from its file descriptor 3 and writes
its answers and events to descriptor 4, each message one JSON object followed by a NUL byte. A command is
``{"id": n, "method": "Domain.method", "params": {...}, "sessionId": s}``; its answer carries the same id,
and events (``{"method": ..., "params": ...}``) come in between. The browser itself answers without a
session; a page answers in the session that ``Target.attachToTarget`` (flatten) opened on it.

    with Browser() as browser:              # BrowserNotFound when there is no Chromium
        browser.open(Path("page.html"))     # waits for the load event
        browser.evaluate("document.title")  # a JSON value
        browser.errors                      # console errors and uncaught exceptions, one line each
        browser.screenshot()                # PNG bytes

The browser is ``$TINYAE_CHROMIUM`` or the first of ``chromium``, ``chromium-browser``, ``google-chrome``,
``google-chrome-stable`` on the PATH; it runs in a temporary profile, with ``--no-sandbox`` only as root
(Chromium refuses to start its sandbox as root, e.g. in a CI container).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserError(RuntimeError):
    """The browser failed: it did not start, did not answer in time, or a command returned an error."""


class BrowserNotFound(BrowserError):
    """No Chromium to run."""


def find_chromium() -> str:
    """The Chromium executable: ``$TINYAE_CHROMIUM`` if set, else the first of ``NAMES`` on the PATH."""
    chosen = os.environ.get("TINYAE_CHROMIUM")
    if chosen:
        found = shutil.which(chosen)
        if found is None:
            raise BrowserNotFound(f"TINYAE_CHROMIUM={chosen} is not an executable")
        return found
    for name in NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    raise BrowserNotFound(f"no Chromium on the PATH (looked for {', '.join(NAMES)}; or set TINYAE_CHROMIUM); "
                          "on Debian or Ubuntu: apt-get install chromium")


def describe(details: dict) -> str:
    """The first line of a protocol ``exceptionDetails``: the exception's description, or the text."""
    return (details.get("exception", {}).get("description") or details.get("text", "")).split("\n")[0]


class Browser:
    """One headless Chromium with one page (a tab), 1000×800 CSS pixels at scale 1 unless asked otherwise.

    ``errors`` collects every console message of level error, every uncaught exception and every browser
    log entry of level error (a resource that failed to load) since the page was opened."""

    def __init__(self, executable: str | None = None, width: int = 1000, height: int = 800,
                 timeout: float = 30.0):
        self.timeout = timeout
        self.errors: list[str] = []
        self._events: list[dict] = []
        self._next_id = 0
        self._buffer = b""
        self._closed = False
        executable = executable or find_chromium()
        self._profile = tempfile.mkdtemp(prefix="tinyae-chromium-")
        flags = ["--headless", "--remote-debugging-pipe", f"--user-data-dir={self._profile}",
                 "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                 "--disable-background-networking", "--disable-sync", "--disable-dev-shm-usage",
                 "--mute-audio", "--hide-scrollbars"]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()
        # The child's ends go to fds >= 5 first, then a small Python process places them on 3 (the browser
        # reads) and 4 (it writes) and becomes the browser (no code runs between fork and exec here, which
        # is safe beside threads; a shell would do, but dash takes only one-digit fds).
        child_in, child_out = (fcntl.fcntl(end, fcntl.F_DUPFD_CLOEXEC, 5)
                               for end in (to_browser, from_browser))
        os.close(to_browser)
        os.close(from_browser)
        place = (f"import os, sys; os.dup2({child_in}, 3); os.dup2({child_out}, 4); os.close({child_in}); "
                 f"os.close({child_out}); os.execv(sys.argv[1], sys.argv[1:])")
        self._stderr = tempfile.TemporaryFile()  # the browser's complaints, for the error if it fails
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", place, executable, *flags, "about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
                pass_fds=(child_in, child_out))
        except OSError as error:
            self._close_pipes()
            self._stderr.close()
            shutil.rmtree(self._profile, ignore_errors=True)
            raise BrowserError(f"cannot start {executable}: {error.strerror or error}") from None
        finally:
            os.close(child_in)
            os.close(child_out)
        try:
            target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            attached = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
            self._session = attached["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable", session=self._session)
            self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                             "deviceScaleFactor": 1, "mobile": False},
                      session=self._session)
        except BaseException:
            self.close()
            raise

    # The protocol --------------------------------------------------------------------------------------
    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and return its result, keeping the events that arrive before it."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._to_browser, data):]
        except BrokenPipeError:
            raise BrowserError(f"the browser quit{self._last_words()}") from None
        while True:
            reply = self._receive()
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message', reply['error'])}")
                return reply.get("result", {})
            self._keep(reply)

    def _receive(self) -> dict:
        """The next message from the browser (waiting at most ``timeout`` seconds)."""
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise BrowserError(f"the browser did not answer within {self.timeout:g} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(f"the browser quit{self._last_words()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _last_words(self) -> str:
        """The browser's exit status and the last line it wrote to stderr, for an error message."""
        try:
            status = f" (exit status {self._process.wait(timeout=5)})"
        except subprocess.TimeoutExpired:
            status = ""
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return status + (f": {lines[-1][:200]}" if lines else "")

    def _keep(self, event: dict) -> None:
        """Note the errors an event reports, and keep the event for ``wait_for``."""
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            arguments = params.get("args", [])
            words = (argument.get("value", argument.get("description", "")) for argument in arguments)
            self.errors.append("console: " + " ".join(map(str, words)))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append("exception: " + describe(details))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry.get('text', '')} {entry.get('url', '')}".strip())
        self._events.append(event)

    def wait_for(self, method: str) -> dict:
        """The params of the first event ``method`` not yet waited for (waiting for it if need be)."""
        while True:
            for index, event in enumerate(self._events):
                if event.get("method") == method:
                    del self._events[index]
                    return event.get("params", {})
            self._keep(self._receive())

    # The page ------------------------------------------------------------------------------------------
    def open(self, page: Path | str) -> None:
        """Load ``page`` (a file path or a URL) and wait for its load event; ``errors`` starts afresh."""
        url = Path(page).resolve().as_uri() if isinstance(page, Path) else page
        self.errors.clear()
        self._events.clear()
        result = self.send("Page.navigate", {"url": url}, session=self._session)
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-serializable; a promise is awaited). An
        exception in the page is a BrowserError naming it."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=self._session)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:60]}: {describe(result['exceptionDetails'])}")
        return result["result"].get("value")

    def mouse(self, kind: str, x: float, y: float, buttons: int = 1) -> None:
        """A real mouse event at page coordinates (x, y): kind "mousePressed", "mouseMoved" or
        "mouseReleased", with the left button (``buttons`` 1) held or not (0)."""
        event = {"type": kind, "x": x, "y": y, "buttons": buttons, "clickCount": 1,
                 "button": "left" if buttons else "none"}
        self.send("Input.dispatchMouseEvent", event, session=self._session)

    def screenshot(self) -> bytes:
        """A PNG of the page's viewport."""
        shot = self.send("Page.captureScreenshot", {"format": "png"}, session=self._session)
        return base64.b64decode(shot["data"])

    # Closing -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Ask the browser to quit (kill it if it does not within a few seconds) and remove its profile."""
        if self._closed:
            return
        self._closed = True
        if self._process.poll() is None:
            try:
                self.send("Browser.close")
            except BrowserError:
                pass
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._close_pipes()
        self._stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def _close_pipes(self) -> None:
        for descriptor in (self._to_browser, self._from_browser):
            try:
                os.close(descriptor)
            except OSError:
                pass

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
