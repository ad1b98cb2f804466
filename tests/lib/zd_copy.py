"""The one documented place of the local copy of github.com/zD-linux/linux-4.14.67 for tests.

ZERODROP_ZD_KERNEL_REPO (a path or file:// URL), default /var/cache/zerodrop/sources/linux-4.14.67;
make it with ../shared/tools/zd-kernel-repo. ``missing(branches)`` says why a test that needs
those branches cannot run here, or returns None.
"""

import os
import subprocess

ZD_KERNEL_REPO = os.environ.get('ZERODROP_ZD_KERNEL_REPO', '/var/cache/zerodrop/sources/linux-4.14.67')
if ZD_KERNEL_REPO.startswith('file://'):
    ZD_KERNEL_REPO = ZD_KERNEL_REPO[len('file://'):]


def branches():
    return subprocess.run(['git', '-C', ZD_KERNEL_REPO, 'for-each-ref', '--format=%(refname:short)',
                           'refs/heads'], capture_output=True, text=True, check=False).stdout.split()


def missing(needed):
    """Why the copy cannot serve a test that needs the branches ``needed``, or None."""
    if not os.path.isdir(ZD_KERNEL_REPO):
        return ('no local copy of github.com/zD-linux/linux-4.14.67 at %s (set '
                'ZERODROP_ZD_KERNEL_REPO to a clone with the branches %s, or make one with '
                '../shared/tools/zd-kernel-repo)' % (ZD_KERNEL_REPO, ', '.join(needed)))
    have = branches()
    lacking = [b for b in needed if b not in have]
    if lacking:
        return ('the zD kernel copy at %s lacks the branch(es) %s (has %s; is it still being made?)'
                % (ZD_KERNEL_REPO, ', '.join(lacking), ', '.join(have) or 'none'))
    return None
