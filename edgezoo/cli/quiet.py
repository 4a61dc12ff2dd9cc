"""Hide TensorFlow's, absl's, CUDA's and LiteRT's log lines from the CLI's stderr.

They come from C++ (at import time and later, in this process and in the runtime
child processes, which inherit the file descriptor), so setting Python loggers is
not enough: the process's stderr descriptor (fd 2) is pointed at a pipe, and a
thread copies every line that is not such a log line to the real stderr. Our own
lines (errors, stage lines, progress bars) pass unchanged. ``--verbose`` skips this.
"""
import logging
import os
import re
import sys
import threading
import warnings

# Log lines of the libraries under edgezoo, by their shapes.
NOISE = re.compile(
    rb"^(?:[IWEF]\d{4} [\d:. ]+\s*\d+ [\w.]+:\d+\]"  # absl/glog C++: E0000 00:00:... file.cc:123]
    rb"|WARNING: All log messages before absl::InitializeLog"
    rb"|INFO: (?:Created TensorFlow Lite|Initialized TensorFlow Lite)"  # LiteRT delegates
    rb"|(?:WARNING|INFO|ERROR):(?:tensorflow|absl|root):"  # Python loggers with a default format
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] "  # TensorFlow's older C++ log format
    rb"|fully_quantize: \d+, inference_type"  # the MLIR quantizer's printf
    rb"|To enable the following instructions:|oneDNN custom operations are on"
    rb"|.*(?:cuda|cuDNN|cuBLAS|cuFFT|TensorRT|XLA service).*(?:factory|not found|registered)"
    rb"|.*/site-packages/(?!edgezoo/).*(?:DeprecationWarning|UserWarning|FutureWarning|RuntimeWarning):"
    rb"|\s+warnings\.warn\()")


class StderrFilter:
    """fd 2 into a pipe; non-noise lines copied to the saved real stderr."""

    def __init__(self):
        self.saved = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self._read = read
        self._thread = threading.Thread(target=self._copy, daemon=True)
        self._thread.start()

    def _copy(self):
        pending = b""
        with os.fdopen(self._read, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = re.split(rb"(?<=[\n\r])", pending)
                for line in lines:
                    if not NOISE.match(line):
                        os.write(self.saved, line)
        if pending and not NOISE.match(pending):
            os.write(self.saved, pending)

    def close(self):
        """Put the real stderr back and let the copier drain what is left."""
        sys.stderr.flush()
        os.dup2(self.saved, 2)  # the pipe's last writer here is gone: the copier sees EOF
        self._thread.join(timeout=2)  # (children still holding the pipe cannot hold us up)


def quiet_python_logs():
    """TensorFlow's and absl's Python loggers and library warnings down to errors."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    warnings.filterwarnings("ignore")  # the libraries' deprecation and usage chatter ...
    warnings.filterwarnings("default", module=r"edgezoo\.")  # ... but never edgezoo's own warnings
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("h5py").setLevel(logging.ERROR)
