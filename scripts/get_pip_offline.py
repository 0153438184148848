#!/usr/bin/env python3
"""Stand-in for the get-pip.py bootstrap that ansible-test downloads from a host not reachable here.

ansible-test (sanity, units) creates an empty virtual environment per test and runs
`python get-pip.py [get-pip options] [pip install arguments]` in it, with the script taken from
~/.ansible/test/cache/get_pip_<version>.py when that file exists (ansible-test's own message names
that path for machines that cannot download it). scripts/sanity.sh copies this file there. It does
what get-pip.py does, from places reachable here: pip from the interpreter's own ensurepip, then
`pip install` of the requested packages (pip==<version>, ...) from the configured index.
"""
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}  # get-pip.py's own options; pip install has none such


def main():
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    # In a child process: ensurepip empties the pip configuration of the process it runs in
    # (PIP_CONFIG_FILE=/dev/null), which would drop the machine's index and certificate settings.
    rc = subprocess.call([sys.executable, "-m", "ensurepip", "--upgrade"], stdout=subprocess.DEVNULL)
    if rc:
        return rc
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    if "--no-setuptools" in sys.argv:  # get-pip.py leaves it out then; ensurepip brings it on Python < 3.12
        subprocess.call(pip + ["uninstall", "-q", "-y", "setuptools"], stderr=subprocess.DEVNULL)
    return subprocess.call(pip + ["install", *args])


if __name__ == "__main__":
    sys.exit(main())
