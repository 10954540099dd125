"""Offline stand-in for the pip bootstrap script ansible-test downloads (get-pip).

ansible-test creates its sanity-test virtual environments without pip and then runs a
get-pip script from ci-files.testing.ansible.com, which these machines cannot reach. This
script does the same job with what Python ships: ``ensurepip`` installs the bundled pip, then
pip installs the requested packages (ansible-test passes pip options and ``pip==X`` pins).
scripts/sanity.sh places it in ansible-test's cache under the name it looks for.
"""

import ensurepip
import os
import runpy
import sys

ensurepip.bootstrap(upgrade=True, default_pip=True)
# ensurepip points PIP_CONFIG_FILE at os.devnull in this process; give pip its configuration
# back (index, certificates) for the real install.
os.environ.pop("PIP_CONFIG_FILE", None)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install", *args]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
