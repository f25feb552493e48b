"""Wait until a URL answers 200 (the deploy scripts' health gate): healthy.py URL [SECONDS]."""

import sys
import time
import urllib.request


def main(url: str, seconds: float = 20.0) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return 0
        except OSError:
            pass
        time.sleep(0.2)
    print(f"{url} did not answer 200 within {seconds:g} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], *map(float, sys.argv[2:3])))
