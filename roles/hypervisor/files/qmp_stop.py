"""Stop a QEMU guest: ACPI powerdown over QMP, then `quit` after a timeout, then SIGTERM.

Usage: python3 qmp_stop.py QMP_SOCKET PIDFILE [TIMEOUT_S] [--quit|--reset]. Prints one JSON
object: {"changed": bool, "how": "absent|powerdown|quit|sigterm|reset"}. --quit skips the
powerdown; --reset does not stop the guest but resets it (QMP system_reset: a hard reboot that
keeps the QEMU process, its taps and their qdiscs), for a guest whose network stack is wedged.
"""
import json
import os
import signal
import socket
import sys
import time


def alive(pidfile):
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            if b'qemu-system' not in f.read():
                return None
        return pid
    except (OSError, ValueError):
        return None


def qmp(path, command):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    f = s.makefile('rw')
    f.readline()  # greeting
    for cmd in ('qmp_capabilities', command):
        f.write(json.dumps({'execute': cmd}) + '\n')
        f.flush()
        while True:  # skip asynchronous events until the command's reply
            reply = json.loads(f.readline() or '{}')
            if 'event' not in reply:
                break
    s.close()


def wait_gone(pidfile, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if not alive(pidfile):
            return True
        time.sleep(0.5)
    return not alive(pidfile)


def main(argv):
    quit_only = '--quit' in argv
    args = [a for a in argv if a not in ('--quit', '--reset')]
    sock, pidfile = args[0], args[1]
    timeout = float(args[2]) if len(args) > 2 else 60
    pid = alive(pidfile)
    if not pid:
        return {'changed': False, 'how': 'absent'}
    if '--reset' in argv:
        qmp(sock, 'system_reset')
        return {'changed': True, 'how': 'reset'}
    for how in ([] if quit_only else ['powerdown']) + ['quit']:
        try:
            qmp(sock, 'system_powerdown' if how == 'powerdown' else 'quit')
        except (OSError, ValueError):
            continue
        if wait_gone(pidfile, timeout if how == 'powerdown' else 15):
            return {'changed': True, 'how': how}
    os.kill(pid, signal.SIGTERM)
    wait_gone(pidfile, 15)
    return {'changed': True, 'how': 'sigterm'}


if __name__ == '__main__':
    print(json.dumps(main(sys.argv[1:])))
