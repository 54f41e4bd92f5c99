"""The last line of `make mutation`: how many of mutmut's mutants the tests killed.

Reads `mutmut results --all true` (a line `name: status` a mutant) and prints each
mutant the tests let live, then `mutation score: K/N killed (P %)`. A mutant whose tests
timed out counts as killed (the tests noticed it); one without tests, not checked, or
surviving counts against the score.
"""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

MUTMUT = str(Path(sys.executable).parent / "mutmut")
KILLED = {"killed", "timeout"}


def main() -> int:
    listed = subprocess.run(
        [MUTMUT, "results", "--all", "true"], capture_output=True, text=True, check=True
    )
    statuses: dict[str, str] = {}
    for line in listed.stdout.splitlines():
        name, separator, status = line.strip().rpartition(": ")
        if separator:
            statuses[name] = status
    if not statuses:
        print("mutation score: no mutants (run `mutmut run` first)")
        return 1
    for name, status in sorted(statuses.items()):
        if status not in KILLED:
            print(f"{status}: {name}")
    counts = collections.Counter(statuses.values())
    print(", ".join(f"{n} {status}" for status, n in counts.most_common()))
    killed, total = sum(counts[s] for s in KILLED), len(statuses)
    print(f"mutation score: {killed}/{total} killed ({100 * killed / total:.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
