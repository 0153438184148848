#!/usr/bin/env python3
"""Count testinfra results from JUnit XML files; print 'N passed, N failed[, N skipped]'.

--require-tests: exit 1 when the files hold no executed test (or a file is missing).
"""
import sys
import xml.etree.ElementTree as ET


def main(argv):
    require = "--require-tests" in argv
    files = [a for a in argv if not a.startswith("--")]
    passed = failed = skipped = 0
    for path in files:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError):
            if require:
                return 1
            continue
        for case in root.iter("testcase"):
            if case.find("skipped") is not None:
                skipped += 1
            elif case.find("failure") is not None or case.find("error") is not None:
                failed += 1
            else:
                passed += 1
    line = f"{passed} passed, {failed} failed"
    print(line + (f", {skipped} skipped" if skipped else ""))
    if require and passed + failed == 0:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
