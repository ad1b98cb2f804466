"""Make `ansible-test sanity` work without internet access.

ansible-test bootstraps pip into each of its virtual environments with a get-pip script that it
downloads once and caches as ~/.ansible/test/cache/get_pip_<version>.py. This writes a local
stand-in at that path: it installs pip with the standard library's ensurepip and then lets pip
install what ansible-test asked for (from whatever index pip is configured to use).
"""

import os
import re
import sys

import ansible_test

STAND_IN = '''"""Offline stand-in for get-pip.py, written by zerodrop.testbed scripts/setup."""
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel", "--no-pip"}
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"],
                      stdout=subprocess.DEVNULL)
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
'''


def wanted_pip_version():
    source = os.path.join(os.path.dirname(ansible_test.__file__), '_internal',
                          'python_requirements.py')
    with open(source) as f:
        m = re.search(r"default_packages = dict\(\s*pip='([0-9.]+)'", f.read())
    if not m:
        sys.exit('cannot find the pip version ansible-test pins in %s' % source)
    return m.group(1)


def main():
    version = wanted_pip_version()
    path = os.path.expanduser('~/.ansible/test/cache/get_pip_%s.py' % version.replace('.', '_'))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    current = open(path).read() if os.path.exists(path) else None
    if current != STAND_IN:
        with open(path, 'w') as f:
            f.write(STAND_IN)


if __name__ == '__main__':
    main()
