"""A long-lived Python worker process that runs what might crash or hang (LiteRT's verifier and
interpreters), restarted after a crash or a hang, and per process (a fork starts its own)."""
import os
import subprocess
import sys
import threading


class WorkerProcess:
    """``python -c SCRIPT`` with pipes on stdin/stdout; subclasses speak its protocol under
    ``self.lock`` after ``ensure()``."""

    def __init__(self, script):
        self.script, self.proc, self.pid, self.lock = script, None, None, threading.Lock()

    def ensure(self):
        """Start the worker unless a live one of this process runs; True when it was started."""
        if self.proc is not None and self.pid == os.getpid() and self.proc.poll() is None:
            return False
        env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}  # any value enables it
        self.pid = os.getpid()
        self.proc = subprocess.Popen([sys.executable, "-c", self.script], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
                                     env=env)
        return True

    def kill(self):
        """Stop a hung worker; the next call starts a fresh one."""
        self.proc.kill()
        self.proc.wait()
        self._close_pipes()
        self.proc = None

    def _close_pipes(self):
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def close(self):
        if self.proc is not None and self.pid == os.getpid() and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.pid == os.getpid():
            self._close_pipes()
        self.proc = None
