"""Detach every /dev/nbdN whose qemu-nbd serves one of the given image paths.

Usage: python3 nbd_release.py PATH... Prints {"changed": bool, "detached": ["/dev/nbd0", ...]}.
"""
import glob
import json
import os
import subprocess
import sys


def main(paths):
    wanted = set(os.path.realpath(p) for p in paths)
    detached = []
    for pidfile in sorted(glob.glob('/sys/block/nbd*/pid')):
        dev = '/dev/' + pidfile.split('/')[3]
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                args = f.read().decode(errors='replace').split('\0')
        except (OSError, ValueError):
            continue
        if any(os.path.realpath(a) in wanted for a in args if a.startswith('/')):
            subprocess.run(['qemu-nbd', '-d', dev], check=True, capture_output=True)
            detached.append(dev)
    return {'changed': bool(detached), 'detached': detached}


if __name__ == '__main__':
    print(json.dumps(main(sys.argv[1:])))
