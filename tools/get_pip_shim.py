# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-in for the get-pip.py script ansible-test downloads.

ansible-test runs it as ``python get_pip.py [pip install options] pip==X ...``.
We bootstrap pip from the interpreter's bundled wheel, then let that pip install
what was asked, from the machine's configured index.
"""

import os
import subprocess
import sys

UNKNOWN_TO_PIP_INSTALL = ("--no-setuptools", "--no-wheel")

env = dict(os.environ)
# ensurepip sets PIP_CONFIG_FILE=/dev/null, which would hide the machine's
# index and CA settings from the install below.
env.pop("PIP_CONFIG_FILE", None)
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], env=env)
env.pop("PIP_CONFIG_FILE", None)
args = [a for a in sys.argv[1:] if a not in UNKNOWN_TO_PIP_INSTALL]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade"] + args, env=env)
