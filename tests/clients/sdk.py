"""Drives Amplitude's Python server SDK (amplitude-experiment, pinned in requirements.txt)
against one server URL, for tests/sdk_clients.rs.

Usage: python3 sdk.py '<spec JSON>'
  {"serverUrl": "...", "key": "...", "user": {User keyword arguments}, "fetches": [options, ...]}
  One RemoteEvaluationClient; fetch_v2(User(**user), FetchOptions(**options)) once per
  entry, in order (the SDK POSTs the user as JSON to /sdk/v2/vardata?v=0).
Prints {"sdk", "version", "results": [...]} on stdout; on any error prints it on stderr and
exits 1.
"""

import json
import logging
import sys

from amplitude_experiment import RemoteEvaluationClient, RemoteEvaluationConfig, User
from amplitude_experiment import __version__ as version
from amplitude_experiment.remote.fetch_options import FetchOptions


class Errors(logging.Handler):
    """Collects the SDK's error logs: with fetch_retries=0, fetch_v2 logs a failed fetch
    and returns {} instead of raising, which must not pass for an empty answer."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main() -> None:
    spec = json.loads(sys.argv[1])
    errors = Errors()
    logger = logging.getLogger("evalgate-sdk-test")
    logger.addHandler(errors)
    logger.addHandler(logging.StreamHandler(sys.stderr))
    logger.setLevel(logging.ERROR)
    config = RemoteEvaluationConfig(
        server_url=spec["serverUrl"], fetch_timeout_millis=5000, fetch_retries=0, logger=logger
    )
    results = []
    with RemoteEvaluationClient(spec["key"], config) as client:
        for options in spec["fetches"]:
            variants = client.fetch_v2(User(**spec["user"]), FetchOptions(**options))
            if errors.messages or variants is None:
                raise RuntimeError(f"fetch_v2 failed: {errors.messages}")
            results.append({k: v.__dict__ for k, v in variants.items()})
    json.dump({"sdk": "amplitude-experiment", "version": version, "results": results}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - reported to the test, which fails
        import traceback

        traceback.print_exc()
        sys.stderr.write(f"sdk.py failed: {e!r}\n")
        sys.exit(1)
